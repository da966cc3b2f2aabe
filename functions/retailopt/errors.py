"""Errors of a request the domain refuses, with the HTTP status the API answers them with."""

from __future__ import annotations


class StatusError(Exception):
    """An action that cannot be done: `status` (400 invalid, 403, 404, 409 state) and why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
