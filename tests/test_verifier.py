"""The resource-server verifier (verifier/issuer_verifier) against the real issuer app: what it
accepts, what it refuses and why, and how it caches the JWKS (max-age, ETag, stale-if-error, the
refetch floor for unknown kids)."""

from __future__ import annotations

import asyncio
import json
import secrets
from typing import Any

import httpx
import pytest
from joserfc import jws
from joserfc.jwk import ECKey

from issuer_verifier import InsufficientScope, InvalidToken, IssuerUnavailable, Verifier
from issuer_verifier.bearer import bearer_token
from issuer_verifier.errors import InvalidRequest, MissingToken
from issuer_verifier.verifier import metadata_url
from tests.conftest import FakeClock
from tests.verifier_helpers import (
    API,
    claims_of,
    counted,
    forge,
    service_token,
    user_token,
    verifier_for,
    with_header,
)


async def refused(verifier: Verifier, token: str, reason: str) -> InvalidToken:
    with pytest.raises(InvalidToken) as caught:
        await verifier.verify(token)
    assert caught.value.reason == reason, caught.value
    assert token not in str(caught.value)
    return caught.value


async def test_a_service_token_verifies_and_exposes_its_claims(
    sqlite_http: httpx.AsyncClient, clock: FakeClock
) -> None:
    verifier = verifier_for(sqlite_http, clock)
    token = await verifier.verify(await service_token(sqlite_http))
    assert token.scopes == {"orders:read"} and token.audiences == (API,)
    assert token.subject == token.client_id and token.token_id and token.roles == frozenset()
    token.require(scopes=["orders:read"])
    with pytest.raises(InsufficientScope) as caught:
        token.require(scopes=["orders:write"])
    assert caught.value.www_authenticate() == (
        'Bearer error="insufficient_scope", error_description="token lacks scope orders:write (sub '
        f'{token.subject})", scope="orders:write"'
    )


async def test_a_user_token_carries_effective_roles(sqlite_http: httpx.AsyncClient, clock: FakeClock) -> None:
    """A user token names two audiences (the API and the issuer); a manager also holds ``user``."""
    verifier = verifier_for(sqlite_http, clock)
    token = await verifier.verify(await user_token(sqlite_http, "maria", ("manager",)))
    assert token.roles == {"manager", "user"} and API in token.audiences and len(token.audiences) == 2
    token.require(scopes=["orders:read"], roles=["manager", "user"])
    with pytest.raises(InsufficientScope, match="lacks role admin"):
        token.require(roles=["admin"])


async def test_an_id_token_is_not_an_access_token(sqlite_http: httpx.AsyncClient, clock: FakeClock) -> None:
    """Same key, same claims, ``typ: JWT`` (what an ID token carries): refused before any key lookup."""
    await service_token(sqlite_http)  # the sqlite_http has an active key
    verifier = verifier_for(sqlite_http, clock)
    error = await refused(verifier, forge(sqlite_http, claims_of(sqlite_http, clock), typ="JWT"), "typ")
    assert "at+jwt" in error.description
    await refused(verifier, forge(sqlite_http, claims_of(sqlite_http, clock), typ=None), "typ")
    assert (
        await verifier.verify(forge(sqlite_http, claims_of(sqlite_http, clock), typ="application/AT+JWT"))
    ).subject == "u1"


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"aud": "https://other.example.com"}, "audience"),
        ({"aud": ["https://other.example.com", "https://third.example.com"]}, "audience"),
        ({"iss": "https://evil.example.com"}, "issuer"),
        ({"jti": None}, "claims"),
        ({"client_id": None}, "claims"),
        ({"exp": "tomorrow"}, "claims"),
        ({"scope": ["orders:read"]}, "claims"),
        ({"roles": "manager"}, "claims"),
    ],
)
async def test_claims_are_checked(
    sqlite_http: httpx.AsyncClient, clock: FakeClock, overrides: dict[str, Any], reason: str
) -> None:
    await service_token(sqlite_http)
    await refused(
        verifier_for(sqlite_http, clock), forge(sqlite_http, claims_of(sqlite_http, clock, **overrides)), reason
    )


async def test_times_are_checked_with_a_small_leeway(sqlite_http: httpx.AsyncClient, clock: FakeClock) -> None:
    verifier = verifier_for(sqlite_http, clock, leeway=30)
    raw = await service_token(sqlite_http)
    expires = (await verifier.verify(raw)).expires_at
    clock.advance(expires - clock() + 29)
    await verifier.verify(raw)
    clock.advance(1)
    await refused(verifier, raw, "expired")
    now = int(clock())
    await refused(verifier, forge(sqlite_http, claims_of(sqlite_http, clock, nbf=now + 31)), "not_yet_valid")
    await refused(verifier, forge(sqlite_http, claims_of(sqlite_http, clock, iat=now + 31)), "not_yet_valid")
    await verifier.verify(forge(sqlite_http, claims_of(sqlite_http, clock, nbf=now + 29, iat=now + 29)))


