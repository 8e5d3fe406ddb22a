"""Configuration sections renamed with the project's prefix, reported when a config uses them.

A configurable class's name is a global configuration key in Jupyter: ``c.JobService`` would
set any extension's ``JobService``. notebench's classes carry its prefix, so a section under
an old name no longer applies to notebench; it is reported at start rather than lost silently.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

RENAMED_SECTIONS = {
    "JobService": "NotebenchJobService",
    "AssetRegistry": "NotebenchAssetRegistry",
    "MonitoringService": "NotebenchMonitoringService",
}


def renamed_sections(config: Mapping[str, Any]) -> list[tuple[str, str, list[str]]]:
    """(old name, new name, option names) for each non-empty section under an old name."""
    found = []
    for old, new in RENAMED_SECTIONS.items():
        section = config.get(old)  # get, not [], which would create the section
        if section:
            found.append((old, new, sorted(section)))
    return found


def warn_renamed_sections(config: Mapping[str, Any], logger: logging.Logger) -> None:
    """Log a warning for each section of ``config`` under a name notebench no longer reads."""
    for old, new, options in renamed_sections(config):
        logger.warning(
            "notebench: the configuration section %s was renamed to %s; notebench ignores "
            "%s (rename them if they were meant for notebench)", old, new,
            ", ".join(f"{old}.{name}" for name in options),
        )
