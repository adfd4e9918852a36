"""grant_type=password (RFC 6749 §4.3): who may use it, what the token says, and how failures
look (the same, in the same time); bcrypt upgrade and argon2 kept off the event loop."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable
from typing import Any

import bcrypt
import httpx
import jwt
import pytest

from issuer.accounts.users import NewUser
from tests.conftest import OPERATOR, make_client, services_of

AUDIENCE = "https://api.example.com"


async def password_client(http: httpx.AsyncClient, *, public: bool = False, **kwargs: Any) -> tuple[str, str | None]:
    return await make_client(
        http, name="first-party", grant_types=("password", "refresh_token"), public=public, **kwargs
    )


async def login(
    http: httpx.AsyncClient, client: tuple[str, str | None], username: str, password: str, **extra: str
) -> httpx.Response:
    client_id, secret = client
    data = {"grant_type": "password", "username": username, "password": password, **extra}
    if secret is None:
        return await http.post("/oauth2/token", data={**data, "client_id": client_id})
    return await http.post("/oauth2/token", data=data, auth=(client_id, secret))


async def verified_claims(http: httpx.AsyncClient, token: str) -> dict[str, Any]:
    """Check the signature against the published JWKS, as a resource server would."""
    jwks = jwt.PyJWKSet.from_dict((await http.get("/.well-known/jwks.json")).json())
    header = jwt.get_unverified_header(token)
    assert header["typ"] == "at+jwt"
    key = next(k for k in jwks.keys if k.key_id == header["kid"])
    claims: dict[str, Any] = jwt.decode(
        token, key.key, algorithms=[header["alg"]], audience=AUDIENCE, options={"verify_iat": False}
    )
    return claims


def login_failures(http: httpx.AsyncClient) -> float:
    return services_of(http).metrics.registry.get_sample_value("issuer_login_failures_total") or 0.0


async def create_user(
    http: httpx.AsyncClient, username: str = "alice", password: str = "password-123", **kwargs: Any
) -> Any:
    return await services_of(http).ops.users.create(
        OPERATOR, NewUser(username, password, f"{username}@example.com"), **kwargs
    )


async def test_login_issues_a_token_for_the_user_id_with_scope_roles_and_a_refresh_token(
    http: httpx.AsyncClient,
) -> None:
    user = await create_user(http, roles=("manager",))
    client = await password_client(http)

    response = await login(http, client, "alice", "password-123")

    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["scope"] == "read write"
    assert isinstance(body["refresh_token"], str) and len(body["refresh_token"]) >= 32
    claims = await verified_claims(http, body["access_token"])
    assert claims["sub"] == user.user_id != "alice"
    assert claims["client_id"] == client[0]
    assert claims["scope"] == "read write"
    assert claims["roles"] == ["manager", "user"]
    assert claims["aud"] == AUDIENCE
    assert claims["exp"] - claims["iat"] == body["expires_in"]


async def test_subject_stays_the_same_across_logins_and_username_case(http: httpx.AsyncClient) -> None:
    user = await create_user(http, "Bob")
    client = await password_client(http)
    subjects = set()
    for name in ("Bob", "bob", "BOB"):
        response = await login(http, client, name, "password-123")
        assert response.status_code == 200, response.text
        subjects.add((await verified_claims(http, response.json()["access_token"]))["sub"])
    assert subjects == {user.user_id}


async def test_public_client_logs_in_with_its_client_id_only(http: httpx.AsyncClient) -> None:
    user = await create_user(http)
    client = await password_client(http, public=True)
    assert client[1] is None

    response = await login(http, client, "alice", "password-123", scope="read")

    assert response.status_code == 200, response.text
    assert response.json()["scope"] == "read"
    claims = await verified_claims(http, response.json()["access_token"])
    assert (claims["sub"], claims["client_id"], claims["scope"]) == (user.user_id, client[0], "read")
    assert "refresh_token" in response.json()


async def test_requested_scope_must_be_allowed_for_the_client(http: httpx.AsyncClient) -> None:
    await create_user(http)
    client = await password_client(http)
    response = await login(http, client, "alice", "password-123", scope="read admin")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_scope"


@pytest.mark.parametrize("public", [False, True])
async def test_client_not_allowed_the_password_grant_is_unauthorized(http: httpx.AsyncClient, public: bool) -> None:
    await create_user(http)
    grants = ("refresh_token",) if public else ("client_credentials",)
    client = await make_client(http, name="m2m", grant_types=grants, public=public)

    response = await login(http, client, "alice", "password-123")

    assert response.status_code == 400, response.text
    assert response.json()["error"] == "unauthorized_client"


async def test_wrong_client_secret_is_invalid_client(http: httpx.AsyncClient) -> None:
    await create_user(http)
    client_id, _ = await password_client(http)
    response = await login(http, (client_id, "not-the-secret"), "alice", "password-123")
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


async def test_unknown_user_wrong_password_and_disabled_user_fail_identically(http: httpx.AsyncClient) -> None:
    await create_user(http)
    await create_user(http, "disabled-user", disabled=True)
    client = await password_client(http)
    failures_before = login_failures(http)

    unknown = await login(http, client, "nobody", "password-123")
    wrong = await login(http, client, "alice", "wrong-password")
    disabled = await login(http, client, "disabled-user", "password-123")

    for response in (unknown, wrong, disabled):
        assert response.status_code == 400
        assert response.json()["error"] == "invalid_grant"
        assert "refresh_token" not in response.json()
    assert unknown.content == wrong.content == disabled.content
    assert unknown.headers.get("www-authenticate") == wrong.headers.get("www-authenticate")
    assert login_failures(http) == failures_before + 3


@pytest.mark.parametrize("missing", ["username", "password"])
async def test_missing_username_or_password_is_invalid_request(http: httpx.AsyncClient, missing: str) -> None:
    client_id, secret = await password_client(http)
    data = {"grant_type": "password", "username": "alice", "password": "password-123"}
    del data[missing]
    response = await http.post("/oauth2/token", data=data, auth=(client_id, secret or ""))
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


async def test_unknown_user_costs_as_much_as_a_wrong_password(start: Callable[..., Any]) -> None:
    """The dummy hash is really verified: with the default (OWASP) argon2 parameters an unknown
    username takes about as long as a wrong password."""
    async with start(
        argon2_time_cost=2, argon2_memory_kib=19456, rate_limit_login_per_user=0, rate_limit_login_per_ip=0
    ) as http:
        await create_user(http)
        client = await password_client(http)
        await login(http, client, "alice", "warm-up-pass")

        async def timed(username: str) -> float:
            began = time.perf_counter()
            response = await login(http, client, username, "not-the-password")
            elapsed = time.perf_counter() - began
            assert response.status_code == 400 and response.json()["error"] == "invalid_grant"
            return elapsed

        unknown, wrong = [], []
        for i in range(11):  # interleaved, so drift affects both sides alike
            unknown.append(await timed(f"ghost-{i}"))
            wrong.append(await timed("alice"))

    ratio = statistics.median(unknown) / statistics.median(wrong)
    assert 0.5 < ratio < 2.0, (statistics.median(unknown), statistics.median(wrong))


@pytest.mark.parametrize("prefix", ["$2b$", "$2a$", "$2y$"])
async def test_imported_bcrypt_hash_logs_in_and_is_upgraded_to_argon2id(http: httpx.AsyncClient, prefix: str) -> None:
    legacy = bcrypt.hashpw(b"legacy-password", bcrypt.gensalt(rounds=4)).decode()
    legacy = prefix + legacy[4:]
    user = await create_user(http, "legacy", "", password_hash=legacy)
    client = await password_client(http)

    assert (await login(http, client, "legacy", "wrong-password")).status_code == 400
    assert (await services_of(http).users.store.get_user(user.user_id)).password_hash == legacy

    response = await login(http, client, "legacy", "legacy-password")
    assert response.status_code == 200, response.text
    assert (await verified_claims(http, response.json()["access_token"]))["sub"] == user.user_id

    upgraded = (await services_of(http).users.store.get_user(user.user_id)).password_hash
    assert upgraded.startswith("$argon2id$")
    assert (await login(http, client, "legacy", "legacy-password")).status_code == 200
    assert (await login(http, client, "legacy", "wrong-password")).status_code == 400
    assert (await services_of(http).users.store.get_user(user.user_id)).password_hash == upgraded


async def test_concurrent_first_logins_of_a_bcrypt_user_all_succeed(http: httpx.AsyncClient) -> None:
    legacy = bcrypt.hashpw(b"legacy-password", bcrypt.gensalt(rounds=4)).decode()
    user = await create_user(http, "legacy", "", password_hash=legacy)
    client = await password_client(http)

    responses = await asyncio.gather(*(login(http, client, "legacy", "legacy-password") for _ in range(5)))

    assert [r.status_code for r in responses] == [200] * 5, [r.text for r in responses]
    stored = (await services_of(http).users.store.get_user(user.user_id)).password_hash
    assert stored.startswith("$argon2id$")
    assert (await login(http, client, "legacy", "legacy-password")).status_code == 200


async def test_argon2id_hash_with_weaker_parameters_is_rehashed_on_login(start: Callable[..., Any]) -> None:
    from argon2 import PasswordHasher

    weak = PasswordHasher(time_cost=1, memory_cost=7168, parallelism=1).hash("password-123")
    async with start(argon2_time_cost=2, argon2_memory_kib=8192) as http:
        user = await create_user(http, password_hash=weak)
        client = await password_client(http)
        assert (await login(http, client, "alice", "password-123")).status_code == 200
        stored = (await services_of(http).users.store.get_user(user.user_id)).password_hash
        assert stored.startswith("$argon2id$") and stored != weak
        assert "m=8192,t=2,p=1" in stored


async def test_password_hashing_runs_off_the_event_loop(start: Callable[..., Any]) -> None:
    """While eight logins hash (one worker thread, so they queue), the event loop never stalls
    for anything like one hash, and JWKS requests are answered before the logins finish."""
    settings = {
        "argon2_time_cost": 2,
        "argon2_memory_kib": 65536,
        "password_hash_threads": 1,
        "rate_limit_login_per_user": 0,
        "rate_limit_login_per_ip": 0,
    }
    async with start(**settings) as http:
        await create_user(http)
        client = await password_client(http)
        assert (await http.get("/.well-known/jwks.json")).status_code == 200
        solo = []
        for _ in range(2):
            began = time.perf_counter()
            assert (await login(http, client, "alice", "password-123")).status_code == 200
            solo.append(time.perf_counter() - began)
        one_login = min(solo)

        gaps: list[float] = []

        async def ticker() -> None:
            last = time.perf_counter()
            while True:
                await asyncio.sleep(0.005)
                now = time.perf_counter()
                gaps.append(now - last)
                last = now

        ticking = asyncio.create_task(ticker())
        logins = [asyncio.create_task(login(http, client, "alice", "password-123")) for _ in range(8)]
        await asyncio.sleep(0.02)
        jwks_latencies: list[float] = []
        while len(jwks_latencies) < 5:
            began = time.perf_counter()
            jwks = await http.get("/.well-known/jwks.json")
            jwks_latencies.append(time.perf_counter() - began)
            assert jwks.status_code == 200
            await asyncio.sleep(0.01)
        finished_before_jwks = sum(task.done() for task in logins)
        responses = await asyncio.gather(*logins)
        ticking.cancel()
        await asyncio.gather(ticking, return_exceptions=True)

    assert all(r.status_code == 200 for r in responses), [r.text for r in responses]
    assert finished_before_jwks < len(logins)
    # Hashing on the loop would hold every JWKS request and every tick for a whole hash; on a
    # busy 2-core machine single spikes happen anyway, so the typical latency is what is compared.
    assert statistics.median(jwks_latencies) < one_login / 2, (jwks_latencies, one_login)
    assert statistics.median(gaps) < one_login / 4, (statistics.median(gaps), one_login)
    assert max(gaps) < one_login, (max(gaps), one_login)


async def test_a_client_without_the_refresh_grant_gets_no_refresh_token_and_no_family(
    http: httpx.AsyncClient,
) -> None:
    """A refresh token the client may not redeem is useless, and each login would store a family
    for ISSUER_REFRESH_TOKEN_ABSOLUTE_TTL: a password-only client gets neither."""
    await create_user(http)
    db = services_of(http).store.db

    async def families() -> int:
        row = await db.fetchrow("SELECT count(*) AS n FROM refresh_families")
        return int(row["n"])

    password_only = await make_client(http, name="password-only", grant_types=("password",))
    response = await login(http, password_only, "alice", "password-123")
    assert response.status_code == 200, response.text
    assert "access_token" in response.json()
    assert "refresh_token" not in response.json()
    assert await families() == 0

    with_refresh = await password_client(http)
    response = await login(http, with_refresh, "alice", "password-123")
    assert response.status_code == 200, response.text
    assert "refresh_token" in response.json()
    assert await families() == 1
