"""PostgreSQL backend through an asyncpg pool."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, Literal

import asyncpg

from issuer.storage.database import Executor, Row


def _rowcount(status: str) -> int:
    tail = status.rsplit(" ", 1)[-1]
    return int(tail) if tail.isdigit() else 0


async def _no_reset(conn: asyncpg.Connection) -> None:
    """asyncpg's default reset sends `RESET ALL; UNLISTEN *; …` on every release: a round trip
    per query. We never leave session state behind (transactions close in their context
    manager, advisory locks are released in `advisory_lock`), so nothing needs resetting."""


class _Conn:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def fetch(self, sql: str, *args: Any) -> Sequence[Row]:
        return await self._conn.fetch(sql, *args)  # type: ignore[no-any-return]

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        return await self._conn.fetchrow(sql, *args)  # type: ignore[no-any-return]

    async def execute(self, sql: str, *args: Any) -> int:
        return _rowcount(await self._conn.execute(sql, *args))


class PostgresDatabase:
    dialect: Literal["postgres"] = "postgres"

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @classmethod
    async def connect(cls, url: str, *, min_size: int = 2, max_size: int = 10) -> PostgresDatabase:
        pool = await asyncpg.create_pool(url, min_size=min_size, max_size=max_size, command_timeout=30, reset=_no_reset)
        return cls(pool)

    async def fetch(self, sql: str, *args: Any) -> Sequence[Row]:
        return await self._pool.fetch(sql, *args)  # type: ignore[no-any-return]

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        return await self._pool.fetchrow(sql, *args)  # type: ignore[no-any-return]

    async def execute(self, sql: str, *args: Any) -> int:
        return _rowcount(await self._pool.execute(sql, *args))

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Executor]:
        async with self._pool.acquire() as conn, conn.transaction():
            yield _Conn(conn)

    @asynccontextmanager
    async def advisory_lock(self, name: str) -> AsyncIterator[bool]:
        lock_id = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
        async with self._pool.acquire() as conn:
            taken = await conn.fetchval("SELECT pg_try_advisory_lock($1)", lock_id)
            try:
                yield bool(taken)
            finally:
                if taken:
                    await conn.execute("SELECT pg_advisory_unlock($1)", lock_id)

    async def run_script(self, script: str) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(script)

    async def ping(self) -> None:
        await self._pool.fetchval("SELECT 1")

    async def close(self) -> None:
        await self._pool.close()
