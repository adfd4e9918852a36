"""Shared fixtures: real SQLite and PostgreSQL backends, real Redis, the app over ASGI.

PostgreSQL and Redis come from ISSUER_TEST_DATABASE_URL / ISSUER_TEST_REDIS_URL (default: the
local standard ports). Unreachable services skip with the reason, except under CI=true.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from asgi_lifespan import LifespanManager

from issuer.app import create_app
from issuer.operations import Actor
from issuer.services import open_services
from issuer.settings import Settings
from issuer.storage import open_database
from issuer.storage.migrate import migrate
from keys.envelope import new_kek
from tests.servers import REPO_ROOT, child_env

# The actor of changes a test makes through issuer.operations to set the scene.
OPERATOR = Actor("cli", "tests@suite")

PG_ADMIN_URL = os.environ.get("ISSUER_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("ISSUER_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
IN_CI = os.environ.get("CI", "").lower() == "true"
TEST_KEK = new_kek()
# Small argon2 parameters and quick-to-generate EC keys keep each app start cheap; a low bcrypt
# ceiling keeps the padding of failed logins (the slowest accepted verification) short, and
# refused registrations are answered without the anti-flood pause.
FAST = {
    "argon2_time_cost": 1,
    "argon2_memory_kib": 7168,
    "signing_alg": "ES256",
    "bcrypt_max_cost": 4,
    "register_refusal_pause": 0,
}


def unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: required services must be up)")
    pytest.skip(reason)


class FakeClock:
    """A controllable clock; tests move time instead of sleeping."""

    def __init__(self, start: float | None = None) -> None:
        self.now = time.time() if start is None else start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def _with_db(admin_url: str, name: str) -> str:
    base, _, _ = admin_url.rpartition("/")
    return f"{base}/{name}"


def sqlite_file_url(directory: Path) -> str:
    return f"sqlite:///{directory / 'issuer.sqlite3'}"


def pg_admin(sql: str) -> None:
    """Run one statement as the PostgreSQL administrator (``ISSUER_TEST_DATABASE_URL``)."""

    async def run() -> None:
        conn = await asyncpg.connect(PG_ADMIN_URL, timeout=5)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run())


@contextmanager
def throwaway_pg_database(prefix: str) -> Iterator[str]:
    """A freshly created, empty PostgreSQL database named ``<prefix>_<random>``; yields its URL
    and drops it afterwards (``WITH (FORCE)``: whatever still holds a connection is cut off).
    Skips, or fails under CI=true, when PostgreSQL is unreachable. Not for use inside a running
    event loop."""
    name = f"{prefix}_{secrets.token_hex(6)}"
    try:
        pg_admin(f'CREATE DATABASE "{name}"')
    except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
        unavailable(f"PostgreSQL unreachable at {PG_ADMIN_URL}: {exc}")
    try:
        yield _with_db(PG_ADMIN_URL, name)
    finally:
        pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """One throwaway PostgreSQL database for the session; dropped at the end."""
    with throwaway_pg_database("issuer_test") as url:

        async def migrate_once() -> None:
            db = await open_database(url)
            try:
                await migrate(db)
            finally:
                await db.close()

        asyncio.run(migrate_once())
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def own_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database of the test's own, once per backend: a new SQLite file, or a PostgreSQL database
    created for the test and dropped after it. Not migrated: for tests whose processes (servers,
    the CLI) set it up and write to it themselves."""
    if request.param == "sqlite":
        yield sqlite_file_url(tmp_path)
        return
    with throwaway_pg_database("issuer_own") as url:
        yield url


def cli_env(database_url: str, data_dir: Path) -> dict[str, str]:
    """The environment of a CLI child process on ``database_url``, with the FAST settings."""
    return {
        "ISSUER_DATABASE_URL": database_url,
        "ISSUER_DATA_DIR": str(data_dir),
        "ISSUER_KEY_ENCRYPTION_KEYS": TEST_KEK,
        "ISSUER_ARGON2_TIME_COST": "1",
        "ISSUER_ARGON2_MEMORY_KIB": "7168",
        "ISSUER_SIGNING_ALG": "ES256",
    }


