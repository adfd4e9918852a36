"""Every store, written once in SQL that both PostgreSQL and SQLite run.

Atomic steps are single statements or one transaction with compare-and-swap updates;
nothing reads a row and then writes based on it without a guard in the WHERE clause.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from issuer.storage.database import Database
from issuer.storage.sql.audit import AuditSql
from issuer.storage.sql.clients import ClientSql
from issuer.storage.sql.codes import CodeSql
from issuer.storage.sql.consents import ConsentSql
from issuer.storage.sql.keys import KeySql
from issuer.storage.sql.refresh import RefreshSql
from issuer.storage.sql.revocations import RevocationSql
from issuer.storage.sql.secrets import SecretSql
from issuer.storage.sql.sessions import SessionSql
from issuer.storage.sql.users import UserSql

__all__ = ["SqlStorage"]


class SqlStorage(
    ClientSql, SecretSql, KeySql, UserSql, RefreshSql, RevocationSql, AuditSql, SessionSql, ConsentSql, CodeSql
):
    """Implements every protocol in issuer.storage.base and keys.store over a Database,
    one mixin per store (each in its own module here)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[SqlStorage]:
        """Every store, bound to one transaction: all or nothing of what is done through it (an
        operation's change and its audit entry). SQLite: BEGIN IMMEDIATE on its one connection,
        which holds that process's other statements until the end, so keep it short; PostgreSQL:
        one pooled connection. A store method that opens its own transaction gets a savepoint."""
        async with self.db.transaction() as tx:
            yield SqlStorage(tx)
