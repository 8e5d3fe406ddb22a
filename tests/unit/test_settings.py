"""resolve_settings(): "auto" from the profile's recommendations or measurement."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest

import notebench
from notebench import _jobdir, tracking

RECOMMENDED = {
    "device": {"value": "cuda", "reason": "1 CUDA GPU"},
    "precision": {"value": "bf16-mixed", "reason": "compute capability 9.0"},
    "batch_size": {"value": 256, "reason": "from 80 GiB of GPU memory"},
    "num_workers": {"value": 7, "reason": "8 usable cores"},
}


@pytest.fixture(autouse=True)
def no_job(monkeypatch: pytest.MonkeyPatch):
    for name in (_jobdir.JOB_DIR_ENV, _jobdir.JOB_ID_ENV, "NOTEBENCH_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    tracking._reset()
    yield
    tracking._reset()


def test_auto_values_come_from_the_recommendations() -> None:
    settings = notebench.resolve_settings(recommended=RECOMMENDED)
    assert (settings.device, settings.precision, settings.batch_size, settings.num_workers) == (
        "cuda", "bf16-mixed", 256, 7)
    assert set(settings.sources.values()) == {"recommended"}
    as_dict = settings.as_dict()
    assert as_dict["batch_size"] == {"value": 256, "source": "recommended",
                                     "reason": "from 80 GiB of GPU memory"}
    json.dumps(as_dict)


def test_given_values_are_validated_and_kept() -> None:
    settings = notebench.resolve_settings(batch_size="64", num_workers=0, device="cuda:1",
                                          precision="bf16", recommended=RECOMMENDED)
    assert (settings.device, settings.precision, settings.batch_size, settings.num_workers) == (
        "cuda:1", "bf16-mixed", 64, 0)
    assert set(settings.sources.values()) == {"given"}
    for bad in ({"batch_size": "many"}, {"batch_size": 0}, {"num_workers": -1},
                {"precision": "int4"}):
        with pytest.raises(ValueError):
            notebench.resolve_settings(recommended=RECOMMENDED, **bad)


def test_precision_is_fp32_when_the_device_is_not_the_recommended_one() -> None:
    settings = notebench.resolve_settings(device="cpu", recommended=RECOMMENDED)
    assert settings.precision == "32" and "fp32" in settings.reasons["precision"]


def test_workers_in_memory_data_and_thread_caps(monkeypatch) -> None:
    assert notebench.resolve_settings(data_in_memory=True,
                                      recommended=RECOMMENDED).num_workers == 0
    monkeypatch.setenv("NOTEBENCH_NUM_THREADS", "3")
    settings = notebench.resolve_settings(recommended=RECOMMENDED)
    assert settings.num_workers == 2 and "3 CPU threads" in settings.reasons["num_workers"]


def test_max_batch_caps_the_heuristic() -> None:
    assert notebench.resolve_settings(max_batch=100, recommended=RECOMMENDED).batch_size == 100


def test_batch_size_is_measured_with_a_model(tmp_path: Path, monkeypatch) -> None:
    torch = pytest.importorskip("torch")
    job = tmp_path / "j-00000000beef"
    monkeypatch.setenv(_jobdir.JOB_DIR_ENV, str(job))
    model = torch.nn.Linear(8, 3)
    settings = notebench.resolve_settings(
        device="cpu", model=model, sample_batch=(torch.randn(4, 8), torch.randint(0, 3, (4,))),
        loss_fn=torch.nn.functional.cross_entropy, max_batch=32, recommended=RECOMMENDED,
        start=8, min_time_s=0.0, min_steps=1)
    assert settings.sources["batch_size"] == "measured"
    assert settings.batch_search is not None and settings.batch_size <= 32
    assert isinstance(settings.autocast(), contextlib.nullcontext)
    assert not settings.grad_scaler().is_enabled()
    assert settings.loader_kwargs() == {"batch_size": settings.batch_size, "num_workers": 7,
                                        "pin_memory": False, "persistent_workers": True}
    tracking.flush()
    [event] = [json.loads(line) for line in (job / "events.jsonl").read_text().splitlines()]
    assert event["kind"] == "settings"
    assert event["settings"]["batch_size"]["source"] == "measured"


def test_with_this_machines_profile() -> None:
    pytest.importorskip("torch")
    settings = notebench.resolve_settings()
    assert settings.device in ("cpu", "cuda", "mps")
    assert settings.batch_size >= 1 and settings.num_workers >= 0
    assert all(settings.reasons[name] for name in ("device", "precision", "batch_size"))