def run_cli(env: Mapping[str, str], *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m issuer.cli *args`` in a child process, from the repository root, configured by
    ``env`` alone (see ``tests.servers.child_env``)."""
    return subprocess.run(
        [sys.executable, "-m", "issuer.cli", *args],
        input=stdin,
        env=child_env(env),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


_TABLES = (
    "authorization_codes",
    "consents",
    "browser_sessions",
    "audit_log",
    "revoked_tokens",
    "refresh_tokens",
    "refresh_families",
    "users",
    "signing_keys",
    "clients",
    "server_secrets",
)


async def _truncate_postgres(url: str) -> None:
    """Empty every table but schema_migrations and restart the sequences (audit_log ids start at 1
    again). DELETE rather than TRUNCATE: on these few rows it takes milliseconds, where TRUNCATE
    gives each of the eleven tables new files (a few hundred milliseconds under I/O contention),
    and this runs before every PostgreSQL test. Children first (refresh_tokens references
    refresh_families)."""
    conn = await asyncpg.connect(url)
    try:
        exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
        if exists:
            async with conn.transaction():
                for table in _TABLES:
                    await conn.execute(f"DELETE FROM {table}")
                for sequence in await conn.fetch("SELECT sequencename FROM pg_sequences WHERE schemaname = 'public'"):
                    await conn.execute(f'ALTER SEQUENCE "{sequence["sequencename"]}" RESTART')
    finally:
        await conn.close()


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each test using this runs once per backend, on an empty schema."""
    if request.param == "sqlite":
        return sqlite_file_url(tmp_path)
    url: str = request.getfixturevalue("pg_database")
    asyncio.run(_truncate_postgres(url))
    return url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return sqlite_file_url(tmp_path)


@pytest.fixture
def redis_url() -> str:
    import redis

    try:
        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
        client.ping()
        client.close()
    except redis.RedisError as exc:
        unavailable(f"Redis unreachable at {REDIS_URL}: {exc}")
    return REDIS_URL


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "data_dir": tmp_path / "data",
            "key_encryption_keys": TEST_KEK,
            "redis_prefix": f"issuer-test-{secrets.token_hex(4)}:",
            # No development docs client: tests count clients and audit entries (tests/test_docs_client.py)
            "docs_client_id": "",
        }
        values.update(overrides)
        return Settings(_env_file=None, **values)

    return make


@asynccontextmanager
async def running_app(settings: Settings, clock: Callable[[], float] = time.time) -> AsyncIterator[httpx.AsyncClient]:
    """The real app with its lifespan, reached over ASGI by an httpx client."""
    app = create_app(settings, clock=clock)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url=settings.url) as client:
            client.app_state = manager._state  # type: ignore[attr-defined]
            yield client


@pytest.fixture
async def client(
    database_url: str, make_settings: Callable[..., Settings], clock: FakeClock
) -> AsyncIterator[httpx.AsyncClient]:
    """The app on each backend."""
    settings = make_settings(database_url=database_url)
    async with running_app(settings, clock) as http:
        yield http


@pytest.fixture
def start(database_url: str, make_settings: Callable[..., Settings], clock: FakeClock) -> Callable[..., Any]:
    """``start(**overrides)``: the app on each backend with the FAST settings and ``overrides``
    (an async context manager, like ``running_app``)."""

    def start(**overrides: Any) -> Any:
        return running_app(make_settings(database_url=database_url, **{**FAST, **overrides}), clock)

    return start


@pytest.fixture
async def http(start: Callable[..., Any]) -> AsyncIterator[httpx.AsyncClient]:
    """The app on each backend with the FAST settings."""
    async with start() as app:
        yield app


@pytest.fixture
async def sqlite_http(
    sqlite_url: str, make_settings: Callable[..., Settings], clock: FakeClock
) -> AsyncIterator[httpx.AsyncClient]:
    """The app on SQLite only, with the FAST settings: for tests of what storage does not decide
    (the resource-server verifier)."""
    async with running_app(make_settings(database_url=sqlite_url, **FAST), clock) as app:
        yield app


def services_of(http: httpx.AsyncClient) -> Any:
    return http.app_state["services"]  # type: ignore[attr-defined]


async def make_client(http: httpx.AsyncClient, **kwargs: Any) -> tuple[str, str | None]:
    """Register an OAuth client through the operations, as the CLI does; returns (id, secret). Keyword
    arguments: name, grant_types, scopes, audiences, and those of ClientOps.create (public,
    redirect_uris, post_logout_redirect_uris, first_party)."""
    defaults: dict[str, Any] = {
        "name": "test-client",
        "grant_types": ("client_credentials",),
        "scopes": ("read", "write"),
        "audiences": ("https://api.example.com",),
    }
    defaults.update(kwargs)
    created, secret = await services_of(http).ops.clients.create(
        OPERATOR,
        defaults.pop("name"), tuple(defaults.pop("grant_types")), tuple(defaults.pop("scopes")),
        tuple(defaults.pop("audiences")), **defaults,
    )
    return created.client_id, secret


async def load_and_operator_clients(
    database_url: str, kek: str, audience: str, scopes: tuple[str, ...] = ("read",)
) -> tuple[tuple[str, str], tuple[str, str]]:
    """Register, straight in the database, a client_credentials client "load" (``scopes``, for
    ``audience``) and an "operator" client with the issuer:admin scope; returns their (id, secret)."""
    settings = Settings(_env_file=None, database_url=database_url, key_encryption_keys=kek)
    services = await open_services(settings)
    try:
        load, load_secret = await services.ops.clients.create(
            OPERATOR, "load", ("client_credentials",), scopes, (audience,)
        )
        admin, admin_secret = await services.ops.clients.create(
            OPERATOR, "operator", ("client_credentials",), ("issuer:admin",), ()
        )
    finally:
        await services.close()
    assert load_secret is not None and admin_secret is not None
    return (load.client_id, load_secret), (admin.client_id, admin_secret)


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """A problem details document (application/problem+json) with the given status; returns its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    return body
