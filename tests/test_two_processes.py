"""Two uvicorn issuers on one PostgreSQL database with the same key-encryption key: a refresh
token raced across both yields one successor, and each verifies the other's tokens."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from issuer.accounts.users import NewUser
from issuer.services import open_services
from issuer.settings import Settings
from tests.conftest import OPERATOR, TEST_KEK
from tests.servers import IssuerServer

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

ISSUER_URL = "https://issuer.example.test"
AUDIENCE = "https://api.example.com"


@pytest.fixture(scope="module")
def servers(pg_database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[IssuerServer, IssuerServer]]:
    base = tmp_path_factory.mktemp("two-processes")

    def env(name: str) -> dict[str, str]:
        return {
            "ISSUER_DATABASE_URL": pg_database,
            "ISSUER_KEY_ENCRYPTION_KEYS": TEST_KEK,
            "ISSUER_DATA_DIR": str(base / name),
            "ISSUER_URL": ISSUER_URL,
            "ISSUER_ARGON2_TIME_COST": "1",
            "ISSUER_ARGON2_MEMORY_KIB": "7168",
            "ISSUER_KEYRING_REFRESH_INTERVAL": "1",
            "ISSUER_LOG_LEVEL": "WARNING",
        }

    with IssuerServer(env("a"), log_path=base / "a.log") as a, IssuerServer(env("b"), log_path=base / "b.log") as b:
        yield a, b


async def first_party_login(pg_database: str, tmp_path: Path) -> tuple[str, str, str]:
    """A fresh client and user in the shared database; returns (client_id, secret, username)."""
    settings = Settings(
        _env_file=None, database_url=pg_database, key_encryption_keys=TEST_KEK, data_dir=tmp_path, url=ISSUER_URL,
        argon2_time_cost=1, argon2_memory_kib=7168,
    )
    services = await open_services(settings)
    try:
        client, secret = await services.ops.clients.create(OPERATOR,
            "two-process-app", ("password", "refresh_token"), ("read", "write"), (AUDIENCE,)
        )
        username = f"user-{secrets.token_hex(4)}"
        await services.ops.users.create(OPERATOR, NewUser(username, "password-123"))
    finally:
        await services.close()
    assert secret is not None
    return client.client_id, secret, username


async def login(http: httpx.AsyncClient, base: str, client: tuple[str, str, str]) -> dict[str, Any]:
    client_id, secret, username = client
    response = await http.post(
        f"{base}/oauth2/token",
        data={"grant_type": "password", "username": username, "password": "password-123"},
        auth=(client_id, secret),
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_concurrent_refreshes_across_two_instances_yield_one_successor(
    servers: tuple[IssuerServer, IssuerServer], pg_database: str, tmp_path: Path
) -> None:
    a, b = servers
    client = await first_party_login(pg_database, tmp_path)
    async with httpx.AsyncClient(timeout=20) as http:
        r0 = (await login(http, a.url, client))["refresh_token"]

        async def refresh(base: str, token: str) -> httpx.Response:
            return await http.post(
                f"{base}/oauth2/token",
                data={"grant_type": "refresh_token", "refresh_token": token},
                auth=(client[0], client[1]),
            )

        responses = await asyncio.gather(*(refresh((a, b)[i % 2].url, r0) for i in range(10)))

        assert not [r for r in responses if r.status_code >= 500], [r.text for r in responses]
        assert [r.status_code for r in responses] == [200] * 10, [r.text for r in responses]
        successors = {r.json()["refresh_token"] for r in responses}
        assert len(successors) == 1
        (r1,) = successors
        assert r1 != r0

        onward = await refresh(b.url, r1)
        assert onward.status_code == 200, onward.text
        assert (await refresh(a.url, onward.json()["refresh_token"])).status_code == 200


async def test_a_token_from_one_instance_verifies_against_the_others_jwks(
    servers: tuple[IssuerServer, IssuerServer], pg_database: str, tmp_path: Path
) -> None:
    a, b = servers
    client = await first_party_login(pg_database, tmp_path)
    async with httpx.AsyncClient(timeout=20) as http:
        access = (await login(http, a.url, client))["access_token"]

        jwks = jwt.PyJWKSet.from_dict((await http.get(f"{b.url}/.well-known/jwks.json")).json())
        header = jwt.get_unverified_header(access)
        key = next(k for k in jwks.keys if k.key_id == header["kid"])
        claims = jwt.decode(access, key.key, algorithms=[header["alg"]], audience=AUDIENCE, issuer=ISSUER_URL)
        assert claims["client_id"] == client[0]

        auth = (client[0], client[1])
        seen_by_b = await http.post(f"{b.url}/oauth2/introspect", data={"token": access}, auth=auth)
        assert seen_by_b.json()["active"] is True

        assert (await http.post(f"{a.url}/oauth2/revoke", data={"token": access}, auth=auth)).status_code == 200
        assert (await http.post(f"{a.url}/oauth2/introspect", data={"token": access}, auth=auth)).json() == {
            "active": False
        }

        # Without Redis, B learns of A's revocation from the database within its polling interval (1 s here).
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if (await http.post(f"{b.url}/oauth2/introspect", data={"token": access}, auth=auth)).json() == {
                "active": False
            }:
                break
            await asyncio.sleep(0.2)
        else:
            pytest.fail("instance B never saw the revocation made on instance A")
