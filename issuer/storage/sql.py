"""Every store, written once in SQL that both PostgreSQL and SQLite run.

Atomic steps are single statements or one transaction with compare-and-swap updates;
nothing reads a row and then writes based on it without a guard in the WHERE clause.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import asyncpg

from issuer.models import AuditEntry, Client, RefreshFamily, RefreshToken, User
from issuer.names import email_key, username_key
from issuer.storage.base import Conflict
from issuer.storage.database import Database, Row
from keys.lifecycle import KeyState, SigningKey, Transition

_STATE_TIME = {
    KeyState.ACTIVE: "activated_at",
    KeyState.RETIRED: "retired_at",
    KeyState.REVOKED: "revoked_at",
}


def _tuple(text: str) -> tuple[str, ...]:
    return tuple(json.loads(text))


def _json(values: tuple[str, ...] | list[str]) -> str:
    return json.dumps(list(values))


def _bytes(value: Any) -> bytes | None:
    return None if value is None else bytes(value)


def _client(row: Row) -> Client:
    return Client(
        client_id=row["client_id"],
        name=row["name"],
        secret_hash=_bytes(row["secret_hash"]),
        grant_types=_tuple(row["grant_types"]),
        scopes=_tuple(row["scopes"]),
        audiences=_tuple(row["audiences"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        disabled=bool(row["disabled"]),
    )


def _key(row: Row) -> SigningKey:
    return SigningKey(
        kid=row["kid"],
        alg=row["alg"],
        state=KeyState(row["state"]),
        public_jwk=json.loads(row["public_jwk"]),
        private_ciphertext=bytes(row["private_ciphertext"]),
        created_at=row["created_at"],
        activated_at=row["activated_at"],
        retired_at=row["retired_at"],
        revoked_at=row["revoked_at"],
        remove_after=row["remove_after"],
    )


_USER_COLUMNS = ("user_id", "username", "email", "password_hash", "roles", "disabled", "created_at", "updated_at")


def _user(row: Row, prefix: str = "") -> User:
    return User(
        user_id=row[prefix + "user_id"],
        username=row[prefix + "username"],
        email=row[prefix + "email"],
        password_hash=row[prefix + "password_hash"],
        roles=_tuple(row[prefix + "roles"]),
        disabled=bool(row[prefix + "disabled"]),
        created_at=row[prefix + "created_at"],
        updated_at=row[prefix + "updated_at"],
    )


def _refresh(row: Row) -> RefreshToken:
    return RefreshToken(
        token_hash=bytes(row["token_hash"]),
        family_id=row["family_id"],
        generation=row["generation"],
        scope=row["scope"],
        audience=row["audience"],
        issued_at=row["issued_at"],
        expires_at=row["expires_at"],
        consumed_at=row["consumed_at"],
        successor_ciphertext=_bytes(row["successor_ciphertext"]),
    )


def _family(row: Row) -> RefreshFamily:
    return RefreshFamily(
        family_id=row["family_id"],
        client_id=row["client_id"],
        user_id=row["user_id"],
        created_at=row["f_created_at"],
        expires_at=row["f_expires_at"],
        revoked_at=row["revoked_at"],
    )


def _unique_field(exc: Exception) -> str:
    # PostgreSQL names the constraint; SQLite says "UNIQUE constraint failed: users.<column>".
    # Never look at the rejected value itself, which may contain any word.
    name = getattr(exc, "constraint_name", None) or str(exc).rsplit(":", 1)[-1]
    return "email" if "email_norm" in name else "username" if "username_norm" in name else "id"


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
# The same three steps as data-modifying CTEs: the successor is inserted only if the
# compare-and-swap won, and the grandparent's sealed successor is dropped in the same statement.
_CONSUME_ONE_STATEMENT = f"""
    WITH won AS ({_CONSUME} RETURNING family_id),
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


# The refresh grant's first round trip: the token, its family and the family's user.
_FIND_TOKEN_WITH_USER = (
    "SELECT t.*, f.client_id, f.user_id, f.created_at AS f_created_at, f.expires_at AS f_expires_at, f.revoked_at, "
    + ", ".join(f"u.{c} AS u_{c}" for c in _USER_COLUMNS)
    + " FROM refresh_tokens t JOIN refresh_families f ON f.family_id = t.family_id"
    " LEFT JOIN users u ON u.user_id = f.user_id WHERE t.token_hash = $1"
)


def _token_args(t: RefreshToken) -> tuple[Any, ...]:
    return (t.token_hash, t.family_id, t.generation, t.scope, t.audience, t.issued_at, t.expires_at)


