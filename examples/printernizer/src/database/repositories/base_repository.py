"""The base of its repositories."""

from __future__ import annotations

from ..database import Database


class BaseRepository:
    def __init__(self, database: Database) -> None:
        self.database = database
