"""Revoked access-token ids, kept until the token would have expired."""

from __future__ import annotations

from issuer.storage.sql._rows import SqlStore, batched

# Retention (issuer.retention): one bounded batch, found through revoked_tokens_expiry.
PURGE_REVOKED = batched("DELETE FROM revoked_tokens", "revoked_tokens", "jti", "expires_at < $1")


class RevocationSql(SqlStore):
    """issuer.storage.base.RevocationStore."""

    async def revoke_jti(self, jti: str, expires_at: float, now: float) -> None:
        await self.db.execute(
            "INSERT INTO revoked_tokens (jti, expires_at, revoked_at) VALUES ($1, $2, $3) ON CONFLICT (jti) DO NOTHING",
            jti,
            expires_at,
            now,
        )

    async def is_revoked(self, jti: str) -> bool:
        return await self.db.fetchrow("SELECT 1 FROM revoked_tokens WHERE jti = $1", jti) is not None

    async def revoked_since(self, now: float) -> list[tuple[str, float]]:
        rows = await self.db.fetch("SELECT jti, expires_at FROM revoked_tokens WHERE expires_at > $1", now)
        return [(r["jti"], r["expires_at"]) for r in rows]

    async def revoked_after(self, since: float, now: float) -> list[tuple[str, float]]:
        # Narrowed by the expiry index first: only unexpired ids, a short list, are scanned.
        rows = await self.db.fetch(
            "SELECT jti, expires_at FROM revoked_tokens WHERE expires_at > $1 AND revoked_at > $2", now, since
        )
        return [(r["jti"], r["expires_at"]) for r in rows]

    async def purge_revoked(self, before: float, limit: int = 1000) -> int:
        return await self.db.execute(PURGE_REVOKED[self.db.dialect], before, limit)
