"""PostgreSQL backend through an asyncpg pool."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any, Literal, TypeVar

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

T = TypeVar("T")

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
    """asyncpg's pool, with connections kept at hand between statements: asyncpg returns each
    connection to its pool through a new task (``asyncio.shield``) and re-arms an idle timer,
    about 80 µs of CPU per statement on a 2-core VM, more than the statement itself. A connection
    that served a statement without error stays checked out, on ``_ready``, for the next one;
    any error (or cancellation) hands it back to asyncpg's pool, which resets or replaces it, and
    a connection found closed is handed back too, and so is every connection while some task
    waits in asyncpg's queue. So asyncpg still opens, counts and closes every connection, within
    the same max_size."""

    dialect: Literal["postgres"] = "postgres"

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._ready: list[asyncpg.Connection] = []
        self._waiting = 0  # tasks waiting in asyncpg's pool.acquire()
        self._closing = False  # close() waits for every connection to come back: none is parked

    @classmethod
    async def connect(cls, url: str, *, min_size: int = 2, max_size: int = 10) -> PostgresDatabase:
        pool = await asyncpg.create_pool(url, min_size=min_size, max_size=max_size, command_timeout=30, reset=_no_reset)
        return cls(pool)

    async def _checkout(self) -> asyncpg.Connection:
        while self._ready:
            conn = self._ready.pop()
            try:
                if not conn.is_closed():
                    return conn
            except asyncpg.InterfaceError:
                continue  # closed under us, and asyncpg already took it back ("released")
            await self._pool.release(conn)  # the server or the network closed it: asyncpg replaces it
        self._waiting += 1
        try:
            return await self._pool.acquire()
        except (*_OUTAGE, asyncpg.PostgresError) as exc:
            # Whatever keeps us from getting a connection (refused, database gone or closed to
            # connections, too many clients) means the database is unavailable to us for now.
            raise DatabaseUnavailable(type(exc).__name__) from exc
        finally:
            self._waiting -= 1

    async def _checkin(self, conn: asyncpg.Connection) -> None:
        if self._waiting or self._closing:  # someone waits in asyncpg's queue, or it is closing
            await self._pool.release(conn)
        else:
            self._ready.append(conn)

    @asynccontextmanager
    async def _acquire(self) -> AsyncIterator[asyncpg.Connection]:
        conn = await self._checkout()
        try:
            yield conn
        except BaseException:
            await self._pool.release(conn)
            raise
        try:
            idle = not conn.is_in_transaction()  # transactions close in their context manager
        except asyncpg.InterfaceError:
            return  # closed meanwhile, and asyncpg already took it back
        await (self._checkin(conn) if idle else self._pool.release(conn))

    async def _statement(self, run: Callable[[_Conn], Awaitable[T]]) -> T:
        """One statement on a connection at hand: ``_acquire`` without a context manager (the
        three single-statement calls below are the hot ones; about 10 µs each saved)."""
        conn = await self._checkout()
        try:
            result = await run(_Conn(conn))
        except BaseException:
            await self._pool.release(conn)
            raise
        await self._checkin(conn)
        return result

    async def fetch(self, sql: str, *args: Any) -> Sequence[Row]:
        return await self._statement(lambda conn: conn.fetch(sql, *args))

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        return await self._statement(lambda conn: conn.fetchrow(sql, *args))

    async def execute(self, sql: str, *args: Any) -> int:
        return await self._statement(lambda conn: conn.execute(sql, *args))

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
        async with self._acquire() as conn, conn.transaction():
            await conn.execute(script)

    async def ping(self) -> None:
        async with self._acquire() as conn:
            await conn.fetchval("SELECT 1")

    async def close(self) -> None:
        self._closing = True
        ready, self._ready = self._ready, []
        for conn in ready:
            with contextlib.suppress(asyncpg.InterfaceError):  # asyncpg may have taken it back already
                await self._pool.release(conn)
        await self._pool.close()
