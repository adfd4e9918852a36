"""End users, unique by normalised username (issuer.accounts.names)."""

from __future__ import annotations

from typing import Any

from issuer.accounts.names import email_key, username_key
from issuer.models import User
from issuer.storage.base import Conflict
from issuer.storage.database import unique_violations
from issuer.storage.sql._rows import SqlStore, _json, _unique_field, _user


class UserSql(SqlStore):
    """issuer.storage.base.UserStore."""

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
        except unique_violations() as exc:
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
        except unique_violations() as exc:
            raise Conflict(_unique_field(exc)) from None
        return _user(row) if row else None
