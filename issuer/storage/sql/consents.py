"""What users allowed clients, one row per scope (issuer.storage.base.ConsentStore)."""

from __future__ import annotations

from issuer.storage.sql._rows import SqlStore


class ConsentSql(SqlStore):
    """issuer.storage.base.ConsentStore."""

    async def consented_scopes(self, user_id: str, client_id: str) -> list[str]:
        rows = await self.db.fetch(
            "SELECT scope FROM consents WHERE user_id = $1 AND client_id = $2 ORDER BY scope", user_id, client_id
        )
        return [r["scope"] for r in rows]

    async def add_consent(self, user_id: str, client_id: str, scopes: tuple[str, ...], now: float) -> None:
        async with self.db.transaction() as tx:
            for scope in dict.fromkeys(scopes):
                await tx.execute(
                    "INSERT INTO consents (user_id, client_id, scope, granted_at) VALUES ($1, $2, $3, $4)"
                    " ON CONFLICT (user_id, client_id, scope) DO NOTHING",
                    user_id,
                    client_id,
                    scope,
                    now,
                )

    async def revoke_consent(self, user_id: str, client_id: str) -> bool:
        sql = "DELETE FROM consents WHERE user_id = $1 AND client_id = $2"
        return await self.db.execute(sql, user_id, client_id) > 0
