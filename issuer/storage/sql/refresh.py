"""Refresh-token families and their rotation."""

from __future__ import annotations

from typing import Any

from issuer.models import RefreshFamily, RefreshToken, User
from issuer.storage.database import unique_violations
from issuer.storage.sql._rows import _USER_COLUMNS, SqlStore, _family, _Lost, _refresh, _user, batched, revoke_families

_INSERT_TOKEN = """
    INSERT INTO refresh_tokens (token_hash, family_id, generation, scope, audience, issued_at, expires_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7)
"""


_CONSUME = """
    UPDATE refresh_tokens SET consumed_at = $2, successor_ciphertext = $3
    WHERE token_hash = $1 AND consumed_at IS NULL AND EXISTS (
        SELECT 1 FROM refresh_families f WHERE f.family_id = refresh_tokens.family_id AND f.revoked_at IS NULL
    )
"""
_FORGET_GRANDPARENT = "UPDATE refresh_tokens SET successor_ciphertext = NULL WHERE family_id = $1 AND generation = $2"
# PostgreSQL: a rotation locks its family's row (FOR SHARE) before any token row, as a revocation
# does (its UPDATE of the family comes before its tokens'). So a rotation and a revocation of one
# family queue on that row, never deadlock on the tokens, and a rotation that waited reads the
# family as committed (READ COMMITTED re-reads a row it locked): revoked, it consumes nothing.
# (A subquery would read the statement's snapshot, from before the revocation.)
_LOCKED_FAMILY = """
    SELECT family_id FROM refresh_families
    WHERE family_id = (SELECT family_id FROM refresh_tokens WHERE token_hash = $1) AND revoked_at IS NULL{also}
    FOR SHARE
"""
_CONSUME_LOCKED = """
    UPDATE refresh_tokens t SET consumed_at = {now}, successor_ciphertext = {sealed} FROM fam
    WHERE t.token_hash = $1 AND t.family_id = fam.family_id AND t.consumed_at IS NULL{also}
    RETURNING t.family_id, t.generation, t.scope, t.audience
"""
# The same three steps as data-modifying CTEs: the successor is inserted only if the
# compare-and-swap won, and the grandparent's sealed successor is dropped in the same statement.
_CONSUME_ONE_STATEMENT = f"""
    WITH fam AS ({_LOCKED_FAMILY.format(also="")}),
    won AS ({_CONSUME_LOCKED.format(now="$2", sealed="$3", also="")}),
    successor AS (
        INSERT INTO refresh_tokens (token_hash, family_id, generation, scope, audience, issued_at, expires_at)
        SELECT $4, $5, $6, $7, $8, $9, $10 FROM won RETURNING 1
    ),
    forgotten AS (
        UPDATE refresh_tokens SET successor_ciphertext = NULL
        WHERE family_id = $5 AND generation = $11 AND EXISTS (SELECT 1 FROM won)
    )
    SELECT count(*) AS won FROM successor
"""


# Retention (issuer.retention), each one bounded batch found through an index of migration 0004.
# A family's tokens (consumed ones included: reuse detection must recognise them while the family
# lives) go with it, by ON DELETE CASCADE through the (family_id, generation) index.
FORGET_SUCCESSORS = batched(
    "UPDATE refresh_tokens SET successor_ciphertext = NULL",
    "refresh_tokens",
    "token_hash",
    "successor_ciphertext IS NOT NULL AND consumed_at < $1",
)
PURGE_EXPIRED_FAMILIES = batched("DELETE FROM refresh_families", "refresh_families", "family_id", "expires_at < $1")
PURGE_REVOKED_FAMILIES = batched("DELETE FROM refresh_families", "refresh_families", "family_id", "revoked_at < $1")


_FAMILY_COLUMNS = (
    "f.client_id, f.user_id, f.created_at AS f_created_at, f.expires_at AS f_expires_at, f.revoked_at,"
    " f.session_id, f.auth_time"
)

