"""The small SQL surface both backends offer. Queries are written once, with ``$n`` placeholders."""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Literal, Protocol

from issuer.errors import ServiceUnavailable

Row = Mapping[str, Any]


def asyncpg_errors(*names: str) -> tuple[type[Exception], ...]:
    """asyncpg's exception classes of those names, for an ``except`` clause, or none if asyncpg
    is not loaded. They are looked up, not imported: a process on SQLite never loads asyncpg
    (about 3 MB), and then no asyncpg error can occur."""
    asyncpg = sys.modules.get("asyncpg")
    return () if asyncpg is None else tuple(getattr(asyncpg, name) for name in names)


def unique_violations(*also: type[Exception]) -> tuple[type[Exception], ...]:
    """What a duplicate key raises on either backend (and ``also``), for an ``except`` clause."""
    return (*also, sqlite3.IntegrityError, *asyncpg_errors("UniqueViolationError"))


class Executor(Protocol):
    async def fetch(self, sql: str, *args: Any) -> Sequence[Row]: ...

    async def fetchrow(self, sql: str, *args: Any) -> Row | None: ...

    async def execute(self, sql: str, *args: Any) -> int:
        """Run a statement; return the number of rows it changed."""
        ...


class Database(Executor, Protocol):
    @property
    def dialect(self) -> Literal["postgres", "sqlite"]: ...

    def transaction(self) -> AbstractAsyncContextManager[Database]:
        """One transaction on one connection; the Database it yields runs every statement in it,
        and a transaction() opened on that one is a savepoint (rolled back alone on error)."""
        ...

    def advisory_lock(self, name: str) -> AbstractAsyncContextManager[bool]:
        """Try to take a cluster-wide lock without waiting; yields whether it was taken."""
        ...

    def migration_lock(self) -> AbstractAsyncContextManager[None]:
        """Wait for, then hold, the lock that serialises whole ``migrate`` runs across processes."""
        ...

    async def run_script(self, script: str) -> None: ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...


class DatabaseUnavailable(ServiceUnavailable):
    """The database cannot be reached or is refusing work right now; each adapter maps its own
    driver's outage errors to this, so callers and the HTTP layer see one type."""


class InTransaction:
    """What a Database bound to one transaction shares across backends: migrations run outside
    any transaction, and its owner (pool or process) closes the connection."""

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        raise NotImplementedError

    @asynccontextmanager
    async def migration_lock(self) -> AsyncIterator[None]:
        raise RuntimeError("no migrations inside a transaction")
        yield  # pragma: no cover

    async def run_script(self, script: str) -> None:
        raise RuntimeError("no migrations inside a transaction")

    async def ping(self) -> None:
        await self.fetchrow("SELECT 1")

    async def close(self) -> None:
        """The transaction's owner closes the connection."""
