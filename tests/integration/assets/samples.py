"""Small valid (and invalid) files of the types the registry checks."""

from __future__ import annotations

import io
import json
import os
import pickle
import struct
import zipfile


def csv_bytes(rows: int = 3, seed: int = 0) -> bytes:
    lines = ["x,y,label"] + [f"{i},{i * 2 + seed},{i % 3}" for i in range(rows)]
    return ("\n".join(lines) + "\n").encode()


def safetensors_bytes(payload: int = 64) -> bytes:
    header = json.dumps({"w": {"dtype": "U8", "shape": [payload],
                               "data_offsets": [0, payload]}}).encode()
    header += b" " * (-len(header) % 8)
    return struct.pack("<Q", len(header)) + header + os.urandom(payload)


def torch_zip_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps({"w": [1, 2, 3]}, protocol=2))
        archive.writestr("archive/version", "3\n")
    return buffer.getvalue()


def pickle_bytes(protocol: int = 4) -> bytes:
    return pickle.dumps({"weights": list(range(10))}, protocol=protocol)


def npy_bytes(dtype: str = "<f4", shape: tuple[int, ...] = (4,)) -> bytes:
    header = repr({"descr": dtype, "fortran_order": False, "shape": shape}).encode()
    header += b" " * (-(10 + len(header) + 1) % 64) + b"\n"
    count = 1
    for n in shape:
        count *= n
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + b"\x00" * 4 * count


def png_bytes() -> bytes:
    return b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + os.urandom(32)


def random_bytes(size: int) -> bytes:
    return os.urandom(size)
