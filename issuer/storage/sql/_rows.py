"""Row mappers and helpers shared by the SQL stores (issuer.storage.sql)."""

from __future__ import annotations

import json
from typing import Any

import orjson

from issuer.models import Client, RefreshFamily, RefreshToken, User
from issuer.storage.database import Database, Row
from keys.lifecycle import KeyState, SigningKey


class SqlStore:
    """What every store mixin shares: the database it runs on."""

    db: Database


async def revoke_families(db: Database, which: str, args: tuple[object, ...], now: float, reason: str) -> int:
    """Revoke the unrevoked refresh-token families ``which`` selects (a condition on
    refresh_families over ``args`` as $1…), and drop their tokens' sealed successors; returns how
    many were revoked. The families' rows are locked first, as the rotation statements expect."""
    n = len(args)
    async with db.transaction() as tx:
        changed = await tx.execute(
            f"UPDATE refresh_families SET revoked_at = ${n + 1}, revoked_reason = ${n + 2}"
            f" WHERE revoked_at IS NULL AND {which}",
            *args,
            now,
            reason,
        )
        await tx.execute(
            "UPDATE refresh_tokens SET successor_ciphertext = NULL"
            f" WHERE family_id IN (SELECT family_id FROM refresh_families WHERE {which})",
            *args,
        )
    return changed


class _Lost(Exception):
    """A compare-and-swap found the row changed; the transaction rolls back."""


def _tuple(text: str) -> tuple[str, ...]:
    return tuple(orjson.loads(text))  # read on every refresh (user roles): orjson parses it 10x faster


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
        redirect_uris=_tuple(row["redirect_uris"]),
        post_logout_redirect_uris=_tuple(row["post_logout_redirect_uris"]),
        first_party=bool(row["first_party"]),
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
        session_id=row["session_id"],
        auth_time=row["auth_time"],
    )


def _unique_field(exc: Exception) -> str:
    # PostgreSQL names the constraint; SQLite says "UNIQUE constraint failed: users.<column>".
    # Never look at the rejected value itself, which may contain any word.
    name = getattr(exc, "constraint_name", None) or str(exc).rsplit(":", 1)[-1]
    return "email" if "email_norm" in name else "username" if "username_norm" in name else "id"


def batched(statement: str, table: str, key: str, where: str) -> dict[str, str]:
    """``statement`` (a DELETE or UPDATE of ``table``) applied to at most $2 rows matching
    ``where``, per dialect. PostgreSQL gets ``key = ANY(ARRAY(subquery))``: the subquery runs once
    through its index and the rows are then found by primary key; with ``key IN (subquery)`` the
    planner may hash-join against a sequential scan of the whole table instead."""
    subquery = f"SELECT {key} FROM {table} WHERE {where} LIMIT $2"
    return {
        "postgres": f"{statement} WHERE {key} = ANY(ARRAY({subquery}))",
        "sqlite": f"{statement} WHERE {key} IN ({subquery})",
    }
