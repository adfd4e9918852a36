"""Key rotation while tokens are being issued, seen by a strict relying party.

A real issuer process runs with small timings. Several loops request tokens continuously; a
verifier caches the JWKS exactly as long as its ``Cache-Control: max-age`` allows (age counted
from when the request was sent, RFC 9111 §4.2.3), never refetches on an unknown ``kid`` (a miss
is a failure), and checks every token's signature, ``exp``, ``iss`` and ``aud``. Whether the
schedule rotates or an operator does, the verifier must never see a token it cannot verify.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from keys.envelope import new_kek
from tests.conftest import load_and_operator_clients, sqlite_file_url
from tests.servers import IssuerServer

pytestmark = pytest.mark.slow

API = "https://api.example.com"
ISSUER = "https://issuer.example.com"
MAX_AGE = 2
ROTATION_INTERVAL = 3
LOAD_SECONDS = 12.0
LOOPS = 4
MAX_AGE_RE = re.compile(r"(?:^|,)\s*max-age=(\d+)\s*(?:,|$)")


@dataclass
class Provisioned:
    env: dict[str, str]
    load: tuple[str, str]
    admin: tuple[str, str]


async def provision(tmp_path: Path, **env: str) -> Provisioned:
    """A fresh SQLite database with a load-generating client and an operator client."""
    kek = new_kek()
    db = sqlite_file_url(tmp_path)
    load, admin = await load_and_operator_clients(db, kek, API)
    base = {
        "ISSUER_URL": ISSUER,
        "ISSUER_DATABASE_URL": db,
        "ISSUER_KEY_ENCRYPTION_KEYS": kek,
        "ISSUER_JWKS_MAX_AGE": str(MAX_AGE),
        "ISSUER_CLOCK_SKEW": "0",
        "ISSUER_KEYRING_REFRESH_INTERVAL": "0.5",
        "ISSUER_ACCESS_TOKEN_TTL": "30",
        "ISSUER_RATE_LIMIT_TOKEN_PER_CLIENT": "0",
        "ISSUER_LOG_LEVEL": "WARNING",
    }
    base.update(env)
    return Provisioned(base, load, admin)


@dataclass
class Verifier:
    """A relying party that trusts the JWKS only as long as max-age says."""

    http: httpx.AsyncClient
    base: str  # where the JWKS is fetched from
    issuer: str = ISSUER
    keys: dict[str, Any] = field(default_factory=dict)
    fetched_at: float = float("-inf")  # monotonic time the cached copy's request was sent
    max_age: int = 0
    fetches: list[tuple[float, int, frozenset[str]]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    verified: int = 0
    kids_seen: list[str] = field(default_factory=list)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def cached_keys(self) -> dict[str, Any]:
        async with self._lock:
            if time.monotonic() - self.fetched_at >= self.max_age:
                sent = time.monotonic()
                response = await self.http.get(self.base + "/.well-known/jwks.json")
                assert response.status_code == 200, response.text
                match = MAX_AGE_RE.search(response.headers["cache-control"])
                assert match, response.headers["cache-control"]
                document = response.json()
                self.keys = {k["kid"]: jwt.PyJWK.from_dict(k) for k in document["keys"]}
                self.fetched_at, self.max_age = sent, int(match.group(1))
                self.fetches.append((time.time(), self.max_age, frozenset(self.keys)))
            return self.keys

    async def verify(self, token: str) -> None:
        keys = await self.cached_keys()
        age = time.monotonic() - self.fetched_at
        header = jwt.get_unverified_header(token)
        kid = str(header.get("kid"))
        key = keys.get(kid)
        if key is None:
            self.failures.append(f"kid {kid} not in the cached JWKS (age {age:.2f}s, max-age {self.max_age})")
            return
        try:
            jwt.decode(
                token,
                key.key,
                algorithms=["RS256"],
                audience=API,
                issuer=self.issuer,
                options={"require": ["exp", "iat", "iss", "aud", "sub", "jti"]},
            )
        except jwt.PyJWTError as exc:
            self.failures.append(f"{type(exc).__name__}: {exc} (kid {kid})")
            return
        self.verified += 1
        if not self.kids_seen or self.kids_seen[-1] != kid:
            self.kids_seen.append(kid)


@dataclass
class Load:
    issued: int = 0
    errors: list[str] = field(default_factory=list)


async def generate(
    http: httpx.AsyncClient, url: str, creds: tuple[str, str], verifier: Verifier, load: Load, until: float
) -> None:
    while time.monotonic() < until:
        response = await http.post(
            url + "/oauth2/token", data={"grant_type": "client_credentials", "scope": "read"}, auth=creds
        )
        if response.status_code != 200:
            load.errors.append(f"{response.status_code} {response.text[:200]}")
            continue
        load.issued += 1
        await verifier.verify(response.json()["access_token"])


async def admin_token(http: httpx.AsyncClient, url: str, creds: tuple[str, str]) -> str:
    response = await http.post(url + "/oauth2/token", data={"grant_type": "client_credentials"}, auth=creds)
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def metric(text: str, name: str, **labels: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


@pytest.fixture
def server_log(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "issuer.log"


def assert_clean(verifier: Verifier, load: Load, server: IssuerServer) -> None:
    assert not load.errors, (load.errors[:5], server.log_tail())
    assert verifier.failures == [], (len(verifier.failures), verifier.failures[:5])
    assert verifier.verified == load.issued > 100


async def test_scheduled_rotation_under_load(tmp_path: Path, server_log: Path) -> None:
    setup = await provision(tmp_path, ISSUER_KEY_ROTATION_INTERVAL=str(ROTATION_INTERVAL))
    with IssuerServer(setup.env, log_path=server_log) as server:
        limits = httpx.Limits(max_connections=LOOPS + 2)
        async with httpx.AsyncClient(timeout=10, limits=limits) as http:
            verifier = Verifier(http, server.url)
            load = Load()
            samples: list[tuple[int, float]] = []  # (observed max-age, seconds to the next activation)

            async def sample_max_age(until: float) -> None:
                """Bracket a JWKS read between two identical key listings: the max-age it
                carries may not reach past the pending key's scheduled activation."""
                token = await admin_token(http, server.url, setup.admin)
                headers = {"Authorization": f"Bearer {token}"}
                while time.monotonic() < until:
                    started = time.time()
                    before = (await http.get(server.url + "/admin/keys", headers=headers)).json()["items"]
                    jwks = await http.get(server.url + "/.well-known/jwks.json")
                    after = (await http.get(server.url + "/admin/keys", headers=headers)).json()["items"]
                    if before == after:
                        pending = next(k for k in before if k["state"] == "pending")
                        at = datetime.fromisoformat(pending["next_transition"]["at"]).timestamp()
                        match = MAX_AGE_RE.search(jwks.headers["cache-control"])
                        assert match
                        # ``at`` is truncated to the second: the activation is before at + 1
                        samples.append((int(match.group(1)), max(0.0, at + 1 - started)))
                    await asyncio.sleep(0.25)

            until = time.monotonic() + LOAD_SECONDS
            await asyncio.gather(
                *(generate(http, server.url, setup.load, verifier, load, until) for _ in range(LOOPS)),
                sample_max_age(until),
            )
            metrics = (await http.get(server.url + "/metrics")).text

    assert_clean(verifier, load, server)
    distinct = set(verifier.kids_seen)
    assert len(distinct) >= 3, f"expected at least 2 rotations, saw kids {verifier.kids_seen}"
    assert metric(metrics, "issuer_key_rotations_total", kind="scheduled") >= 2
    ages = [m for _, m, _ in verifier.fetches]
    assert ages and max(ages) <= min(MAX_AGE, ROTATION_INTERVAL), ages
    assert len(samples) >= 10
    assert all(m <= bound for m, bound in samples), [s for s in samples if s[0] > s[1]]


