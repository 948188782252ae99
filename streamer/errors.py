"""The base exception for errors that reach a client or an operator as one sentence."""

from __future__ import annotations

from typing import Any


class StreamerError(Exception):
    """An error with an HTTP status and a message written for the person who caused it.

    Subclasses live beside the code that raises them; the app renders every one of them as JSON.
    """

    status_code = 500

    def __init__(self, message: str, **detail: Any) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail
        self.headers: dict[str, str] = {}

    def to_json(self) -> dict[str, Any]:
        return {"error": self.message, **self.detail}