# The refresh grant's first round trip: the token, its family and the family's user.
_FIND_TOKEN_WITH_USER = (
    "SELECT t.*, " + _FAMILY_COLUMNS + ", "
    + ", ".join(f"u.{c} AS u_{c}" for c in _USER_COLUMNS)
    + " FROM refresh_tokens t JOIN refresh_families f ON f.family_id = t.family_id"
    " LEFT JOIN users u ON u.user_id = f.user_id WHERE t.token_hash = $1"
)


# The usual refresh in one statement (RefreshStore.rotate): the token as it was, and the successor
# if the compare-and-swap won. The conditions are those RefreshTokens.rotate checks in Python
# (_LIVE on SQLite; on PostgreSQL the same, the family's locked first as above).
_LIVE = """
    UPDATE refresh_tokens SET consumed_at = $3, successor_ciphertext = $5
    WHERE token_hash = $1 AND consumed_at IS NULL AND expires_at > $3 AND EXISTS (
        SELECT 1 FROM refresh_families f WHERE f.family_id = refresh_tokens.family_id AND f.revoked_at IS NULL
        AND f.client_id = $2 AND f.expires_at > $3
    )
"""
_SUCCESSOR_OF = """
    INSERT INTO refresh_tokens (token_hash, family_id, generation, scope, audience, issued_at, expires_at)
    SELECT $4, w.family_id, w.generation + 1, w.scope, w.audience, $3, {least}($3 + $6, f.expires_at)
    FROM {won} w JOIN refresh_families f ON f.family_id = w.family_id
"""
_SUCCESSOR_COLUMNS = "s.token_hash AS s_token_hash, s.generation AS s_generation, s.expires_at AS s_expires_at"
_ROTATE_ONE_STATEMENT = f"""
    WITH cur AS ({_FIND_TOKEN_WITH_USER}),
    fam AS ({_LOCKED_FAMILY.format(also=" AND client_id = $2 AND expires_at > $3")}),
    won AS ({_CONSUME_LOCKED.format(now="$3", sealed="$5", also=" AND t.expires_at > $3")}),
    successor AS ({_SUCCESSOR_OF.format(least="LEAST", won="won")}
        RETURNING token_hash, generation, expires_at),
    forgotten AS (
        UPDATE refresh_tokens SET successor_ciphertext = NULL
        WHERE (family_id, generation) IN (SELECT family_id, generation - 1 FROM won)
    )
    SELECT cur.*, {_SUCCESSOR_COLUMNS} FROM cur LEFT JOIN successor s ON true
"""
# SQLite has no data-modifying CTEs: the same steps, one transaction.
_SQLITE_SUCCESSOR = _SUCCESSOR_OF.format(
    least="MIN", won="(SELECT family_id, generation, scope, audience FROM refresh_tokens WHERE token_hash = $1)"
)


def _token_args(t: RefreshToken) -> tuple[Any, ...]:
    return (t.token_hash, t.family_id, t.generation, t.scope, t.audience, t.issued_at, t.expires_at)


