"""Type checks on the first bytes: signatures, structure checks, extension-only formats."""

from __future__ import annotations

import pytest

from notebench.server.assets.sniff import detect, identify
from notebench.server.errors import ApiError
from tests.integration.assets.samples import (
    csv_bytes,
    npy_bytes,
    pickle_bytes,
    png_bytes,
    random_bytes,
    safetensors_bytes,
    torch_zip_bytes,
)

MODELS = ("safetensors", "torch-zip", "pickle", "pickle-legacy", "onnx", "gguf", "hdf5")


@pytest.mark.parametrize(("name", "data", "fmt", "checked", "untrusted"), [
    ("m.safetensors", safetensors_bytes(), "safetensors", "structure", False),
    ("m.pt", torch_zip_bytes(), "torch-zip", "signature", True),
    ("m.pth", pickle_bytes(4), "pickle", "signature", True),
    ("m.pt", pickle_bytes(0), "pickle-legacy", "extension", True),
    ("m.onnx", b"\x08\x07\x12\x07pytorch" + random_bytes(50), "onnx", "extension", False),
    ("m.gguf", b"GGUF\x03\x00\x00\x00" + random_bytes(50), "gguf", "signature", False),
    ("m.h5", b"\x89HDF\r\n\x1a\n" + random_bytes(50), "hdf5", "signature", False),
])
def test_model_types(name, data, fmt, checked, untrusted):
    found = detect(name, data, True, MODELS)
    assert (found.format, found.checked, found.untrusted_pickle) == (fmt, checked, untrusted)


@pytest.mark.parametrize(("name", "data"), [
    ("m.safetensors", random_bytes(100)),
    ("m.safetensors", b"\xff" * 8 + b"{}"),
    ("m.pt", png_bytes()),
    ("m.onnx", png_bytes()),          # extension-only, but the bytes are a PNG
    ("m.pt", b"\x00\x01binary"),      # neither zip nor any pickle
    ("m.exe", b"MZ" + random_bytes(10)),
])
def test_model_types_refused(name, data):
    with pytest.raises(ApiError) as info:
        detect(name, data, True, MODELS)
    assert info.value.status == 415


DATASETS = ("csv", "jsonl", "npy", "parquet", "png", "json", "gzip", "tar")


@pytest.mark.parametrize(("name", "data", "ok"), [
    ("d.csv", csv_bytes(), True),
    ("d.csv", b'a,"b\nc"\n1,2\n', True),  # a quoted field may span lines
    ("d.csv", b'a,"b\n1,2\n', False),  # ... but must end
    ("d.csv", b'a,"b"c\n', False),
    ("d.csv", b"a,b\x00,c\n", False),
    ("d.csv", "caf\xe9".encode("latin1") + b",x\n", False),
    ("d.jsonl", b'{"a": 1}\n{"a": 2}\n', True),
    ("d.jsonl", b"{not json}\n", False),
    ("d.npy", npy_bytes(), True),
    ("d.npy", b"\x93NUMPY\x01\x00\x10\x00{'descr': __import__('os')}", False),
    ("d.parquet", b"PAR1" + random_bytes(40), True),
    ("d.parquet", b"PAR2" + random_bytes(40), False),
    ("d.png", png_bytes(), True),
    ("d.json", b'  {"x": 1}', True),
    ("d.tar.gz", b"\x1f\x8b\x08" + random_bytes(20), True),
])
def test_dataset_types(name, data, ok):
    if ok:
        detect(name, data, True, DATASETS)
    else:
        with pytest.raises(ApiError):
            detect(name, data, True, DATASETS)


def test_object_arrays_are_flagged_and_text_heads_cut_mid_character_pass():
    assert detect("o.npy", npy_bytes("|O"), True, DATASETS).untrusted_pickle
    head = ("é" * 40_000).encode()[:65535] + b""  # a head ending inside a character
    assert detect("t.csv", b"col\n" + head, False, DATASETS).format == "csv"


def test_content_is_identified_whatever_the_name():
    assert identify(png_bytes(), True).media_type == "image/png"
    assert identify(b"hello\n", True).format == "text"
    assert identify(random_bytes(64) + b"\x00", True).media_type == "application/octet-stream"


async def test_untrusted_pickle_in_metadata_and_any_type_in_artifacts(upload):
    response = await upload("checkpoints", "epoch1.pt", torch_zip_bytes())
    assert response.status == 201
    assert response.body["metadata"] == {"type_check": "signature", "untrusted_pickle": True}
    legacy = await upload("models", "old.pkl", pickle_bytes(1))
    assert legacy.body["metadata"]["type_check"] == "extension"
    anything = await upload("artifacts", "picture.dat", png_bytes())
    assert anything.status == 201 and anything.body["media_type"] == "image/png"
    notebook = await upload("notebooks", "n.ipynb", b'{"cells": []}')
    assert notebook.status == 201
    wrong = await upload("notebooks", "n2.ipynb", b"[1, 2]")
    assert wrong.status == 415
