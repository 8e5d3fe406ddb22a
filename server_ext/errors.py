"""The error model: every failure leaves as ``{"error": {"code", "message"}}``."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from tornado.web import HTTPError


class ApiError(HTTPError):
    """A client-facing error with an HTTP status, a stable code and a message."""

    def __init__(self, status: int, code: str, message: str, **details: Any) -> None:
        super().__init__(status, message.replace("%", "%%"))
        self.status = status
        self.code = code
        self.message = message
        self.details = details

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            error["details"] = self.details
        return {"error": error}


def bad_request(message: str, code: str = "invalid_request", **details: Any) -> ApiError:
    return ApiError(400, code, message, **details)


def not_found(message: str = "not found", code: str = "not_found") -> ApiError:
    return ApiError(404, code, message)


def conflict(message: str, code: str = "conflict", **details: Any) -> ApiError:
    return ApiError(409, code, message, **details)


def status_code_name(status: int) -> str:
    """A snake_case code for a bare HTTP status (``403`` -> ``forbidden``)."""
    try:
        return HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")
    except ValueError:
        return "error"
