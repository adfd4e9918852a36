"""For the resource-server verifier's tests (with the ``sqlite_http`` issuer): tokens minted by it,
tokens forged with its own signing key, and a count of JWKS requests."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

import httpx
from joserfc import jws

from issuer.accounts.users import NewUser
from issuer_verifier import Verifier
from tests.conftest import OPERATOR, FakeClock, make_client, services_of

API = "https://api.example.com"
PASSWORD = "password-123"


@dataclass
class JwksRequests:
    """Every request the verifier's HTTP client sends to the issuer's JWKS, with the answer's status."""

    statuses: list[int] = field(default_factory=list)

    async def on_response(self, response: httpx.Response) -> None:
        if response.request.url.path == "/.well-known/jwks.json":
            self.statuses.append(response.status_code)

    @property
    def count(self) -> int:
        return len(self.statuses)


def counted(http: httpx.AsyncClient) -> JwksRequests:
    requests = JwksRequests()
    http.event_hooks = {**http.event_hooks, "response": [*http.event_hooks["response"], requests.on_response]}
    return requests


def verifier_for(http: httpx.AsyncClient, clock: FakeClock, **options: Any) -> Verifier:
    return Verifier(str(http.base_url).rstrip("/"), API, http=http, clock=clock, monotonic=clock, **options)


async def service_token(http: httpx.AsyncClient, scopes: tuple[str, ...] = ("orders:read",), **data: str) -> str:
    client_id, secret = await make_client(http, name="svc", scopes=scopes)
    assert secret is not None
    response = await http.post(
        "/oauth2/token", data={"grant_type": "client_credentials", **data}, auth=(client_id, secret)
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


async def user_token(http: httpx.AsyncClient, username: str, roles: tuple[str, ...], scope: str = "orders:read") -> str:
    """A password-grant token of a new user holding ``roles``, for the API and the issuer."""
    client_id, secret = await make_client(
        http, name=f"app-{username}", grant_types=("password",), scopes=("orders:read", "profile")
    )
    assert secret is not None
    await services_of(http).ops.users.create(OPERATOR, NewUser(username, PASSWORD, f"{username}@example.com"), roles)
    data = {
        "grant_type": "password",
        "username": username,
        "password": PASSWORD,
        "scope": scope,
        "resource": [API, str(http.base_url).rstrip("/")],
    }
    response = await http.post("/oauth2/token", data=data, auth=(client_id, secret))
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def forge(http: httpx.AsyncClient, claims: dict[str, Any], **header: Any) -> str:
    """A token signed by the issuer's active key with ``header`` overriding the issuer's own header
    (an ID token, another algorithm claim…): what the issuer could mint, but not as an access token."""
    signer = services_of(http).keyring._signer
    merged = {k: v for k, v in {**signer.header, **header}.items() if v is not None}
    return jws.serialize_compact(merged, json.dumps(claims), signer.key)


def with_header(raw: str, **header: Any) -> str:
    """``raw`` with its header changed (the signature, now wrong, kept): for checks made before it."""
    segment = raw.split(".")[0]
    old = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    new = base64.urlsafe_b64encode(json.dumps({**old, **header}).encode()).rstrip(b"=").decode()
    return ".".join([new, *raw.split(".")[1:]])


def claims_of(http: httpx.AsyncClient, clock: FakeClock, **overrides: Any) -> dict[str, Any]:
    now = int(clock())
    claims = {
        "iss": str(http.base_url).rstrip("/"),
        "sub": "u1",
        "aud": API,
        "exp": now + 300,
        "iat": now,
        "jti": "j1",
        "client_id": "c1",
        "scope": "orders:read",
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}
