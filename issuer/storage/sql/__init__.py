"""Every store, written once in SQL that both PostgreSQL and SQLite run.

Atomic steps are single statements or one transaction with compare-and-swap updates;
nothing reads a row and then writes based on it without a guard in the WHERE clause.
"""

from __future__ import annotations

from issuer.storage.database import Database
from issuer.storage.sql.audit import AuditSql
from issuer.storage.sql.clients import ClientSql
from issuer.storage.sql.keys import KeySql
from issuer.storage.sql.refresh import RefreshSql
from issuer.storage.sql.revocations import RevocationSql
from issuer.storage.sql.secrets import SecretSql
from issuer.storage.sql.users import UserSql

__all__ = ["SqlStorage"]


class SqlStorage(ClientSql, SecretSql, KeySql, UserSql, RefreshSql, RevocationSql, AuditSql):
    """Implements every protocol in issuer.storage.base and keys.store over a Database,
    one mixin per store (each in its own module here)."""

    def __init__(self, db: Database) -> None:
        self.db = db
