"""Which Python a kernel runs: the environment whose torch facts a profile reports.

Jobs run in a kernel's environment (its kernelspec's interpreter), which may be another
venv or conda env than the server's. The server's own interpreter stands for "no kernel
named". A kernelspec whose first argument is a bare ``python``/``python3`` means the
server's interpreter, as jupyter_client reads it.
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from typing import Any, Protocol

from ..errors import bad_request


class KernelSpecs(Protocol):
    """What is used of jupyter_client's ``KernelSpecManager``."""

    def get_kernel_spec(self, kernel_name: str) -> Any: ...


@dataclass(frozen=True)
class KernelEnvironment:
    """An interpreter whose facts are reported, and the kernel it was named by."""

    python: str
    kernel_name: str | None = None  # None: the server's own interpreter

    def describe(self) -> dict[str, Any]:
        """What the API says of where the torch facts and the benchmark came from."""
        return {"kernel_name": self.kernel_name, "python": self.python,
                "source": "kernelspec" if self.kernel_name else "server"}


SERVER_ENVIRONMENT = KernelEnvironment(sys.executable)
_BARE_PYTHON = {"python", f"python{sys.version_info[0]}",
                f"python{sys.version_info[0]}.{sys.version_info[1]}"}
MAX_KERNEL_NAME = 200


def kernel_environment(specs: KernelSpecs | None, kernel_name: str | None
                       ) -> KernelEnvironment:
    """The environment of ``kernel_name`` (blocking: reads kernelspecs); 400 when there is
    no such Python kernel or its interpreter is missing."""
    if not kernel_name:
        return SERVER_ENVIRONMENT
    if len(kernel_name) > MAX_KERNEL_NAME or specs is None:
        raise bad_request(f"no kernel named {kernel_name[:MAX_KERNEL_NAME]!r}",
                          "unknown_kernel")
    try:
        spec = specs.get_kernel_spec(kernel_name)
    except Exception:
        raise bad_request(f"no kernel named {kernel_name!r}", "unknown_kernel") from None
    if str(getattr(spec, "language", "")).lower() != "python" or not spec.argv:
        raise bad_request(f"kernel {kernel_name!r} does not run Python", "not_python_kernel")
    first = str(spec.argv[0])
    if first in _BARE_PYTHON:
        return KernelEnvironment(sys.executable, kernel_name)
    python = shutil.which(first) if os.sep not in first else first
    if not python or not os.access(python, os.X_OK):
        raise bad_request(f"kernel {kernel_name!r} names an interpreter that is not there: "
                          f"{first}", "kernel_unavailable")
    return KernelEnvironment(python, kernel_name)
