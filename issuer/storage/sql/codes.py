"""Authorization codes (issuer.storage.base.CodeStore): single use by compare-and-swap."""

from __future__ import annotations

from issuer.models import AuthorizationCode
from issuer.storage.database import Row
from issuer.storage.sql._rows import SqlStore, batched

# Retention (issuer.retention): one bounded batch, found through authorization_codes_expiry.
PURGE_CODES = batched("DELETE FROM authorization_codes", "authorization_codes", "code_hash", "expires_at < $1")


def _code(row: Row) -> AuthorizationCode:
    return AuthorizationCode(
        code_hash=bytes(row["code_hash"]),
        client_id=row["client_id"],
        user_id=row["user_id"],
        session_id=row["session_id"],
        redirect_uri=row["redirect_uri"],
        code_challenge=row["code_challenge"],
        nonce=row["nonce"],
        scope=row["scope"],
        audience=row["audience"],
        auth_time=row["auth_time"],
        issued_at=row["issued_at"],
        expires_at=row["expires_at"],
        consumed_at=row["consumed_at"],
        family_id=row["family_id"],
        access_jti=row["access_jti"],
        access_expires_at=row["access_expires_at"],
        replayed_at=row["replayed_at"],
    )


class CodeSql(SqlStore):
    """issuer.storage.base.CodeStore."""

    async def create_code(self, code: AuthorizationCode) -> None:
        await self.db.execute(
            "INSERT INTO authorization_codes (code_hash, client_id, user_id, session_id, redirect_uri,"
            " code_challenge, nonce, scope, audience, auth_time, issued_at, expires_at)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            code.code_hash,
            code.client_id,
            code.user_id,
            code.session_id,
            code.redirect_uri,
            code.code_challenge,
            code.nonce,
            code.scope,
            code.audience,
            code.auth_time,
            code.issued_at,
            code.expires_at,
        )

    async def consume_code(self, code_hash: bytes, now: float) -> tuple[AuthorizationCode, bool] | None:
        async with self.db.transaction() as tx:
            won = (
                await tx.execute(
                    "UPDATE authorization_codes SET consumed_at = $2 WHERE code_hash = $1 AND consumed_at IS NULL",
                    code_hash,
                    now,
                )
                == 1
            )
            if not won:
                await tx.execute(
                    "UPDATE authorization_codes SET replayed_at = $2 WHERE code_hash = $1 AND replayed_at IS NULL",
                    code_hash,
                    now,
                )
            row = await tx.fetchrow("SELECT * FROM authorization_codes WHERE code_hash = $1", code_hash)
        return (_code(row), won) if row else None

    async def record_code_tokens(
        self, code_hash: bytes, family_id: str | None, access_jti: str, access_expires_at: float
    ) -> bool:
        row = await self.db.fetchrow(
            "UPDATE authorization_codes SET family_id = $2, access_jti = $3, access_expires_at = $4"
            " WHERE code_hash = $1 RETURNING replayed_at",
            code_hash,
            family_id,
            access_jti,
            access_expires_at,
        )
        return row is not None and row["replayed_at"] is not None

    async def purge_codes(self, before: float, limit: int = 1000) -> int:
        return await self.db.execute(PURGE_CODES[self.db.dialect], before, limit)
