"""The resource-server verifier against a misbehaving issuer (one that drips bytes, sends a gzip bomb,
deeply nested JSON or a bad ``jwks_uri``) and hostile token claims: every failure is bounded in time
and memory, goes through the backoff and stale-if-error path, and is a 401 or a 503, never a 500."""

from __future__ import annotations

import asyncio
import json
import time
import zlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from joserfc import jws
from joserfc.jwk import ECKey

from issuer_verifier import InvalidToken, IssuerUnavailable, Verifier
from tests.conftest import FakeClock
from tests.verifier_helpers import API

KEY = ECKey.generate_key("P-256", private=True)
JWKS = json.dumps({"keys": [{**KEY.as_dict(private=False), "kid": "k1", "use": "sig"}]}).encode()
CACHE = "max-age=300, stale-if-error=600"


def token(kid: str = "k1", issuer: str = "https://i.example", **claims: Any) -> str:
    now = int(time.time())
    body = {"iss": issuer, "sub": "s", "aud": API, "exp": now + 3600, "iat": now, "jti": "j", "client_id": "c"}
    body.update(claims)
    payload = json.dumps({k: v for k, v in body.items() if v is not None})
    return jws.serialize_compact({"alg": "ES256", "typ": "at+jwt", "kid": kid}, payload, KEY)


@dataclass
class Issuer:
    """A raw HTTP/1.1 issuer on a local port: ``mode`` decides how the JWKS is answered."""

    mode: str = "ok"
    port: int = 0
    jwks_requests: int = 0
    bomb: bytes = field(default_factory=lambda: zlib.compress(b"\0" * (32 << 20), 9, wbits=31))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            path = (await reader.readuntil(b"\r\n\r\n")).split()[1].decode()
            if "well-known" in path:
                meta = json.dumps({"issuer": self.url, "jwks_uri": self.url + "/jwks"}).encode()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(meta) + meta)
            elif self.mode == "ok":
                self.jwks_requests += 1
                head = f"HTTP/1.1 200 OK\r\nCache-Control: {CACHE}\r\nContent-Length: {len(JWKS)}\r\n\r\n"
                writer.write(head.encode() + JWKS)
            elif self.mode == "drip":  # a byte every 0.1 s: every read is quick, the whole takes minutes
                self.jwks_requests += 1
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(JWKS))
                for byte in JWKS:
                    writer.write(bytes([byte]))
                    await writer.drain()
                    await asyncio.sleep(0.1)
            else:  # 32 MiB of zeros in ~32 KiB of gzip
                self.jwks_requests += 1
                gzipped = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(self.bomb)
                writer.write(gzipped + self.bomb)
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def issuer() -> AsyncIterator[Issuer]:
    served = Issuer()
    server = await asyncio.start_server(served.handle, "127.0.0.1", 0)
    served.port = server.sockets[0].getsockname()[1]
    yield served
    server.close()


async def test_a_dripping_issuer_costs_one_bounded_background_refresh(issuer: Issuer, clock: FakeClock) -> None:
    verifier = Verifier(issuer.url, API, timeout=0.5, clock=clock, monotonic=clock)
    good = token(issuer=issuer.url)
    await verifier.verify(good)
    issuer.mode = "drip"
    clock.advance(301)
    started = time.monotonic()
    results = await asyncio.gather(*(verifier.verify(good) for _ in range(50)))
    assert len(results) == 50 and time.monotonic() - started < 0.3  # the cached kid serves meanwhile
    with pytest.raises(InvalidToken):  # an unknown kid waits for that one fetch, bounded by its deadline
        await verifier.verify(token("k2", issuer=issuer.url))
    await verifier.idle()
    assert time.monotonic() - started < 1.5
    assert issuer.jwks_requests == 2 and verifier.keyset.errors == 1  # one refresh, not one per request
    await verifier.aclose()


