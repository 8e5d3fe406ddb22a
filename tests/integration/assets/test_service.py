"""What the jobs capability calls: resolve, register_path, link_into."""

from __future__ import annotations

import errno
import os

import pytest

from notebench.server.errors import ApiError
from tests.integration.assets.conftest import sha
from tests.integration.assets.samples import csv_bytes, safetensors_bytes


async def test_resolve_by_id_path_name_and_stem(registry, workspace, upload):
    (workspace / "datasets" / "digits").mkdir()
    (workspace / "datasets" / "digits" / "my-sample.csv").write_bytes(csv_bytes())
    by_stem = await registry.resolve("my-sample", "datasets")  # found on disk just now
    assert by_stem["rel_path"] == "digits/my-sample.csv"
    assert by_stem["path"] == str(workspace / "datasets" / "digits" / "my-sample.csv")
    assert (await registry.resolve("my-sample.csv", "datasets"))["id"] == by_stem["id"]
    assert (await registry.resolve("digits/my-sample.csv"))["id"] == by_stem["id"]
    assert (await registry.resolve(by_stem["id"]))["id"] == by_stem["id"]
    with pytest.raises(ApiError) as info:
        await registry.resolve(by_stem["id"], "models")
    assert info.value.status == 404
    with pytest.raises(ApiError) as info:
        await registry.resolve("nothing-like-it", "datasets")
    assert info.value.status == 404
    (workspace / "datasets" / "my-sample.json").write_bytes(b"{}")
    with pytest.raises(ApiError) as info:
        await registry.resolve("my-sample", "datasets")
    assert info.value.status == 409


async def test_register_path_is_idempotent_and_refuses_outside(registry, workspace, tmp_path):
    job_dir = workspace / "artifacts" / "jobs" / "j1"
    job_dir.mkdir(parents=True)
    (job_dir / "metrics.csv").write_bytes(csv_bytes())
    first = await registry.register_path(job_dir / "metrics.csv", category="artifacts",
                                         source="job", job_id="j1",
                                         metadata={"step": 10}, tags=["final"])
    again = await registry.register_path(job_dir / "metrics.csv", category="artifacts",
                                         source="job", job_id="j1")
    assert first["id"] == again["id"] and again["job_id"] == "j1"
    assert again["source"] == "job" and again["metadata"]["step"] == 10
    (tmp_path / "x.csv").write_bytes(csv_bytes())
    for outside in (tmp_path / "x.csv", workspace / "models-evil" / "x.csv",
                    workspace / "datasets" / "x.csv"):
        with pytest.raises(ApiError) as info:
            await registry.register_path(outside, category="artifacts")
        assert info.value.status in (400, 404)


async def test_link_into_makes_its_own_hard_links(registry, workspace, download):
    job_dir = workspace / "artifacts" / "jobs" / "j2"
    job_dir.mkdir(parents=True)
    data = safetensors_bytes(1000)
    (job_dir / "model.safetensors").write_bytes(data)
    linked = await registry.link_into(job_dir / "model.safetensors", "models",
                                      "classifier.safetensors", source="job", job_id="j2",
                                      metadata={"framework": "torch", "parameters": 10})
    assert linked["name"] == "classifier.safetensors" and linked["sha256"] == sha(data)
    target = workspace / "models" / "classifier.safetensors"
    assert os.stat(target).st_ino == os.stat(job_dir / "model.safetensors").st_ino
    second = await registry.link_into(job_dir / "model.safetensors", "models",
                                      "classifier.safetensors", source="job", job_id="j2")
    assert second["name"] == "classifier-1.safetensors"
    # the registry's own links pass the hard-link checks: both names register and download
    source = await registry.register_path(job_dir / "model.safetensors", category="artifacts",
                                          source="job", job_id="j2")
    assert source["sha256"] == sha(data)
    assert (await download(linked["id"])).body == data
    assert (await download(second["id"])).body == data
    assert (await download(source["id"])).body == data
    # a link someone else adds later makes them foreign again
    os.link(target, workspace.parent / "sneaky")
    assert (await download(linked["id"])).code == 403


async def test_link_into_copies_across_filesystems(registry, workspace, monkeypatch):
    job_dir = workspace / "artifacts" / "jobs" / "j3"
    job_dir.mkdir(parents=True)
    data = safetensors_bytes(100)
    (job_dir / "m.safetensors").write_bytes(data)

    def cross_device(*args, **kwargs):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", cross_device)
    copied = await registry.link_into(job_dir / "m.safetensors", "models", "m.safetensors",
                                      source="job", job_id="j3")
    monkeypatch.undo()
    assert copied["sha256"] == sha(data)
    assert os.stat(workspace / "models" / "m.safetensors").st_nlink == 1


async def test_link_into_refuses_bad_names_and_outside_sources(registry, workspace, tmp_path):
    (tmp_path / "m.safetensors").write_bytes(safetensors_bytes())
    with pytest.raises(ApiError):
        await registry.link_into(tmp_path / "m.safetensors", "models", "m.safetensors",
                                 source="job", job_id=None)
    (workspace / "artifacts" / "ok.safetensors").write_bytes(safetensors_bytes())
    with pytest.raises(ApiError):
        await registry.link_into(workspace / "artifacts" / "ok.safetensors", "models",
                                 "../escape.safetensors", source="job", job_id=None)
