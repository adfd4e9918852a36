"""Rotation proof for the shipped verifier: the example orders service verifies a continuous stream
of tokens while a real issuer process rotates its keys, on the schedule and through the admin API.
Zero refusals, no unknown-kid refetch, and no JWKS fetch before the previous answer's max-age ran out."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from issuer_verifier.keyset import CacheControl
from keys.envelope import new_kek
from tests.conftest import load_and_operator_clients, sqlite_file_url
from tests.servers import IssuerServer, free_port
from tests.test_orders_example import orders_module
from tests.test_rotation_under_load import admin_token

pytestmark = pytest.mark.slow

API = "https://api.example.com"
MAX_AGE = 2
ROTATION_INTERVAL = 3
SECONDS = 10.0
LOOPS = 4


@dataclass
class Fetches:
    """Each JWKS request the orders service sent: (monotonic time sent, max-age answered, status)."""

    seen: list[tuple[float, float, int]] = field(default_factory=list)

    async def on_response(self, response: httpx.Response) -> None:
        if response.request.url.path == "/.well-known/jwks.json":
            sent = response.request.extensions["sent"]
            self.seen.append(
                (sent, CacheControl.parse(response.headers.get("cache-control")).max_age or 0, response.status_code)
            )

    async def on_request(self, request: httpx.Request) -> None:
        request.extensions["sent"] = time.monotonic()


@dataclass
class Stream:
    verified: int = 0
    failures: list[str] = field(default_factory=list)
    kids: list[str] = field(default_factory=list)


async def stream(
    issuer: httpx.AsyncClient, orders: httpx.AsyncClient, creds: tuple[str, str], out: Stream, until: float
) -> None:
    while time.monotonic() < until:
        minted = await issuer.post("/oauth2/token", data={"grant_type": "client_credentials"}, auth=creds)
        if minted.status_code != 200:
            out.failures.append(f"token endpoint {minted.status_code}")
            continue
        token = minted.json()["access_token"]
        answer = await orders.get("/orders", headers={"Authorization": f"Bearer {token}"})
        if answer.status_code != 200:
            out.failures.append(f"{answer.status_code} {answer.headers.get('www-authenticate')}")
            continue
        out.verified += 1


async def rotate_through_the_admin_api(issuer: httpx.AsyncClient, creds: tuple[str, str], until: float) -> int:
    rotations = 0
    token = await admin_token(issuer, "", creds)
    while time.monotonic() < until:
        response = await issuer.post("/admin/keys/rotate", headers={"Authorization": f"Bearer {token}"})
        if response.status_code == 409:
            await asyncio.sleep(min(int(response.headers["retry-after"]), max(0.0, until - time.monotonic())))
            continue
        assert response.status_code == 200, response.text
        rotations += 1
    return rotations


@pytest.mark.parametrize("how", ["scheduled", "admin"])
async def test_the_orders_service_verifies_through_rotations(tmp_path: Path, how: str) -> None:
    kek, database = new_kek(), sqlite_file_url(tmp_path)
    load, operator = await load_and_operator_clients(database, kek, API, scopes=("orders:read",))
    port = free_port()
    env = {
        "ISSUER_URL": f"http://127.0.0.1:{port}",
        "ISSUER_DATABASE_URL": database,
        "ISSUER_KEY_ENCRYPTION_KEYS": kek,
        "ISSUER_JWKS_MAX_AGE": str(MAX_AGE),
        "ISSUER_CLOCK_SKEW": "0",
        "ISSUER_KEYRING_REFRESH_INTERVAL": "0.5",
        "ISSUER_RATE_LIMIT_TOKEN_PER_CLIENT": "0",
        "ISSUER_LOG_LEVEL": "WARNING",
    }
    if how == "scheduled":
        env["ISSUER_KEY_ROTATION_INTERVAL"] = str(ROTATION_INTERVAL)
    fetches = Fetches()
    with IssuerServer(env, port=port, log_path=tmp_path / "issuer.log") as server:
        hooks: dict[str, list[Callable[..., Any]]] = {
            "request": [fetches.on_request],
            "response": [fetches.on_response],
        }
        async with (
            httpx.AsyncClient(base_url=server.url, timeout=10) as issuer,
            httpx.AsyncClient(timeout=10, event_hooks=hooks) as verifier_http,
        ):
            app = orders_module().create_app(server.url, http=verifier_http)
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://orders") as orders:
                out = Stream()
                until = time.monotonic() + SECONDS
                jobs: list[Coroutine[Any, Any, object]] = [
                    stream(issuer, orders, load, out, until) for _ in range(LOOPS)
                ]
                if how == "admin":
                    jobs.append(rotate_through_the_admin_api(issuer, operator, until))
                await asyncio.gather(*jobs)
                keys = (await issuer.get("/.well-known/jwks.json")).json()["keys"]
            keyset = app.state.auth.verifier.keyset

    assert out.failures == [], (len(out.failures), out.failures[:5])
    assert out.verified > 100
    assert keyset.fetches["unknown_kid"] == 0, keyset.fetches
    # Every fetch after the first waited at least the max-age of the answer before it (or min_fresh,
    # one second, after a max-age=0 answer), so there is at most one fetch per max-age window.
    for (previous, max_age, _), (sent, _, _) in zip(fetches.seen, fetches.seen[1:], strict=False):
        assert sent - previous >= max(max_age, 1.0) - 0.01, fetches.seen
    assert len(fetches.seen) <= 2 * SECONDS, fetches.seen
    assert len({k["kid"] for k in keys}) >= 3, keys  # two rotations at least: retired, active, pending
    print(
        f"\n{how}: {out.verified} verified, 0 failures, {len(fetches.seen)} JWKS requests "
        f"({sum(1 for f in fetches.seen if f[2] == 304)} answered 304) in {SECONDS:.0f} s, max-age {MAX_AGE}"
    )