class RefreshSql(SqlStore):
    """issuer.storage.base.RefreshStore."""

    async def start_family(self, family: RefreshFamily, first: RefreshToken) -> None:
        async with self.db.transaction() as tx:
            await tx.execute(
                "INSERT INTO refresh_families (family_id, client_id, user_id, created_at, expires_at, session_id,"
                " auth_time) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                family.family_id,
                family.client_id,
                family.user_id,
                family.created_at,
                family.expires_at,
                family.session_id,
                family.auth_time,
            )
            await tx.execute(_INSERT_TOKEN, *_token_args(first))

    async def find_token(self, token_hash: bytes) -> tuple[RefreshToken, RefreshFamily] | None:
        row = await self.db.fetchrow(
            "SELECT t.*, " + _FAMILY_COLUMNS + " FROM refresh_tokens t"
            " JOIN refresh_families f ON f.family_id = t.family_id WHERE t.token_hash = $1",
            token_hash,
        )
        return (_refresh(row), _family(row)) if row else None

    async def find_token_with_user(self, token_hash: bytes) -> tuple[RefreshToken, RefreshFamily, User | None] | None:
        row = await self.db.fetchrow(_FIND_TOKEN_WITH_USER, token_hash)
        if row is None:
            return None
        return _refresh(row), _family(row), _user(row, "u_") if row["u_user_id"] is not None else None

    async def get_token(self, family_id: str, generation: int) -> RefreshToken | None:
        row = await self.db.fetchrow(
            "SELECT * FROM refresh_tokens WHERE family_id = $1 AND generation = $2", family_id, generation
        )
        return _refresh(row) if row else None

    async def consume(self, token_hash: bytes, now: float, successor: RefreshToken, sealed_successor: bytes) -> bool:
        args = (token_hash, now, sealed_successor, *_token_args(successor), successor.generation - 2)
        try:
            if self.db.dialect == "postgres":
                # The hot path of every refresh: one statement (one round trip, atomic on its own).
                row = await self.db.fetchrow(_CONSUME_ONE_STATEMENT, *args)
                return row is not None and row["won"] == 1
            async with self.db.transaction() as tx:
                if await tx.execute(_CONSUME, *args[:3]) != 1:
                    raise _Lost
                await tx.execute(_INSERT_TOKEN, *args[3:10])
                await tx.execute(_FORGET_GRANDPARENT, successor.family_id, args[10])
        except unique_violations(_Lost):
            return False
        return True

    async def rotate(
        self,
        token_hash: bytes,
        client_id: str,
        now: float,
        successor_hash: bytes,
        sealed_successor: bytes,
        idle_ttl: float,
    ) -> tuple[RefreshToken, RefreshFamily, User | None, RefreshToken | None] | None:
        args = (token_hash, client_id, now, successor_hash, sealed_successor, float(idle_ttl))
        try:
            if self.db.dialect == "postgres":
                row = await self.db.fetchrow(_ROTATE_ONE_STATEMENT, *args)
                if row is None:
                    return None
                successor = row if row["s_token_hash"] is not None else None
            else:
                async with self.db.transaction() as tx:
                    row = await tx.fetchrow(_FIND_TOKEN_WITH_USER, token_hash)
                    if row is None:
                        return None
                    successor = None
                    if await tx.execute(_LIVE, *args[:3], None, sealed_successor) == 1:
                        await tx.execute(_SQLITE_SUCCESSOR, token_hash, None, now, successor_hash, None, args[5])
                        await tx.execute(_FORGET_GRANDPARENT, row["family_id"], row["generation"] - 1)
                        successor = await tx.fetchrow(
                            "SELECT token_hash AS s_token_hash, generation AS s_generation,"
                            " expires_at AS s_expires_at FROM refresh_tokens WHERE token_hash = $1",
                            successor_hash,
                        )
        except unique_violations():
            return None  # a successor that exists already (a drawn hash taken): nothing changed, as consume
        token, family = _refresh(row), _family(row)
        user = _user(row, "u_") if row["u_user_id"] is not None else None
        if successor is None:
            return token, family, user, None
        return token, family, user, RefreshToken(
            token_hash=bytes(successor["s_token_hash"]),
            family_id=family.family_id,
            generation=successor["s_generation"],
            scope=token.scope,
            audience=token.audience,
            issued_at=now,
            expires_at=successor["s_expires_at"],
        )

    async def revoke_family(self, family_id: str, now: float, reason: str) -> bool:
        return await revoke_families(self.db, "family_id = $1", (family_id,), now, reason) == 1

    async def revoke_user_families(self, user_id: str, now: float, reason: str, client_id: str | None = None) -> int:
        which = "user_id = $1 AND (CAST($2 AS TEXT) IS NULL OR client_id = $2)"  # $2 NULL: every client's
        return await revoke_families(self.db, which, (user_id, client_id), now, reason)

    async def forget_successors(self, consumed_before: float, limit: int = 1000) -> int:
        return await self.db.execute(FORGET_SUCCESSORS[self.db.dialect], consumed_before, limit)

    async def purge_expired(self, now: float, limit: int = 1000) -> int:
        return await self.db.execute(PURGE_EXPIRED_FAMILIES[self.db.dialect], now, limit)

    async def purge_revoked_families(self, revoked_before: float, limit: int = 1000) -> int:
        return await self.db.execute(PURGE_REVOKED_FAMILIES[self.db.dialect], revoked_before, limit)
