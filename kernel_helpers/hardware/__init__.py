"""Hardware facts for training: CPU, memory, GPUs (NVML), storage, torch, and settings.

Importing this package never imports torch; torch facts come from a child process
(``torch_probe``) and benchmarks run in their own process (``benchmark``).
"""

from __future__ import annotations

from .nvml import nvml
from .profile import collect_static_profile, fingerprint, hardware_profile
from .recommend import recommended_settings

__all__ = [
    "collect_static_profile",
    "fingerprint",
    "hardware_profile",
    "nvml",
    "recommended_settings",
]