async def test_algorithms_come_from_the_key(sqlite_http: httpx.AsyncClient, clock: FakeClock) -> None:
    """The issuer's key here is ES256: a token claiming RS256, HS256 or none with its kid is refused."""
    raw = await service_token(sqlite_http)
    verifier = verifier_for(sqlite_http, clock)
    await verifier.verify(raw)
    await refused(verifier, with_header(raw, alg="RS256"), "alg")  # allowed, but not for this kid
    for alg in ("HS256", "none", "ES512"):
        await refused(verifier, with_header(raw, alg=alg), "alg")
    await refused(verifier, with_header(raw, crit=["exp"]), "malformed")
    other = jws.serialize_compact({"alg": "ES256"}, "{}", ECKey.generate_key())
    await refused(verifier, ".".join([*raw.split(".")[:2], other.split(".")[2]]), "signature")
    await refused(verifier, "not-a-jwt", "malformed")
    await refused(verifier, "a.b.c", "malformed")


async def test_the_jwks_is_cached_for_max_age_then_revalidated_with_its_etag(
    sqlite_http: httpx.AsyncClient, clock: FakeClock
) -> None:
    jwks = counted(sqlite_http)
    verifier = verifier_for(sqlite_http, clock)
    raw = await service_token(sqlite_http)
    control = (await sqlite_http.get("/.well-known/jwks.json")).headers["cache-control"]
    max_age = int(control.split("max-age=")[1].split(",")[0])
    jwks.statuses.clear()
    for _ in range(50):
        await verifier.verify(raw)
    assert jwks.statuses == [200]
    clock.advance(max_age - 1)
    await verifier.verify(raw)
    assert jwks.statuses == [200]
    clock.advance(1)
    await verifier.verify(raw)  # served from the cache while one revalidation runs behind it
    await verifier.verify(raw)
    await verifier.idle()
    assert jwks.statuses == [200, 304]  # conditional request: If-None-Match with the ETag
    assert verifier.keyset.fetches == {"initial": 1, "expired": 1, "unknown_kid": 0}


async def test_a_flood_of_random_kids_refetches_at_most_once_per_floor(
    sqlite_http: httpx.AsyncClient, clock: FakeClock
) -> None:
    jwks = counted(sqlite_http)
    verifier = verifier_for(sqlite_http, clock, refetch_floor=30)
    raw = await service_token(sqlite_http)
    await verifier.verify(raw)
    attacker = ECKey.generate_key("P-256")
    seconds, per_second = 90, 100
    for _ in range(seconds):
        for _ in range(per_second):
            header = {"alg": "ES256", "typ": "at+jwt", "kid": secrets.token_urlsafe(8)}
            await refused(verifier, jws.serialize_compact(header, "{}", attacker), "unknown_kid")
        await verifier.verify(raw)  # the real tokens keep verifying
        clock.advance(1)
    # 9,000 unknown kids in 90 s with a 30 s floor: one refetch at 0, 30 and 60 s, besides the
    # first fetch and the max-age renewals (max-age is 300 s here: none)
    assert verifier.keyset.fetches == {"initial": 1, "expired": 0, "unknown_kid": 3}
    assert jwks.count == 4


async def test_stale_keys_serve_while_the_issuer_is_unreachable_within_stale_if_error(
    sqlite_http: httpx.AsyncClient, clock: FakeClock
) -> None:
    raw = await service_token(sqlite_http)
    down = False

    async def fail_when_down(request: httpx.Request) -> None:
        if down:
            raise httpx.ConnectError("issuer down", request=request)

    sqlite_http.event_hooks = {**sqlite_http.event_hooks, "request": [fail_when_down]}
    verifier = verifier_for(sqlite_http, clock, error_backoff=5)
    await verifier.verify(raw)
    control = (await sqlite_http.get("/.well-known/jwks.json")).headers["cache-control"]
    directives = dict(d.strip().split("=") for d in control.split(",")[1:])
    max_age, stale = int(directives["max-age"]), int(directives["stale-if-error"])
    down = True
    clock.advance(max_age + stale - 1)
    await verifier.verify(raw)  # the refresh behind it fails: the stale copy stands in
    await verifier.idle()
    assert verifier.keyset.errors == 1
    await verifier.verify(raw)  # within the backoff: no new attempt
    assert verifier.keyset.errors == 1
    clock.advance(1)
    with pytest.raises(IssuerUnavailable):
        await verifier.verify(raw)
    down = False
    clock.advance(5)
    await verifier.verify(raw)


