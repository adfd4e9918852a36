"""Signing a user in through a first-party client: the password and refresh_token grants as the
token-lifecycle tests use them (with the ``http`` and ``start`` fixtures from conftest)."""

from __future__ import annotations

from typing import Any

import httpx

from issuer.accounts.users import NewUser
from tests.conftest import OPERATOR, make_client, services_of

Client = tuple[str, str | None]
"""(client_id, secret), the secret None for a public client."""

PASSWORD = "password-123"


async def first_party(http: httpx.AsyncClient, name: str = "app", public: bool = False) -> Client:
    return await make_client(http, name=name, grant_types=("password", "refresh_token"), public=public)


def client_auth(client: Client, data: dict[str, str]) -> dict[str, Any]:
    """Keyword arguments for ``http.post``: a confidential client authenticates with HTTP Basic,
    a public one only names itself in the form."""
    client_id, secret = client
    if secret is None:
        return {"data": {**data, "client_id": client_id}}
    return {"data": data, "auth": (client_id, secret)}


async def login(http: httpx.AsyncClient, client: Client, username: str = "alice", **extra: str) -> dict[str, Any]:
    """The token response for ``username`` (created on first use), which must be a success."""
    if await services_of(http).users.store.find_user(username) is None:
        await services_of(http).ops.users.create(OPERATOR, NewUser(username, PASSWORD, f"{username}@example.com"))
    data = {"grant_type": "password", "username": username, "password": PASSWORD, **extra}
    response = await http.post("/oauth2/token", **client_auth(client, data))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def refresh(http: httpx.AsyncClient, client: Client, token: str, **extra: str) -> httpx.Response:
    data = {"grant_type": "refresh_token", "refresh_token": token, **extra}
    return await http.post("/oauth2/token", **client_auth(client, data))
