"""Storage: one SQL implementation of every store over two database backends."""

from __future__ import annotations

from urllib.parse import urlsplit

from issuer.storage.database import Database
from issuer.storage.sql import SqlStorage

__all__ = ["Database", "SqlStorage", "open_database", "sqlite_path"]


def sqlite_path(url: str) -> str:
    # sqlite:///relative/path, sqlite:////absolute/path, sqlite:///:memory:
    return url.split("sqlite:///", 1)[1] if url.startswith("sqlite:///") else ""


async def open_database(url: str, *, pool_size: int = 10) -> Database:
    scheme = urlsplit(url).scheme
    if scheme in ("postgres", "postgresql"):
        from issuer.storage.postgres import PostgresDatabase

        return await PostgresDatabase.connect(url, max_size=pool_size)
    if scheme == "sqlite" and sqlite_path(url):
        from issuer.storage.sqlite import SqliteDatabase

        return await SqliteDatabase.connect(sqlite_path(url))
    raise ValueError("ISSUER_DATABASE_URL must be postgresql://… or sqlite:///path")
