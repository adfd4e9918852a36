"""Two issuer processes on one PostgreSQL database and one key-encryption key.

Changes made through one instance (key rotation, key revocation, client secret rotation) must
reach the other: at once through Redis notifications when Redis is configured, and by polling
the database within ``ISSUER_KEYRING_REFRESH_INTERVAL`` (keys) or the client cache lifetime
(clients) without it.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import pytest

from keys.envelope import new_kek
from tests.conftest import load_and_operator_clients, run_cli, throwaway_pg_database
from tests.servers import IssuerServer

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

API = "https://api.example.com"
ISSUER = "https://issuer.example.com"
CLIENT_CACHE_TTL = 5.0  # issuer.oauth.clients.ClientRegistry default


@pytest.fixture
def shared_database() -> Iterator[tuple[str, str]]:
    """A database of its own, migrated by the CLI; yields (url, kek)."""
    with throwaway_pg_database("issuer_mi") as url:
        kek = new_kek()
        migrated = run_cli({"ISSUER_DATABASE_URL": url, "ISSUER_KEY_ENCRYPTION_KEYS": kek}, "migrate")
        assert migrated.returncode == 0, migrated.stderr
        yield url, kek


@dataclass
class Cluster:
    a: IssuerServer
    b: IssuerServer
    load: tuple[str, str]
    admin: tuple[str, str]


@pytest.fixture
def stack() -> Iterator[ExitStack]:
    with ExitStack() as s:
        yield s


async def start_cluster(stack: ExitStack, url: str, kek: str, **env: str) -> Cluster:
    load, admin = await load_and_operator_clients(url, kek, API)
    base = {
        "ISSUER_URL": ISSUER,
        "ISSUER_DATABASE_URL": url,
        "ISSUER_KEY_ENCRYPTION_KEYS": kek,
        "ISSUER_LOG_LEVEL": "WARNING",
        **env,
    }
    a = stack.enter_context(IssuerServer(base))
    b = stack.enter_context(IssuerServer(base))
    return Cluster(a, b, load, admin)


async def token_from(http: httpx.AsyncClient, server: IssuerServer, creds: tuple[str, str], **form: str) -> str:
    response = await http.post(
        server.url + "/oauth2/token", data={"grant_type": "client_credentials", **form}, auth=creds
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def kid_of(token: str) -> str:
    kid: str = jwt.get_unverified_header(token)["kid"]
    return kid


async def jwks_of(http: httpx.AsyncClient, server: IssuerServer) -> dict[str, Any]:
    response = await http.get(server.url + "/.well-known/jwks.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def verify_against(document: dict[str, Any], token: str) -> dict[str, Any]:
    key = jwt.PyJWKSet.from_dict(document)[kid_of(token)]
    claims: dict[str, Any] = jwt.decode(token, key.key, algorithms=["RS256"], audience=API, issuer=ISSUER)
    return claims


async def within(seconds: float, check: Callable[[], Awaitable[bool]], what: str) -> float:
    """Poll ``check`` until it holds; return how long that took, failing after ``seconds``."""
    started = time.monotonic()
    while True:
        if await check():
            return time.monotonic() - started
        if time.monotonic() - started > seconds:
            raise AssertionError(f"{what}: not within {seconds}s")
        await asyncio.sleep(0.05)


async def exercise(cluster: Cluster, key_bound: float, client_bound: float) -> dict[str, float]:
    """Rotate, revoke and rotate a client secret on A; return how long B took for each."""
    a, b = cluster.a, cluster.b
    took: dict[str, float] = {}
    async with httpx.AsyncClient(timeout=10) as http:
        # both instances sign with the same key and each verifies the other's tokens
        ta, tb = await token_from(http, a, cluster.load), await token_from(http, b, cluster.load)
        initial = kid_of(ta)
        assert kid_of(tb) == initial
        verify_against(await jwks_of(http, b), ta)
        verify_against(await jwks_of(http, a), tb)

        admin = {"Authorization": f"Bearer {await token_from(http, a, cluster.admin)}"}

        # forced rotation on A
        rotated = await http.post(a.url + "/admin/keys/rotate", params={"force": "true"}, headers=admin)
        assert rotated.status_code == 200, rotated.text
        new_kid = next(k["kid"] for k in rotated.json()["items"] if k["state"] == "active")
        assert new_kid != initial
        signed_by_new = await token_from(http, a, cluster.load)
        assert kid_of(signed_by_new) == new_kid

        async def b_signs_with_new() -> bool:
            return kid_of(await token_from(http, b, cluster.load)) == new_kid and new_kid in {
                k["kid"] for k in (await jwks_of(http, b))["keys"]
            }

        took["rotate"] = await within(key_bound, b_signs_with_new, "B signs with the key rotated in on A")

        # revoking the active key on A
        revoked = await http.post(a.url + f"/admin/keys/{new_kid}/revoke", headers=admin)
        assert revoked.status_code == 200, revoked.text
        replacement = next(k["kid"] for k in revoked.json()["items"] if k["state"] == "active")
        assert replacement != new_kid

        async def b_dropped_revoked() -> bool:
            published = {k["kid"] for k in (await jwks_of(http, b))["keys"]}
            signed = kid_of(await token_from(http, b, cluster.load))
            return new_kid not in published and signed != new_kid

        took["revoke"] = await within(
            key_bound, b_dropped_revoked, "B stops publishing and signing with the revoked key"
        )
        assert kid_of(await token_from(http, b, cluster.load)) == replacement
        # tokens verify across instances after the changes too
        ta, tb = await token_from(http, a, cluster.load), await token_from(http, b, cluster.load)
        verify_against(await jwks_of(http, b), ta)
        verify_against(await jwks_of(http, a), tb)
        # B's introspection agrees that what the revoked key signed (on A) is dead
        dead = await http.post(b.url + "/oauth2/introspect", data={"token": signed_by_new}, auth=cluster.load)
        assert dead.status_code == 200 and dead.json()["active"] is False
        alive = await http.post(b.url + "/oauth2/introspect", data={"token": ta}, auth=cluster.load)
        assert alive.json()["active"] is True

        # client secret rotated on A: B, which has the client cached, must stop accepting the old one
        old_secret = cluster.load
        await token_from(http, b, old_secret)
        secret_response = await http.post(a.url + f"/admin/clients/{cluster.load[0]}/secret", headers=admin)
        assert secret_response.status_code == 200, secret_response.text
        new_creds = (cluster.load[0], secret_response.json()["client_secret"])
        refused_on_a = await http.post(
            a.url + "/oauth2/token", data={"grant_type": "client_credentials"}, auth=old_secret
        )
        assert refused_on_a.status_code == 401

        async def b_refuses_old() -> bool:
            response = await http.post(
                b.url + "/oauth2/token", data={"grant_type": "client_credentials"}, auth=old_secret
            )
            assert response.status_code in (200, 401), response.text
            return response.status_code == 401

        took["client"] = await within(client_bound, b_refuses_old, "B refuses the rotated-out client secret")
        assert kid_of(await token_from(http, b, new_creds)) == replacement
    return took


@pytest.mark.redis
async def test_instances_converge_through_redis(
    shared_database: tuple[str, str], redis_url: str, stack: ExitStack
) -> None:
    url, kek = shared_database
    # polling is slowed to 30 s so that only the notification can explain convergence
    cluster = await start_cluster(
        stack, url, kek,
        ISSUER_REDIS_URL=redis_url,
        ISSUER_REDIS_PREFIX=f"issuer-mi-{secrets.token_hex(4)}:",
        ISSUER_KEYRING_REFRESH_INTERVAL="30",
    )
    took = await exercise(cluster, key_bound=2.0, client_bound=2.0)
    assert max(took.values()) <= 2.0, took


async def test_instances_converge_by_polling_without_redis(shared_database: tuple[str, str], stack: ExitStack) -> None:
    url, kek = shared_database
    interval = 1.0
    cluster = await start_cluster(stack, url, kek, ISSUER_KEYRING_REFRESH_INTERVAL=str(interval))
    took = await exercise(cluster, key_bound=interval + 1.0, client_bound=CLIENT_CACHE_TTL + 1.5)
    assert took["rotate"] <= interval + 1.0 and took["revoke"] <= interval + 1.0, took
    assert took["client"] <= CLIENT_CACHE_TTL + 1.5, took
