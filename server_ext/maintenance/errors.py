"""``MaintenanceError``: a refusal or failure told to the user, with its exit status."""

from __future__ import annotations

#: problems found (doctor)
EXIT_PROBLEMS = 1
#: bad input: a missing or damaged backup, a destination that exists, an unreadable store
EXIT_INVALID = 2
#: a server owns the workspace
EXIT_OWNED = 3


class MaintenanceError(Exception):
    """What went wrong, in words for the user, and the command's exit status."""

    def __init__(self, message: str, exit_status: int = EXIT_INVALID) -> None:
        super().__init__(message)
        self.message = message
        self.exit_status = exit_status
