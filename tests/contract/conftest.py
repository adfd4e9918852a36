"""The storage contract: one suite, run unchanged against SQLite and PostgreSQL.

``storage`` is an ``SqlStorage`` over a freshly migrated, empty database of each backend
(``database_url`` from tests/conftest.py is parametrized over both).
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import pytest

from issuer.models import Client, RefreshFamily, RefreshToken, User
from issuer.storage import SqlStorage, open_database
from issuer.storage.migrate import migrate, pending_migrations


@pytest.fixture
async def storage(database_url: str) -> AsyncIterator[SqlStorage]:
    db = await open_database(database_url)
    try:
        await migrate(db)
        assert await pending_migrations(db) == []
        yield SqlStorage(db)
    finally:
        await db.close()


def new_client(
    *,
    client_id: str | None = None,
    scopes: tuple[str, ...] = ("read", "write"),
    public: bool = False,
    at: float = 1_700_000_000.0,
) -> Client:
    return Client(
        client_id=client_id or secrets.token_urlsafe(16),
        name="contract client",
        secret_hash=None if public else secrets.token_bytes(32),
        grant_types=("client_credentials",) if not public else ("password", "refresh_token"),
        scopes=scopes,
        audiences=("https://api.example.com", "https://other.example.com"),
        created_at=at,
        updated_at=at,
        redirect_uris=("https://app.example.com/cb", "http://127.0.0.1/cb"),
        post_logout_redirect_uris=("https://app.example.com/",),
        first_party=public,
    )


def new_user(
    username: str, email: str | None = None, *, roles: tuple[str, ...] = ("user",), at: float = 1_700_000_000.0
) -> User:
    return User(
        user_id=secrets.token_urlsafe(12),
        username=username,
        email=email,
        password_hash="$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA",
        roles=roles,
        disabled=False,
        created_at=at,
        updated_at=at,
    )


def new_family(
    *, user_id: str = "user-1", client_id: str = "client-1", now: float = 1_700_000_000.0, ttl: float = 3600.0
) -> RefreshFamily:
    return RefreshFamily(
        family_id=secrets.token_urlsafe(12),
        client_id=client_id,
        user_id=user_id,
        created_at=now,
        expires_at=now + ttl,
    )


def new_token(family: RefreshFamily, generation: int, *, now: float = 1_700_000_000.0) -> RefreshToken:
    return RefreshToken(
        token_hash=secrets.token_bytes(32),
        family_id=family.family_id,
        generation=generation,
        scope="openid profile",
        audience="https://api.example.com",
        issued_at=now,
        expires_at=now + 600,
    )
