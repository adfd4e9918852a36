"""Embedded SQLite backend (aiosqlite) for the zero-setup default.

One connection per process; an asyncio lock serialises statements so a transaction is
never interleaved with another coroutine's statements. Write transactions start with
``BEGIN IMMEDIATE`` so several processes on one file also serialise correctly.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import re
import sqlite3
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import aiosqlite

from issuer.storage.database import Database, DatabaseUnavailable, InTransaction, Row

_PLACEHOLDER = re.compile(r"\$(\d+)")
# OperationalError also means bad SQL; only these messages mean "the file cannot serve us now".
_OUTAGE_MESSAGES = ("database is locked", "unable to open", "disk i/o error", "database or disk is full")


@contextmanager
def _outage_is_unavailable() -> Iterator[None]:
    try:
        yield
    except sqlite3.OperationalError as exc:
        if any(m in str(exc).lower() for m in _OUTAGE_MESSAGES):
            raise DatabaseUnavailable(str(exc)) from exc
        raise


@asynccontextmanager
async def _file_lock(path: str, *, wait: bool) -> AsyncIterator[bool]:
    """An exclusive flock(2) on ``path`` (created if need be); yields whether it was taken.
    Locks belong to the open file, so two connections in one process exclude each other too."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            if wait:
                await asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX)
            else:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            taken = True
        except BlockingIOError:
            taken = False
        yield taken
    finally:
        os.close(fd)  # releases the lock


async def _enable_wal(conn: aiosqlite.Connection, attempts: int = 50) -> None:
    """Switch the file to WAL. While another process creates or switches the same new file,
    SQLite answers "database is locked" at once, without its busy handler: retry a while."""
    for attempt in range(attempts):
        try:
            await conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc).lower() or attempt == attempts - 1:
                raise
            await asyncio.sleep(0.02 * (attempt + 1))


@lru_cache(maxsize=512)
def _translate(sql: str) -> str:
    return _PLACEHOLDER.sub(r"?\1", sql).replace(" FOR UPDATE", "")


class _Tx(InTransaction):
    """Statements on the one connection, run by whoever holds SqliteDatabase's lock; inside
    SqliteDatabase.transaction() it is the Database bound to that transaction."""

    dialect: Literal["sqlite"] = "sqlite"

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn
        self._depth = 0

    async def fetch(self, sql: str, *args: Any) -> Sequence[Row]:
        with _outage_is_unavailable():
            async with self._conn.execute(_translate(sql), args) as cur:
                return await cur.fetchall()  # type: ignore[return-value]

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        with _outage_is_unavailable():
            async with self._conn.execute(_translate(sql), args) as cur:
                return await cur.fetchone()  # type: ignore[return-value]

    async def execute(self, sql: str, *args: Any) -> int:
        with _outage_is_unavailable():
            async with self._conn.execute(_translate(sql), args) as cur:
                return cur.rowcount

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Database]:
        self._depth += 1
        name = f"sp{self._depth}"
        try:
            await self.execute(f"SAVEPOINT {name}")
            try:
                yield self
            except BaseException:
                await self._conn.execute(f"ROLLBACK TO {name}")
                await self._conn.execute(f"RELEASE {name}")
                raise
            await self.execute(f"RELEASE {name}")
        finally:
            self._depth -= 1

    @asynccontextmanager
    async def advisory_lock(self, name: str) -> AsyncIterator[bool]:
        yield True


class SqliteDatabase:
    dialect: Literal["sqlite"] = "sqlite"

    def __init__(self, conn: aiosqlite.Connection, path: str = ":memory:") -> None:
        self._conn = conn
        self._path = path
        self._lock = asyncio.Lock()
        self._tx = _Tx(conn)

    @classmethod
    async def connect(cls, path: str) -> SqliteDatabase:
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        conn = await aiosqlite.connect(path, isolation_level=None, timeout=30)
        try:
            conn.row_factory = sqlite3.Row
            await _enable_wal(conn)
            await conn.execute("PRAGMA foreign_keys=ON")
            await conn.execute("PRAGMA busy_timeout=30000")
            await conn.execute("PRAGMA synchronous=NORMAL")
        except BaseException:
            # aiosqlite's worker thread is not a daemon: an unclosed connection keeps the
            # process alive after its error (a `migrate` that never exits).
            await conn.close()
            raise
        return cls(conn, path)

    async def fetch(self, sql: str, *args: Any) -> Sequence[Row]:
        async with self._lock:
            return await self._tx.fetch(sql, *args)

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        async with self._lock:
            return await self._tx.fetchrow(sql, *args)

    async def execute(self, sql: str, *args: Any) -> int:
        async with self._lock:
            return await self._tx.execute(sql, *args)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Database]:
        async with self._lock:
            with _outage_is_unavailable():
                await self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._tx
            except BaseException:
                await self._conn.execute("ROLLBACK")
                raise
            else:
                try:
                    with _outage_is_unavailable():
                        await self._conn.execute("COMMIT")
                except DatabaseUnavailable:
                    await self._conn.execute("ROLLBACK")
                    raise

    @asynccontextmanager
    async def advisory_lock(self, name: str) -> AsyncIterator[bool]:
        # The processes sharing one file (`serve --workers N`) take turns through a lock file
        # beside it; an in-memory database has only this process.
        if self._path == ":memory:":
            yield True
            return
        async with _file_lock(f"{self._path}.{name}.lock", wait=False) as taken:
            yield taken

    @asynccontextmanager
    async def migration_lock(self) -> AsyncIterator[None]:
        if self._path == ":memory:":
            yield
            return
        async with _file_lock(f"{self._path}.migrate.lock", wait=True):
            yield

    async def run_script(self, script: str) -> None:
        async with self._lock:
            await self._conn.executescript("BEGIN IMMEDIATE;\n" + script + "\nCOMMIT;")

    async def ping(self) -> None:
        await self.fetchrow("SELECT 1")

    async def close(self) -> None:
        await self._conn.close()