async def test_an_unreachable_issuer_is_unavailable_not_an_invalid_token(clock: FakeClock) -> None:
    async with httpx.AsyncClient(transport=httpx.MockTransport(lambda r: httpx.Response(502))) as http:
        verifier = Verifier("https://issuer.example.com", API, http=http, clock=clock, monotonic=clock)
        token = jws.serialize_compact({"alg": "ES256", "typ": "at+jwt", "kid": "k"}, "{}", ECKey.generate_key())
        with pytest.raises(IssuerUnavailable, match="oauth-authorization-server answered 502"):
            await verifier.verify(token)


async def test_the_sync_entry_point_verifies_the_same_way(sqlite_http: httpx.AsyncClient, clock: FakeClock) -> None:
    raw = await service_token(sqlite_http)
    base = str(sqlite_http.base_url).rstrip("/")
    documents = {
        path: await sqlite_http.get(path)
        for path in ("/.well-known/oauth-authorization-server", "/.well-known/jwks.json")
    }

    def serve(request: httpx.Request) -> httpx.Response:
        answer = documents[request.url.path]
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)

    with httpx.Client(transport=httpx.MockTransport(serve)) as http:
        verifier = Verifier(base, API, sync_http=http, clock=clock, monotonic=clock)
        assert verifier.verify_sync(raw).scopes == {"orders:read"}
        with pytest.raises(InvalidToken, match="typ 'JWT'"):
            verifier.verify_sync(forge(sqlite_http, claims_of(sqlite_http, clock), typ="JWT"))


def test_metadata_url_follows_rfc_8414() -> None:
    assert metadata_url("https://a.example") == "https://a.example/.well-known/oauth-authorization-server"
    assert metadata_url("https://a.example/t/1") == "https://a.example/.well-known/oauth-authorization-server/t/1"


def test_the_authorization_header_is_parsed_strictly() -> None:
    assert bearer_token("Bearer abc.def.ghi") == "abc.def.ghi"
    assert bearer_token("bearer  abc") == "abc"
    for header in (None, "", "Basic dXNlcjpwYXNz"):
        with pytest.raises(MissingToken) as missing:
            bearer_token(header)
        assert missing.value.www_authenticate("orders") == 'Bearer realm="orders"'
    for header in ("Bearer", "Bearer a b"):
        with pytest.raises(InvalidRequest):
            bearer_token(header)


async def test_max_age_zero_costs_one_revalidation_per_min_fresh_and_concurrent_callers_share_it(
    clock: FakeClock,
) -> None:
    """``no-cache``/``max-age=0`` (ours: the last second before a scheduled rotation): concurrent
    verifications wait for one fetch, and later ones reuse it for ``min_fresh``."""
    key = ECKey.generate_key("P-256", private=True)
    jwk = {**key.as_dict(private=False), "kid": "k1"}
    requests: list[str] = []

    async def serve(request: httpx.Request) -> httpx.Response:
        requests.append(request.url.path)
        await asyncio.sleep(0.01)  # concurrent verifications queue behind this fetch
        if request.url.path.endswith("oauth-authorization-server"):
            return httpx.Response(200, json={"issuer": "https://i.example", "jwks_uri": "https://i.example/jwks"})
        return httpx.Response(200, json={"keys": [jwk]}, headers={"Cache-Control": "max-age=0", "ETag": '"1"'})

    now = int(clock())
    claims = {
        "iss": "https://i.example",
        "sub": "s",
        "aud": API,
        "exp": now + 60,
        "iat": now,
        "jti": "j",
        "client_id": "c",
    }
    token = jws.serialize_compact({"alg": "ES256", "typ": "at+jwt", "kid": "k1"}, json.dumps(claims), key)
    async with httpx.AsyncClient(transport=httpx.MockTransport(serve)) as http:
        verifier = Verifier("https://i.example", API, http=http, clock=clock, monotonic=clock, min_fresh=1.0)
        await asyncio.gather(*(verifier.verify(token) for _ in range(20)))
        await verifier.verify(token)
        assert requests == ["/.well-known/oauth-authorization-server", "/jwks"]
        clock.advance(1)
        await asyncio.gather(*(verifier.verify(token) for _ in range(20)))
        assert requests.count("/jwks") == 2
        literal = Verifier("https://i.example", API, http=http, clock=clock, monotonic=clock, min_fresh=0)
        await asyncio.gather(*(literal.verify(token) for _ in range(20)))  # queued callers share one fetch
        assert literal.keyset.fetches == {"initial": 1, "expired": 0, "unknown_kid": 0}
        clock.advance(0.001)
        await literal.verify(token)  # max-age=0 taken literally: revalidate before each later use
        assert literal.keyset.fetches == {"initial": 1, "expired": 1, "unknown_kid": 0}
