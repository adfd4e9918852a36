"""What users allowed clients, one row per scope (issuer.storage.base.ConsentStore)."""

from __future__ import annotations

from issuer.models import ConsentGrant
from issuer.storage.sql._rows import SqlStore


class ConsentSql(SqlStore):
    """issuer.storage.base.ConsentStore."""

    async def consented_scopes(self, user_id: str, client_id: str) -> list[str]:
        rows = await self.db.fetch(
            "SELECT scope FROM consents WHERE user_id = $1 AND client_id = $2 ORDER BY scope", user_id, client_id
        )
        return [r["scope"] for r in rows]

    async def add_consent(self, user_id: str, client_id: str, scopes: tuple[str, ...], now: float) -> tuple[str, ...]:
        added = []
        async with self.db.transaction() as tx:
            for scope in dict.fromkeys(scopes):
                row = await tx.fetchrow(
                    "INSERT INTO consents (user_id, client_id, scope, granted_at) VALUES ($1, $2, $3, $4)"
                    " ON CONFLICT (user_id, client_id, scope) DO NOTHING RETURNING scope",
                    user_id,
                    client_id,
                    scope,
                    now,
                )
                if row is not None:
                    added.append(scope)
        return tuple(added)

    async def revoke_consent(self, user_id: str, client_id: str) -> bool:
        sql = "DELETE FROM consents WHERE user_id = $1 AND client_id = $2"
        return await self.db.execute(sql, user_id, client_id) > 0

    async def list_consents(self, user_id: str) -> list[ConsentGrant]:
        rows = await self.db.fetch(
            "SELECT client_id, scope, granted_at FROM consents WHERE user_id = $1 ORDER BY client_id, scope", user_id
        )
        grants: dict[str, ConsentGrant] = {}
        for r in rows:
            seen = grants.get(r["client_id"])
            scopes = (*seen.scopes, r["scope"]) if seen else (r["scope"],)
            at = max(seen.granted_at, r["granted_at"]) if seen else r["granted_at"]
            grants[r["client_id"]] = ConsentGrant(r["client_id"], scopes, float(at))
        return list(grants.values())
