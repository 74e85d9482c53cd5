"""The error an ARI resource answers with (status, message, and the JSON key Asterisk puts it under).

A leaf module: the REST layer, the resources and the dialplan side all raise it without importing each other.
"""

from __future__ import annotations


class AriError(Exception):
    def __init__(self, status: int, message: str, key: str = "message") -> None:
        super().__init__(message)
        self.status, self.message, self.key = status, message, key
