"""Safe defaults: body-size limits, security headers, CORS, and production-mode refusals."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest

from issuer.errors import ConfigurationError
from issuer.settings import Settings
from issuer.startup import check_production, resolve_keks
from keys.envelope import new_kek
from tests.conftest import TEST_KEK, _truncate_postgres, make_client, run_cli, running_app
from tests.servers import IssuerServer, ServerFailed

LIMIT = 16384  # the default ISSUER_MAX_BODY_BYTES
POST_ROUTES = [
    "/oauth2/token",
    "/oauth2/revoke",
    "/oauth2/introspect",
    "/register",
    "/account/password",
    "/account/deactivate",
    "/userinfo",
    "/admin/keys/rotate",
    "/admin/keys/some-kid/revoke",
    "/admin/clients",
    "/admin/clients/some-client/secret",
    "/admin/users/some-user/disable",
    "/admin/users/some-user/sessions/revoke",
]
SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}


async def admin_headers(http: httpx.AsyncClient) -> dict[str, str]:
    cid, secret = await make_client(http, scopes=("issuer:admin",))
    assert secret is not None
    response = await http.post("/oauth2/token", data={"grant_type": "client_credentials"}, auth=(cid, secret))
    assert response.status_code == 200
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def assert_too_large(response: httpx.Response) -> None:
    assert response.status_code == 413, response.text
    assert response.headers["cache-control"] == "no-store"


# -- body size -------------------------------------------------------------------------------


async def test_oversized_declared_body_is_413_on_every_post_route(client: httpx.AsyncClient) -> None:
    admin = await admin_headers(client)
    oversized = b"a=" + b"x" * LIMIT
    for path in POST_ROUTES:
        for headers in ({}, admin):
            for content_type in ("application/x-www-form-urlencoded", "application/json"):
                response = await client.post(path, content=oversized, headers={**headers, "Content-Type": content_type})
                assert_too_large(response)
    # PUT and PATCH bodies too
    assert_too_large(
        await client.put(
            "/admin/users/u/roles", content=oversized, headers={**admin, "Content-Type": "application/json"}
        )
    )
    assert_too_large(
        await client.patch("/admin/clients/c", content=oversized, headers={**admin, "Content-Type": "application/json"})
    )
    # a malformed Content-Length is refused the same way
    bad = await client.post("/oauth2/token", content=b"grant_type=x", headers={"Content-Length": "12x"})
    assert bad.status_code in (400, 413), bad.text


async def test_body_at_the_limit_is_accepted(client: httpx.AsyncClient) -> None:
    cid, secret = await make_client(client)
    assert secret is not None
    prefix = b"grant_type=client_credentials&pad="
    body = prefix + b"x" * (LIMIT - len(prefix))
    assert len(body) == LIMIT
    response = await client.post(
        "/oauth2/token", content=body, auth=(cid, secret), headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert response.status_code == 200, response.text


async def chunks(total: int, size: int = 4096) -> AsyncIterator[bytes]:
    sent = 0
    while sent < total:
        piece = min(size, total - sent)
        sent += piece
        yield b"x" * piece


async def test_oversized_streamed_body_without_length_is_413(client: httpx.AsyncClient) -> None:
    """A chunked body declares no length; the limit is enforced while reading."""
    admin = await admin_headers(client)
    cid, secret = await make_client(client)
    assert secret is not None
    cases = [
        ("/oauth2/token", "application/x-www-form-urlencoded", {"Authorization": basic(cid, secret)}),
        ("/oauth2/introspect", "application/x-www-form-urlencoded", {}),
        ("/register", "application/json", {}),
        ("/admin/clients", "application/json", admin),
    ]
    for path, content_type, headers in cases:
        response = await client.post(
            path, content=chunks(LIMIT * 4), headers={**headers, "Content-Type": content_type}
        )
        assert "content-length" not in response.request.headers
        assert_too_large(response)


# -- security headers ------------------------------------------------------------------------


def assert_security_headers(response: httpx.Response, *, hsts: bool) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value, (response.request.url, name, response.headers.get(name))
    csp = response.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    if hsts:
        value = response.headers["strict-transport-security"]
        max_age = int(value.split("max-age=")[1].split(";")[0])
        assert max_age >= 31536000
    else:
        assert "strict-transport-security" not in response.headers


async def every_kind_of_response(http: httpx.AsyncClient) -> list[httpx.Response]:
    return [
        await http.get("/healthz"),
        await http.get("/.well-known/jwks.json"),
        await http.get("/.well-known/oauth-authorization-server"),
        await http.post("/oauth2/token", data={"grant_type": "client_credentials"}),  # 401
        await http.get("/admin/keys"),  # 401
        await http.get("/no-such-page"),  # 404
        await http.delete("/oauth2/token"),  # 405
        await http.post("/register", content=b"x" * (LIMIT + 1)),  # 413
        await http.get("/metrics"),
    ]


async def test_security_headers_on_plain_http(client: httpx.AsyncClient) -> None:
    for response in await every_kind_of_response(client):
        assert_security_headers(response, hsts=False)


async def test_hsts_only_when_the_issuer_url_is_https(make_settings: Callable[..., Settings], sqlite_url: str) -> None:
    settings = make_settings(database_url=sqlite_url, url="https://issuer.example.com")
    async with running_app(settings) as http:
        for response in await every_kind_of_response(http):
            assert_security_headers(response, hsts=True)


# -- CORS ------------------------------------------------------------------------------------

ALLOWED = "https://app.example.com"


async def preflight(http: httpx.AsyncClient, origin: str, path: str = "/oauth2/token") -> httpx.Response:
    return await http.options(
        path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )


async def test_cors_preflight_only_for_configured_origins(
    make_settings: Callable[..., Settings], sqlite_url: str
) -> None:
    settings = make_settings(database_url=sqlite_url, cors_origins=f"{ALLOWED}, https://other-app.example.com")
    async with running_app(settings) as http:
        cid, secret = await make_client(http)
        assert secret is not None
        for path in ("/oauth2/token", "/oauth2/revoke", "/.well-known/jwks.json"):
            ok = await preflight(http, ALLOWED, path)
            assert ok.status_code == 200, ok.text
            assert ok.headers["access-control-allow-origin"] == ALLOWED
            assert "POST" in ok.headers["access-control-allow-methods"]
            assert "content-type" in ok.headers["access-control-allow-headers"].lower()
            assert_security_headers(ok, hsts=False)

        for origin in ("https://evil.example.com", "http://app.example.com", "https://app.example.com.evil.io", "null"):
            refused = await preflight(http, origin)
            assert refused.status_code >= 400, (origin, refused.status_code)
            assert "access-control-allow-origin" not in refused.headers, origin

        # the actual cross-origin request: the allowed origin may read the answer, others not
        allowed = await http.post(
            "/oauth2/token", data={"grant_type": "client_credentials"}, auth=(cid, secret), headers={"Origin": ALLOWED}
        )
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == ALLOWED
        other = await http.post(
            "/oauth2/token",
            data={"grant_type": "client_credentials"},
            auth=(cid, secret),
            headers={"Origin": "https://evil.example.com"},
        )
        assert "access-control-allow-origin" not in other.headers
        assert "access-control-allow-credentials" not in other.headers


async def test_no_cors_by_default(client: httpx.AsyncClient) -> None:
    response = await preflight(client, ALLOWED)
    # a plain OPTIONS answer (204 with Allow), without CORS headers: the browser refuses
    assert response.status_code == 204 and "POST" in response.headers["allow"]
    assert not any(name.startswith("access-control-") for name in response.headers)
    simple = await client.get("/.well-known/jwks.json", headers={"Origin": ALLOWED})
    assert "access-control-allow-origin" not in simple.headers


# -- production mode -------------------------------------------------------------------------


def production(**values: object) -> Settings:
    base: dict[str, object] = {
        "env": "production",
        "url": "https://issuer.example.com",
        "database_url": "postgresql://issuer@db.internal:5432/issuer",
        "key_encryption_keys": new_kek(),
    }
    base.update(values)
    return Settings(_env_file=None, **base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("values", "mentions"),
    [
        ({"database_url": "sqlite:///var/issuer.sqlite3"}, "ISSUER_DATABASE_URL"),
        ({"database_url": ""}, "ISSUER_DATABASE_URL"),
        ({"key_encryption_keys": ""}, "ISSUER_KEY_ENCRYPTION_KEYS"),
        ({"url": "http://issuer.example.com"}, "ISSUER_URL"),
        ({"url": "http://10.0.0.8:8000"}, "ISSUER_URL"),
        ({"url": "http://127.0.0.1.example.com"}, "ISSUER_URL"),
    ],
)
def test_production_refuses_development_defaults(values: dict[str, object], mentions: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        check_production(production(**values))
    assert mentions in str(info.value)


def test_production_lists_every_problem_at_once() -> None:
    settings = production(database_url="", key_encryption_keys="", url="http://issuer.example.com")
    with pytest.raises(ConfigurationError) as info:
        check_production(settings)
    message = str(info.value)
    for name in ("ISSUER_DATABASE_URL", "ISSUER_KEY_ENCRYPTION_KEYS", "ISSUER_URL"):
        assert name in message


@pytest.mark.parametrize(
    "url", ["https://issuer.example.com", "http://127.0.0.1:8000", "http://localhost:8000", "http://[::1]:8000"]
)
def test_production_accepts_a_proper_configuration(url: str) -> None:
    settings = production(url=url)
    check_production(settings)
    assert resolve_keks(settings) is not None


def test_development_mode_accepts_the_defaults(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, data_dir=tmp_path)
    check_production(settings)
    envelope = resolve_keks(settings)  # a generated development key, kept in the data directory
    assert (tmp_path / "dev-key-encryption-key").exists()
    again = resolve_keks(settings)
    blob = envelope.encrypt(b"x", b"aad")
    assert again.decrypt(blob, b"aad") == b"x"


def test_production_refuses_a_generated_kek(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="ISSUER_KEY_ENCRYPTION_KEYS"):
        resolve_keks(
            production(database_url=f"sqlite:///{tmp_path}/x.sqlite3", key_encryption_keys="", data_dir=tmp_path)
        )
    assert not (tmp_path / "dev-key-encryption-key").exists()
    # PostgreSQL never gets a generated one, whatever the mode
    with pytest.raises(ConfigurationError, match="ISSUER_KEY_ENCRYPTION_KEYS"):
        resolve_keks(Settings(_env_file=None, database_url="postgresql://x@127.0.0.1/x", data_dir=tmp_path))
    with pytest.raises(ConfigurationError, match="ISSUER_KEY_ENCRYPTION_KEYS"):
        resolve_keks(production(key_encryption_keys="not-base64-$$"))


def test_cli_refuses_production_with_development_defaults(tmp_path: Path) -> None:
    env = {"ISSUER_ENV": "production", "ISSUER_DATA_DIR": str(tmp_path), "ISSUER_URL": "http://issuer.example.com"}
    result = run_cli(env, "keys", "list", "--json")
    assert result.returncode == 2, result
    for name in ("ISSUER_DATABASE_URL", "ISSUER_KEY_ENCRYPTION_KEYS", "ISSUER_URL"):
        assert name in result.stderr
    assert not (tmp_path / "issuer.sqlite3").exists()
    assert not (tmp_path / "dev-key-encryption-key").exists()


@pytest.mark.slow
def test_server_refuses_to_start_in_production_with_sqlite(tmp_path: Path) -> None:
    server = IssuerServer(
        {
            "ISSUER_ENV": "production",
            "ISSUER_URL": "https://issuer.example.com",
            "ISSUER_DATABASE_URL": f"sqlite:///{tmp_path}/issuer.sqlite3",
            "ISSUER_KEY_ENCRYPTION_KEYS": new_kek(),
        },
        startup_timeout=20,
    )
    try:
        with pytest.raises(ServerFailed) as info:
            server.start()
        assert "ISSUER_DATABASE_URL" in str(info.value)
    finally:
        server.close()


async def test_production_configuration_serves(make_settings: Callable[..., Settings], pg_database: str) -> None:
    await _truncate_postgres(pg_database)
    settings = make_settings(
        env="production", url="https://issuer.example.com", database_url=pg_database, key_encryption_keys=TEST_KEK
    )
    async with running_app(settings) as http:
        ready = await http.get("/readyz")
        assert ready.status_code == 200, ready.text
        cid, secret = await make_client(http)
        assert secret is not None
        token = await http.post("/oauth2/token", data={"grant_type": "client_credentials"}, auth=(cid, secret))
        assert token.status_code == 200
        assert token.headers["strict-transport-security"].startswith("max-age=")

