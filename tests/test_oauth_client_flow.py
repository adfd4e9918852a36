"""A real OAuth client library (authlib's httpx AsyncOAuth2Client) against the issuer:
register, password grant, refresh, revoke, and the refresh that must then fail."""

from __future__ import annotations

import warnings
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from authlib.deprecate import AuthlibDeprecationWarning

from issuer.app import create_app
from issuer.settings import Settings
from tests.conftest import OPERATOR, TEST_KEK
from tests.servers import IssuerServer

with warnings.catch_warnings():
    # authlib warns that it falls back to `httpx` when `httpx2` is not installed.
    warnings.simplefilter("ignore", AuthlibDeprecationWarning)
    from authlib.integrations.httpx_client import AsyncOAuth2Client, OAuthError

FAST = {"argon2_time_cost": 1, "argon2_memory_kib": 7168}


@asynccontextmanager
async def issuer(settings: Settings) -> AsyncIterator[tuple[Any, Any]]:
    """The app with its lifespan; yields (ASGI app, services)."""
    app = create_app(settings)
    async with LifespanManager(app) as manager:
        yield manager.app, manager._state["services"]


async def run_flow(oauth: AsyncOAuth2Client, base: str) -> None:
    token_url, revoke_url = f"{base}/oauth2/token", f"{base}/oauth2/revoke"

    registered = await oauth.request(
        "POST",
        f"{base}/register",
        json={"username": "alice", "password": "a-good-password", "email": "alice@example.com"},
        withhold_token=True,
    )
    assert registered.status_code == 201, registered.text
    user_id = registered.json()["user_id"]

    token = await oauth.fetch_token(token_url, grant_type="password", username="alice", password="a-good-password")
    assert token["token_type"] == "Bearer"
    assert token["refresh_token"] and token["access_token"]
    assert token["expires_at"] > 0

    me = await oauth.get(f"{base}/userinfo")
    assert me.status_code == 200, me.text
    assert me.json()["sub"] == user_id and me.json()["preferred_username"] == "alice"

    first_refresh = token["refresh_token"]
    renewed = await oauth.refresh_token(token_url)
    assert renewed["access_token"] != token["access_token"]
    assert renewed["refresh_token"] != first_refresh
    assert oauth.token["refresh_token"] == renewed["refresh_token"]
    assert (await oauth.get(f"{base}/userinfo")).status_code == 200

    revoked = await oauth.revoke_token(revoke_url, token=renewed["refresh_token"], token_type_hint="refresh_token")
    assert revoked.status_code == 200, revoked.text

    with pytest.raises(OAuthError) as failed:
        await oauth.refresh_token(token_url, refresh_token=renewed["refresh_token"])
    assert failed.value.error == "invalid_grant"

    again = await oauth.fetch_token(token_url, grant_type="password", username="alice", password="a-good-password")
    assert again["refresh_token"] not in (first_refresh, renewed["refresh_token"])


@pytest.mark.parametrize("public", [False, True], ids=["confidential", "public"])
async def test_authlib_client_register_login_refresh_revoke(
    database_url: str, make_settings: Callable[..., Settings], public: bool
) -> None:
    settings = make_settings(database_url=database_url, **FAST)
    async with issuer(settings) as (app, services):
        client, secret = await services.ops.clients.create(OPERATOR,
            "authlib-app",
            ("password", "refresh_token"),
            ("openid", "profile", "read", "write"),
            ("https://api.example.com",),
            public=public,
        )
        auth_method = "none" if public else "client_secret_basic"
        async with AsyncOAuth2Client(
            client_id=client.client_id,
            client_secret=secret,
            token_endpoint_auth_method=auth_method,
            revocation_endpoint_auth_method=auth_method,
            # openid: the token is for the API, and also good at /userinfo (OIDC Core §5.3), which
            # answers the claims its scopes allow (profile: preferred_username)
            scope="openid profile read",
            transport=httpx.ASGITransport(app=app),
        ) as oauth:
            await run_flow(oauth, settings.url)


@pytest.mark.slow
async def test_authlib_client_against_a_uvicorn_server(tmp_path: Path, make_settings: Callable[..., Settings]) -> None:
    env = {
        "ISSUER_DATABASE_URL": f"sqlite:///{tmp_path / 'issuer.sqlite3'}",
        "ISSUER_DATA_DIR": str(tmp_path / "data"),
        "ISSUER_KEY_ENCRYPTION_KEYS": TEST_KEK,
        "ISSUER_ARGON2_TIME_COST": "1",
        "ISSUER_ARGON2_MEMORY_KIB": "7168",
        "ISSUER_LOG_LEVEL": "WARNING",
    }
    with IssuerServer(env) as server:
        # The CLI-equivalent registration of the OAuth client, on the server's database.
        settings = make_settings(database_url=env["ISSUER_DATABASE_URL"], url=server.url, **FAST)
        async with issuer(settings) as (_, services):
            client, secret = await services.ops.clients.create(OPERATOR,
                "authlib-app", ("password", "refresh_token"), ("openid", "profile", "read"), ("https://api.example.com",)
            )
        async with AsyncOAuth2Client(
            client_id=client.client_id, client_secret=secret, scope="openid profile read", timeout=10
        ) as oauth:
            await run_flow(oauth, server.url)
