"""PostgreSQL backend through an asyncpg pool."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any, Literal

import asyncpg

from issuer.storage.database import Database, DatabaseUnavailable, InTransaction, Row

# The server is unreachable, gone, shutting down, out of connections or cancelled our statement:
# none of these is the request's fault, and a retry later may succeed. (TimeoutError is an OSError.)
_OUTAGE = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InsufficientResourcesError,
    asyncpg.exceptions.InvalidCatalogNameError,
)

# Serialises whole `issuer migrate` runs (issuer.storage.migrate).
_MIGRATION_LOCK = 7210389


@contextmanager
def _outage_is_unavailable(conn: asyncpg.Connection | None = None) -> Iterator[None]:
    try:
        yield
    except _OUTAGE as exc:
        raise DatabaseUnavailable(type(exc).__name__) from exc
    except (asyncpg.InterfaceError, asyncpg.exceptions.InternalClientError) as exc:
        # A connection the server cut mid-statement can surface as a client-side state error
        # ("cannot switch to state …"); it is an outage when the connection is indeed gone.
        if conn is not None and conn.is_closed():
            raise DatabaseUnavailable(type(exc).__name__) from exc
        raise


def _rowcount(status: str) -> int:
    tail = status.rsplit(" ", 1)[-1]
    return int(tail) if tail.isdigit() else 0


async def _no_reset(conn: asyncpg.Connection) -> None:
    """asyncpg's default reset sends `RESET ALL; UNLISTEN *; …` on every release: a round trip
    per query. We never leave session state behind (transactions close in their context
    manager, advisory locks are released in `advisory_lock`), so nothing needs resetting."""


class _Conn(InTransaction):
    """Statements on one acquired connection; inside PostgresDatabase.transaction() it is the
    Database bound to that transaction (a nested transaction() is a savepoint)."""

    dialect: Literal["postgres"] = "postgres"

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def fetch(self, sql: str, *args: Any) -> Sequence[Row]:
        with _outage_is_unavailable(self._conn):
            return await self._conn.fetch(sql, *args)  # type: ignore[no-any-return]

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        with _outage_is_unavailable(self._conn):
            return await self._conn.fetchrow(sql, *args)  # type: ignore[no-any-return]

    async def execute(self, sql: str, *args: Any) -> int:
        with _outage_is_unavailable(self._conn):
            return _rowcount(await self._conn.execute(sql, *args))


    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Database]:
        with _outage_is_unavailable(self._conn):
            async with self._conn.transaction():
                yield self

    @asynccontextmanager
    async def advisory_lock(self, name: str) -> AsyncIterator[bool]:
        # Transaction-scoped: released at commit or rollback, never left on a pooled connection.
        with _outage_is_unavailable(self._conn):
            taken = await self._conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", _lock_id(name))
        yield bool(taken)


def _lock_id(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


class PostgresDatabase:
    dialect: Literal["postgres"] = "postgres"

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @classmethod
    async def connect(cls, url: str, *, min_size: int = 2, max_size: int = 10) -> PostgresDatabase:
        pool = await asyncpg.create_pool(url, min_size=min_size, max_size=max_size, command_timeout=30, reset=_no_reset)
        return cls(pool)

    @asynccontextmanager
    async def _acquire(self) -> AsyncIterator[asyncpg.Connection]:
        try:
            conn = await self._pool.acquire()
        except (*_OUTAGE, asyncpg.PostgresError) as exc:
            # Whatever keeps us from getting a connection (refused, database gone or closed to
            # connections, too many clients) means the database is unavailable to us for now.
            raise DatabaseUnavailable(type(exc).__name__) from exc
        try:
            yield conn
        finally:
            await self._pool.release(conn)

    async def fetch(self, sql: str, *args: Any) -> Sequence[Row]:
        async with self._acquire() as conn:
            return await _Conn(conn).fetch(sql, *args)

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        async with self._acquire() as conn:
            return await _Conn(conn).fetchrow(sql, *args)

    async def execute(self, sql: str, *args: Any) -> int:
        async with self._acquire() as conn:
            return await _Conn(conn).execute(sql, *args)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Database]:
        async with self._acquire() as conn:
            with _outage_is_unavailable(conn):
                async with conn.transaction():
                    yield _Conn(conn)

    @asynccontextmanager
    async def advisory_lock(self, name: str) -> AsyncIterator[bool]:
        lock_id = _lock_id(name)
        async with self._acquire() as conn:
            with _outage_is_unavailable(conn):
                taken = await conn.fetchval("SELECT pg_try_advisory_lock($1)", lock_id)
            try:
                yield bool(taken)
            finally:
                if taken:
                    with _outage_is_unavailable(conn):
                        await conn.execute("SELECT pg_advisory_unlock($1)", lock_id)

    @asynccontextmanager
    async def migration_lock(self) -> AsyncIterator[None]:
        # A session lock on a connection of its own, held across the whole run; the scripts run
        # on other connections. (Not the id of the per-script xact lock: that would wait on us.)
        async with self._acquire() as conn:
            with _outage_is_unavailable(conn):
                await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
            try:
                yield
            finally:
                with _outage_is_unavailable(conn):
                    await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)

    async def run_script(self, script: str) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(script)

    async def ping(self) -> None:
        await self._pool.fetchval("SELECT 1")

    async def close(self) -> None:
        await self._pool.close()