async def test_rotation_through_the_management_api_under_load(tmp_path: Path, server_log: Path) -> None:
    setup = await provision(tmp_path)
    with IssuerServer(setup.env, log_path=server_log) as server:
        async with httpx.AsyncClient(timeout=10, limits=httpx.Limits(max_connections=LOOPS + 2)) as http:
            verifier = Verifier(http, server.url)
            load = Load()
            outcomes: list[int] = []
            retry_afters: list[int] = []

            async def operator(until: float) -> None:
                token = await admin_token(http, server.url, setup.admin)
                while time.monotonic() < until:
                    response = await http.post(
                        server.url + "/admin/keys/rotate", headers={"Authorization": f"Bearer {token}"}
                    )
                    outcomes.append(response.status_code)
                    if response.status_code == 409:
                        wait = int(response.headers["retry-after"])
                        retry_afters.append(wait)
                        await asyncio.sleep(min(wait, max(0.0, until - time.monotonic())))
                    else:
                        assert response.status_code == 200, response.text
                        states = sorted(k["state"] for k in response.json()["items"])
                        assert states.count("active") == 1 and states.count("pending") == 1
                        token = await admin_token(http, server.url, setup.admin)

            until = time.monotonic() + LOAD_SECONDS
            await asyncio.gather(
                *(generate(http, server.url, setup.load, verifier, load, until) for _ in range(LOOPS)),
                operator(until),
            )
            metrics = (await http.get(server.url + "/metrics")).text

    assert_clean(verifier, load, server)
    rotations = outcomes.count(200)
    assert rotations >= 2, outcomes
    assert 409 in outcomes, "a rotation right after another must wait for the new pending key"
    # Retry-After never asks for more than the publication delay (max-age + skew + refresh) + 1
    assert retry_afters and all(1 <= w <= MAX_AGE + 0.5 + 1 for w in retry_afters), retry_afters
    assert len(set(verifier.kids_seen)) >= 3, verifier.kids_seen
    assert metric(metrics, "issuer_key_rotations_total", kind="manual") == rotations
    ages = [m for _, m, _ in verifier.fetches]
    assert ages and max(ages) <= MAX_AGE
