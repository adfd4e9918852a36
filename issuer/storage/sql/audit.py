"""The audit log of administrative actions."""

from __future__ import annotations

import json

from issuer.models import AuditEntry
from issuer.storage.sql._rows import SqlStore, batched

# Retention (issuer.retention): one bounded batch, found through audit_log_at.
PURGE_AUDIT = batched("DELETE FROM audit_log", "audit_log", "id", "at < $1")


class AuditSql(SqlStore):
    """issuer.storage.base.AuditStore."""

    async def append_audit(
        self, at: float, actor: str, action: str, target: str, detail: dict[str, object], remote_addr: str
    ) -> None:
        await self.db.execute(
            "INSERT INTO audit_log (at, actor, action, target, detail, remote_addr) VALUES ($1, $2, $3, $4, $5, $6)",
            at,
            actor,
            action,
            target,
            json.dumps(detail, sort_keys=True),
            remote_addr,
        )

    async def purge_audit(self, before: float, limit: int = 1000) -> int:
        return await self.db.execute(PURGE_AUDIT[self.db.dialect], before, limit)

    async def list_audit(self, *, limit: int, before: int = 0) -> list[AuditEntry]:
        # Two statements rather than "$1 = 0 OR id < $1": there asyncpg would type $1 as int4.
        if before:
            rows = await self.db.fetch("SELECT * FROM audit_log WHERE id < $1 ORDER BY id DESC LIMIT $2", before, limit)
        else:
            rows = await self.db.fetch("SELECT * FROM audit_log ORDER BY id DESC LIMIT $1", limit)
        return [
            AuditEntry(
                id=r["id"],
                at=r["at"],
                actor=r["actor"],
                action=r["action"],
                target=r["target"],
                detail=json.loads(r["detail"]),
                remote_addr=r["remote_addr"],
            )
            for r in rows
        ]