class SqlStorage:
    """Implements every protocol in issuer.storage.base and keys.store over a Database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # -- clients ---------------------------------------------------------------------------

    async def create_client(self, client: Client) -> None:
        await self.db.execute(
            "INSERT INTO clients (client_id, name, secret_hash, grant_types, scopes, audiences, created_at, updated_at,"
            " disabled) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            client.client_id,
            client.name,
            client.secret_hash,
            _json(client.grant_types),
            _json(client.scopes),
            _json(client.audiences),
            client.created_at,
            client.updated_at,
            client.disabled,
        )

    async def get_client(self, client_id: str) -> Client | None:
        row = await self.db.fetchrow("SELECT * FROM clients WHERE client_id = $1", client_id)
        return _client(row) if row else None

    async def list_clients(self, *, limit: int, after: str = "") -> list[Client]:
        rows = await self.db.fetch(
            "SELECT * FROM clients WHERE client_id > $1 ORDER BY client_id LIMIT $2", after, limit
        )
        return [_client(r) for r in rows]

    async def update_client(self, client: Client) -> bool:
        changed = await self.db.execute(
            "UPDATE clients SET name = $2, secret_hash = $3, grant_types = $4, scopes = $5, audiences = $6,"
            " updated_at = $7, disabled = $8 WHERE client_id = $1",
            client.client_id,
            client.name,
            client.secret_hash,
            _json(client.grant_types),
            _json(client.scopes),
            _json(client.audiences),
            client.updated_at,
            client.disabled,
        )
        return changed == 1

    async def all_scopes(self) -> list[str]:
        rows = await self.db.fetch("SELECT DISTINCT scopes FROM clients")
        return sorted({scope for r in rows for scope in json.loads(r["scopes"])})

    async def delete_client(self, client_id: str) -> bool:
        return await self.db.execute("DELETE FROM clients WHERE client_id = $1", client_id) == 1

    # -- server secrets --------------------------------------------------------------------

    async def get_secret(self, name: str) -> bytes | None:
        row = await self.db.fetchrow("SELECT ciphertext FROM server_secrets WHERE name = $1", name)
        return bytes(row["ciphertext"]) if row else None

    async def put_secret_if_absent(self, name: str, ciphertext: bytes, now: float) -> bytes:
        await self.db.execute(
            "INSERT INTO server_secrets (name, ciphertext, created_at) VALUES ($1, $2, $3)"
            " ON CONFLICT (name) DO NOTHING",
            name,
            ciphertext,
            now,
        )
        stored = await self.get_secret(name)
        assert stored is not None
        return stored

    async def list_secrets(self) -> dict[str, bytes]:
        rows = await self.db.fetch("SELECT name, ciphertext FROM server_secrets")
        return {r["name"]: bytes(r["ciphertext"]) for r in rows}

    async def replace_secret(self, name: str, old: bytes, new: bytes) -> bool:
        return (
            await self.db.execute(
                "UPDATE server_secrets SET ciphertext = $3 WHERE name = $1 AND ciphertext = $2", name, old, new
            )
            == 1
        )

    # -- signing keys ----------------------------------------------------------------------

    async def list_keys(self) -> list[SigningKey]:
        rows = await self.db.fetch("SELECT * FROM signing_keys ORDER BY created_at, kid")
        return [_key(r) for r in rows]

    async def apply_transition(self, transition: Transition) -> bool:
        try:
            async with self.db.transaction() as tx:
                for change in transition.changes:
                    column = _STATE_TIME.get(change.to_state)
                    assert column is not None
                    changed = await tx.execute(
                        f"UPDATE signing_keys SET state = $3, {column} = $4, remove_after = $5"
                        " WHERE kid = $1 AND state = $2",
                        change.kid,
                        change.from_state.value,
                        change.to_state.value,
                        change.at,
                        change.remove_after,
                    )
                    if changed != 1:
                        raise _Lost
                for key in transition.inserts:
                    await tx.execute(
                        "INSERT INTO signing_keys (kid, alg, state, public_jwk, private_ciphertext, created_at,"
                        " activated_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                        key.kid,
                        key.alg,
                        key.state.value,
                        json.dumps(key.public_jwk),
                        key.private_ciphertext,
                        key.created_at,
                        key.activated_at,
                    )
                for kid in transition.deletes:
                    if await tx.execute("DELETE FROM signing_keys WHERE kid = $1 AND state = 'retired'", kid) != 1:
                        raise _Lost
        except (_Lost, asyncpg.UniqueViolationError, sqlite3.IntegrityError):
            return False
        return True

    async def replace_ciphertext(self, kid: str, old: bytes, new: bytes) -> bool:
        return (
            await self.db.execute(
                "UPDATE signing_keys SET private_ciphertext = $3 WHERE kid = $1 AND private_ciphertext = $2",
                kid,
                old,
                new,
            )
            == 1
        )

    # -- users -----------------------------------------------------------------------------

    async def create_user(self, user: User) -> None:
        try:
            await self.db.execute(
                "INSERT INTO users (user_id, username, username_norm, email, email_norm, password_hash, roles,"
                " disabled, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                user.user_id,
                user.username,
                username_key(user.username),
                user.email,
                email_key(user.email) if user.email else None,
                user.password_hash,
                _json(user.roles),
                user.disabled,
                user.created_at,
                user.updated_at,
            )
        except (asyncpg.UniqueViolationError, sqlite3.IntegrityError) as exc:
            raise Conflict(_unique_field(exc)) from None

    async def get_user(self, user_id: str) -> User | None:
        row = await self.db.fetchrow("SELECT * FROM users WHERE user_id = $1", user_id)
        return _user(row) if row else None

    async def find_user(self, username: str) -> User | None:
        row = await self.db.fetchrow("SELECT * FROM users WHERE username_norm = $1", username_key(username))
        return _user(row) if row else None

    async def list_users(self, *, limit: int, after: str = "") -> list[User]:
        rows = await self.db.fetch(
            "SELECT * FROM users WHERE username_norm > $1 ORDER BY username_norm LIMIT $2", username_key(after), limit
        )
        return [_user(r) for r in rows]

    async def update_user(self, user_id: str, **changes: Any) -> User | None:
        allowed = {"password_hash", "roles", "disabled", "email", "updated_at"}
        unknown = set(changes) - allowed
        if unknown:
            raise ValueError(f"cannot change {sorted(unknown)}")
        if not changes:
            return await self.get_user(user_id)
        if "roles" in changes:
            changes["roles"] = _json(changes["roles"])
        if "email" in changes:
            changes["email_norm"] = email_key(changes["email"]) if changes["email"] else None
        columns = list(changes)
        assignments = ", ".join(f"{c} = ${i + 2}" for i, c in enumerate(columns))
        try:
            row = await self.db.fetchrow(
                f"UPDATE users SET {assignments} WHERE user_id = $1 RETURNING *",
                user_id,
                *(changes[c] for c in columns),
            )
        except (asyncpg.UniqueViolationError, sqlite3.IntegrityError) as exc:
            raise Conflict(_unique_field(exc)) from None
        return _user(row) if row else None

    # -- refresh tokens ----------------------------------------------------------------------

    async def start_family(self, family: RefreshFamily, first: RefreshToken) -> None:
        async with self.db.transaction() as tx:
            await tx.execute(
                "INSERT INTO refresh_families (family_id, client_id, user_id, created_at, expires_at)"
                " VALUES ($1, $2, $3, $4, $5)",
                family.family_id,
                family.client_id,
                family.user_id,
                family.created_at,
                family.expires_at,
            )
            await tx.execute(_INSERT_TOKEN, *_token_args(first))

    async def find_token(self, token_hash: bytes) -> tuple[RefreshToken, RefreshFamily] | None:
        row = await self.db.fetchrow(
            "SELECT t.*, f.client_id, f.user_id, f.created_at AS f_created_at, f.expires_at AS f_expires_at,"
            " f.revoked_at FROM refresh_tokens t JOIN refresh_families f ON f.family_id = t.family_id"
            " WHERE t.token_hash = $1",
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
        except (_Lost, asyncpg.UniqueViolationError, sqlite3.IntegrityError):
            return False
        return True

    async def revoke_family(self, family_id: str, now: float, reason: str) -> bool:
        async with self.db.transaction() as tx:
            changed = await tx.execute(
                "UPDATE refresh_families SET revoked_at = $2, revoked_reason = $3"
                " WHERE family_id = $1 AND revoked_at IS NULL",
                family_id,
                now,
                reason,
            )
            await tx.execute("UPDATE refresh_tokens SET successor_ciphertext = NULL WHERE family_id = $1", family_id)
        return changed == 1

    async def revoke_user_families(self, user_id: str, now: float, reason: str) -> int:
        async with self.db.transaction() as tx:
            changed = await tx.execute(
                "UPDATE refresh_families SET revoked_at = $2, revoked_reason = $3"
                " WHERE user_id = $1 AND revoked_at IS NULL",
                user_id,
                now,
                reason,
            )
            await tx.execute(
                "UPDATE refresh_tokens SET successor_ciphertext = NULL WHERE family_id IN"
                " (SELECT family_id FROM refresh_families WHERE user_id = $1)",
                user_id,
            )
        return changed

    async def forget_successors(self, consumed_before: float) -> int:
        return await self.db.execute(
            "UPDATE refresh_tokens SET successor_ciphertext = NULL"
            " WHERE successor_ciphertext IS NOT NULL AND consumed_at < $1",
            consumed_before,
        )

    async def purge_expired(self, now: float) -> int:
        return await self.db.execute("DELETE FROM refresh_families WHERE expires_at < $1", now)

    # -- revoked access tokens ---------------------------------------------------------------

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

    async def purge_revoked(self, now: float) -> int:
        return await self.db.execute("DELETE FROM revoked_tokens WHERE expires_at < $1", now)

    # -- audit log ---------------------------------------------------------------------------

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


class _Lost(Exception):
    """A compare-and-swap found the row changed; the transaction rolls back."""