async def test_a_dripping_issuer_is_unavailable_after_the_deadline_sync_and_async(issuer: Issuer) -> None:
    issuer.mode = "drip"
    for verify in ("verify", "verify_sync"):
        verifier = Verifier(issuer.url, API, timeout=0.4)
        started = time.monotonic()
        with pytest.raises(IssuerUnavailable, match="within 0.4 s"):
            if verify == "verify":
                await verifier.verify(token(issuer=issuer.url))
            else:
                await asyncio.to_thread(verifier.verify_sync, token(issuer=issuer.url))
        assert time.monotonic() - started < 1.2  # the sync path checks between reads: at most ~2 deadlines
        await verifier.aclose()


async def test_a_gzip_bomb_stops_at_the_size_cap(issuer: Issuer) -> None:
    issuer.mode = "bomb"
    for verify in ("verify", "verify_sync"):
        verifier = Verifier(issuer.url, API, timeout=5)
        with pytest.raises(IssuerUnavailable, match="larger than 262144 bytes"):
            if verify == "verify":
                await verifier.verify(token(issuer=issuer.url))
            else:
                await asyncio.to_thread(verifier.verify_sync, token(issuer=issuer.url))
        await verifier.aclose()


def mock_issuer(jwks: Callable[[], httpx.Response], metadata: dict[str, Any] | None = None) -> httpx.AsyncClient:
    meta = metadata or {"issuer": "https://i.example", "jwks_uri": "https://i.example/jwks"}

    def serve(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=meta) if "well-known" in request.url.path else jwks()

    return httpx.AsyncClient(transport=httpx.MockTransport(serve))


async def test_unparseable_answers_take_the_failure_path(clock: FakeClock) -> None:
    answers = [httpx.Response(200, content=JWKS, headers={"Cache-Control": CACHE})]

    def jwks() -> httpx.Response:
        return answers[-1]

    async with mock_issuer(jwks) as http:
        verifier = Verifier("https://i.example", API, http=http, clock=clock, monotonic=clock)
        await verifier.verify(token())
        answers.append(httpx.Response(200, content=b"[" * 200_000))  # RecursionError in json.loads
        clock.advance(301)
        for _ in range(5):
            await verifier.verify(token())  # stale keys within stale-if-error
            await verifier.idle()
        assert verifier.keyset.errors == 1  # the backoff holds: no refetch per request
        big = httpx.Response(
            200, json={"issuer": "https://i.example", "jwks_uri": "https://i.example/jwks", "x": "y" * 70_000}
        )
        for metadata, why in [
            ({"issuer": "https://i.example", "jwks_uri": "http://[bad"}, "not an https URL"),
            ({"issuer": "https://i.example", "jwks_uri": "http://i.example/jwks"}, "not an https URL"),
            (big.json(), "FetchError"),
        ]:
            async with mock_issuer(jwks, metadata) as other:
                fresh = Verifier("https://i.example", API, http=other, clock=clock, monotonic=clock)
                with pytest.raises(IssuerUnavailable, match=why):
                    await fresh.verify(token())
                with pytest.raises(IssuerUnavailable, match="last fetch failed"):  # the backoff: no refetch
                    await fresh.verify(token())
                assert fresh.keyset.errors == 1
    with pytest.raises(ValueError, match="jwks_uri must be https"):
        Verifier("https://i.example", API, jwks_uri="http://i.example/jwks")


async def test_hostile_times_and_narrowed_required_claims_are_invalid_tokens(clock: FakeClock) -> None:
    async with mock_issuer(lambda: httpx.Response(200, content=JWKS)) as http:
        verifier = Verifier("https://i.example", API, http=http, required_claims=["sub"])
        cases: list[tuple[dict[str, Any], str]] = [
            ({"exp": 10**30}, "claims"),
            ({"exp": 1e300}, "claims"),
            ({"exp": float("inf")}, "malformed"),  # json.dumps writes Infinity, not JSON
            ({"iat": float("nan")}, "malformed"),
            ({"nbf": -(10**20)}, "claims"),
            ({"exp": None}, "claims"),  # exp and aud are required whatever required_claims says
            ({"aud": None}, "claims"),
        ]
        for claims, reason in cases:
            with pytest.raises(InvalidToken) as caught:
                await verifier.verify(token(**claims))
            assert caught.value.reason == reason, (claims, caught.value)
