"""Retention sweeps (issuer.retention), on both backends through the real app: each deletes
exactly what nothing can need any more and keeps what it must; one instance sweeps at a time;
on PostgreSQL every sweep statement finds its rows through an index."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import asyncpg
import httpx
import pytest

from issuer.accounts.users import NewUser
from issuer.app import retention
from issuer.settings import Settings
from issuer.storage import open_database
from issuer.storage.migrate import migrate
from issuer.storage.sql.audit import PURGE_AUDIT
from issuer.storage.sql.codes import PURGE_CODES
from issuer.storage.sql.refresh import FORGET_SUCCESSORS, PURGE_EXPIRED_FAMILIES, PURGE_REVOKED_FAMILIES
from issuer.storage.sql.revocations import PURGE_REVOKED
from issuer.storage.sql.sessions import PURGE_SESSIONS
from tests.authorize_helpers import authorize, web_client
from tests.conftest import OPERATOR, FakeClock, make_client, running_app, services_of, throwaway_pg_database

TOKEN = "/oauth2/token"
PASSWORD = "a long and secret passphrase"


async def count(http: httpx.AsyncClient, table: str, where: str = "1 = 1", *args: Any) -> int:
    row = await services_of(http).store.db.fetchrow(f"SELECT count(*) AS n FROM {table} WHERE {where}", *args)
    assert row is not None
    return int(row["n"])


async def sweep(http: httpx.AsyncClient) -> dict[str, int]:
    report = await retention(services_of(http)).sweep()
    assert report is not None, "a lone instance always takes the retention lock"
    return report.deleted


async def client_credentials(http: httpx.AsyncClient, client: tuple[str, str | None]) -> str:
    response = await http.post(TOKEN, data={"grant_type": "client_credentials"}, auth=(client[0], client[1] or ""))
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


async def revoke(http: httpx.AsyncClient, client: tuple[str, str | None], token: str) -> None:
    response = await http.post("/oauth2/revoke", data={"token": token}, auth=(client[0], client[1] or ""))
    assert response.status_code == 200, response.text


async def active(http: httpx.AsyncClient, client: tuple[str, str | None], token: str) -> bool:
    response = await http.post("/oauth2/introspect", data={"token": token}, auth=(client[0], client[1] or ""))
    assert response.status_code == 200, response.text
    return bool(response.json()["active"])


async def test_revoked_ids_are_purged_once_their_token_cannot_be_accepted(
    start: Callable[..., Any], clock: FakeClock
) -> None:
    async with start(access_token_ttl=300, clock_skew=60) as http:
        client = await make_client(http, scopes=("read",))
        old = await client_credentials(http, client)
        await revoke(http, client, old)
        # past exp, but within the skew a verifier may allow: kept
        clock.advance(300 + 30)
        assert (await sweep(http))["revoked_tokens"] == 0
        assert await count(http, "revoked_tokens") == 1
        young = await client_credentials(http, client)
        await revoke(http, client, young)
        # past exp + skew + our leeway: nothing could accept the old token any more
        clock.advance(40)
        assert (await sweep(http))["revoked_tokens"] == 1
        assert await count(http, "revoked_tokens") == 1
        assert not await active(http, client, young), "the unexpired revocation must stay"
        assert (await sweep(http))["revoked_tokens"] == 0


async def login(http: httpx.AsyncClient, app: tuple[str, str | None]) -> dict[str, Any]:
    response = await http.post(
        TOKEN, data={"grant_type": "password", "username": "alice", "password": PASSWORD}, auth=(app[0], app[1] or "")
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def refresh(http: httpx.AsyncClient, app: tuple[str, str | None], token: str) -> httpx.Response:
    form = {"grant_type": "refresh_token", "refresh_token": token}
    return await http.post(TOKEN, data=form, auth=(app[0], app[1] or ""))


async def test_families_are_kept_while_they_live_and_purged_when_they_end(
    start: Callable[..., Any], clock: FakeClock
) -> None:
    settings = {"refresh_token_absolute_ttl": 3600, "refresh_reuse_grace": 10, "rate_limit_login_per_user": 0}
    async with start(**settings) as http:
        await services_of(http).ops.users.create(OPERATOR, NewUser("alice", PASSWORD, "alice@example.com"))
        app = await make_client(http, name="app", grant_types=("password", "refresh_token"))

        ending = await login(http, app)  # will pass its absolute lifetime
        clock.advance(3000)
        living = await login(http, app)  # still within it at the end
        reused = await login(http, app)  # consumed, then presented again
        rotated = await refresh(http, app, reused["refresh_token"])
        assert rotated.status_code == 200
        assert await count(http, "refresh_tokens", "successor_ciphertext IS NOT NULL") == 1

        # Within the grace: the sealed successor stays (a retried refresh gets it back).
        assert (await sweep(http))["sealed_successors"] == 0
        clock.advance(11)
        deleted = await sweep(http)
        assert deleted["sealed_successors"] == 1
        assert deleted["expired_families"] == deleted["revoked_families"] == 0
        assert await count(http, "refresh_tokens", "successor_ciphertext IS NOT NULL") == 0
        # The consumed token is kept while its family lives, so its reuse is still recognised...
        assert await count(http, "refresh_tokens", "consumed_at IS NOT NULL") == 1
        again = await refresh(http, app, reused["refresh_token"])
        assert again.status_code == 400 and again.json()["error_description"] == "refresh token was already used"
        # ...and the family is revoked for it, successor included.
        assert (await refresh(http, app, rotated.json()["refresh_token"])).json()["error"] == "invalid_grant"

        # A revoked family stays through the grace, then goes with its tokens.
        assert (await sweep(http))["revoked_families"] == 0
        clock.advance(11)
        assert (await sweep(http))["revoked_families"] == 1
        # The first family has passed its absolute lifetime (3600 s): it goes, with its token.
        clock.advance(600)
        assert (await sweep(http))["expired_families"] == 1

        assert await count(http, "refresh_families") == 1
        assert await count(http, "refresh_tokens") == 1
        assert (await refresh(http, app, ending["refresh_token"])).json()["error"] == "invalid_grant"
        kept = await refresh(http, app, living["refresh_token"])
        assert kept.status_code == 200, "a live family must survive every sweep"
        assert (await sweep(http)) == {
            "revoked_tokens": 0, "sealed_successors": 0, "expired_families": 0, "revoked_families": 0,
            "browser_sessions": 0, "authorization_codes": 0, "audit_entries": 0,
        }


async def test_sessions_and_codes_are_purged_after_they_end(http: httpx.AsyncClient, clock: FakeClock) -> None:
    client_id, _ = await web_client(http)
    flow = await authorize(http, client_id)
    settings = services_of(http).settings
    clock.advance(86400 + 61)
    deleted = await sweep(http)
    assert deleted["authorization_codes"] == 1 and deleted["browser_sessions"] == 0
    assert await count(http, "browser_sessions") == 1
    clock.advance(settings.session_absolute_ttl)
    assert (await sweep(http))["browser_sessions"] == 1
    assert await services_of(http).store.get_session(flow.session.session_id) is None


async def admin_action(http: httpx.AsyncClient, token: str, name: str) -> None:
    body = {"name": name, "grant_types": ["client_credentials"], "scopes": ["read"], "audiences": []}
    response = await http.post("/admin/clients", json=body, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 201, response.text


@pytest.mark.parametrize("days", [1, 0])
async def test_audit_entries_are_kept_for_the_retention_days(
    start: Callable[..., Any], clock: FakeClock, days: int
) -> None:
    async with start(audit_retention_days=days, access_token_ttl=86400) as http:
        operator = await make_client(http, name="operator", scopes=("issuer:admin",))
        token = await client_credentials(http, operator)
        setup = await count(http, "audit_log")  # the first key and the operator client, also old
        await admin_action(http, token, "old")
        clock.advance(86400 - 60)
        await admin_action(http, token, "young")
        assert await count(http, "audit_log") == setup + 2
        clock.advance(120)  # "old" is now a day and a minute old, "young" a minute
        deleted = await sweep(http)
        if days:
            assert deleted["audit_entries"] == setup + 1
            left = await services_of(http).store.db.fetch("SELECT detail FROM audit_log")
            assert ["young" in json.dumps(dict(r)) for r in left] == [True]
        else:
            assert "audit_entries" not in deleted  # 0 keeps forever: not even looked at
            assert await count(http, "audit_log") == setup + 2


async def test_sweeps_work_off_a_backlog_in_bounded_batches(start: Callable[..., Any], clock: FakeClock) -> None:
    async with start() as http:
        services = services_of(http)
        for i in range(25):
            await services.store.revoke_jti(f"jti-{i}", clock() - 3600, clock() - 7200)
        sweeper = retention(services)
        object.__setattr__(sweeper, "_policy", type(sweeper._policy)(0, 10, 60, batch=10, max_batches=2))
        report = await sweeper.sweep()
        assert report is not None and report.deleted["revoked_tokens"] == 20  # two batches of ten, then stop
        report = await sweeper.sweep()
        assert report is not None and report.deleted["revoked_tokens"] == 5
        assert await count(http, "revoked_tokens") == 0


async def test_one_instance_sweeps_at_a_time(
    database_url: str, make_settings: Callable[..., Settings], clock: FakeClock
) -> None:
    """While one instance holds the retention lock (a PostgreSQL advisory lock; on SQLite a lock
    file beside the database), the other's sweep does nothing; once released, it sweeps."""
    async with running_app(make_settings(database_url=database_url), clock) as a:
        async with running_app(make_settings(database_url=database_url), clock) as b:
            sa, sb = services_of(a), services_of(b)
            await sa.store.revoke_jti("expired", clock() - 3600, clock() - 7200)
            async with sa.store.db.advisory_lock("issuer-retention") as holder:
                assert holder
                assert await retention(sb).sweep() is None
                assert await count(b, "revoked_tokens") == 1
            report = await retention(sb).sweep()
            assert report is not None and report.deleted["revoked_tokens"] == 1


# -- query plans on PostgreSQL ---------------------------------------------------------------

ROWS = 20000


@pytest.fixture(scope="module")
def big_pg_database() -> Iterator[str]:
    """A migrated PostgreSQL database with ROWS live rows in each swept table and a handful of
    sweepable ones, ANALYZEd: big enough that the planner prefers a sequential scan wherever no
    index serves (sequential scans stay enabled, so its choice is meaningful)."""
    import asyncio

    with throwaway_pg_database("issuer_retention") as url:

        async def fill() -> None:
            db = await open_database(url)
            try:
                await migrate(db)
            finally:
                await db.close()
            conn = await asyncpg.connect(url)
            try:
                await conn.execute(f"""
                    INSERT INTO revoked_tokens (jti, expires_at, revoked_at)
                        SELECT 'j' || i, 2e9 + i, 1e9 FROM generate_series(1, {ROWS}) i;
                    INSERT INTO revoked_tokens (jti, expires_at, revoked_at)
                        SELECT 'old' || i, 1e9, 1e9 FROM generate_series(1, 10) i;
                    INSERT INTO refresh_families (family_id, client_id, user_id, created_at, expires_at, revoked_at)
                        SELECT 'f' || i, 'c', 'u' || i, 1e9, 2e9 + i, CASE WHEN i <= 10 THEN 1e9 END
                        FROM generate_series(1, {ROWS}) i;
                    INSERT INTO refresh_families (family_id, client_id, user_id, created_at, expires_at)
                        SELECT 'ended' || i, 'c', 'u', 1e9, 1e9 FROM generate_series(1, 10) i;
                    INSERT INTO refresh_tokens
                        (token_hash, family_id, generation, scope, audience, issued_at, expires_at, consumed_at,
                         successor_ciphertext)
                        SELECT sha256(('t' || i || '-' || g)::bytea), 'f' || i, g, '', '', 1e9, 2e9, 1e9 + g,
                               CASE WHEN g = 1 AND i <= 10 THEN '\\x00'::bytea END
                        FROM generate_series(1, {ROWS // 4}) i, generate_series(1, 4) g
                        WHERE true;
                    INSERT INTO audit_log (at, actor, action, target, detail, remote_addr)
                        SELECT 2e9 + i, 'a', 'x', 't', '{{}}', '' FROM generate_series(1, {ROWS}) i;
                    INSERT INTO audit_log (at, actor, action, target, detail, remote_addr)
                        SELECT 1e9, 'a', 'x', 't', '{{}}', '' FROM generate_series(1, 10) i;
                    INSERT INTO browser_sessions
                        (session_id, cookie_hash, user_id, auth_time, created_at, last_seen_at, expires_at)
                        SELECT 's' || i, sha256(('s' || i)::bytea), 'u' || i, 1e9, 1e9, 1e9,
                               CASE WHEN i <= 10 THEN 1e9 ELSE 2e9 + i END
                        FROM generate_series(1, {ROWS}) i;
                    INSERT INTO authorization_codes
                        (code_hash, client_id, user_id, session_id, redirect_uri, code_challenge, scope, audience,
                         auth_time, issued_at, expires_at)
                        SELECT sha256(('c' || i)::bytea), 'c', 'u', 's', 'https://a/cb', 'x', '', '', 1e9, 1e9,
                               CASE WHEN i <= 10 THEN 1e9 ELSE 2e9 + i END
                        FROM generate_series(1, {ROWS}) i;
                    ANALYZE;
                """)
            finally:
                await conn.close()

        asyncio.run(fill())
        yield url


def scans(plan: dict[str, Any]) -> Iterator[tuple[str, str]]:
    if "Relation Name" in plan:
        yield plan["Node Type"], plan["Relation Name"]
    for child in plan.get("Plans", []):
        yield from scans(child)


SWEEPS = (
    [
        ("revoked ids", PURGE_REVOKED, "revoked_tokens"),
        ("sealed successors", FORGET_SUCCESSORS, "refresh_tokens"),
        ("expired families", PURGE_EXPIRED_FAMILIES, "refresh_families"),
        ("revoked families", PURGE_REVOKED_FAMILIES, "refresh_families"),
        ("audit entries", PURGE_AUDIT, "audit_log"),
        ("browser sessions", PURGE_SESSIONS, "browser_sessions"),
        ("authorization codes", PURGE_CODES, "authorization_codes"),
    ]
)


@pytest.mark.parametrize(("name", "sql", "table"), SWEEPS)
async def test_each_sweep_statement_uses_an_index_on_postgres(
    big_pg_database: str, name: str, sql: dict[str, str], table: str
) -> None:
    conn = await asyncpg.connect(big_pg_database)
    try:
        explained = await conn.fetchval("EXPLAIN (FORMAT JSON) " + sql["postgres"], 1.5e9, 1000)
    finally:
        await conn.close()
    plan = (json.loads(explained) if isinstance(explained, str) else explained)[0]["Plan"]
    found = list(scans(plan))
    assert any(rel == table for _, rel in found), found
    assert not any(node == "Seq Scan" for node, _ in found), f"{name}: {json.dumps(plan, indent=1)}"


@pytest.mark.parametrize(("name", "sql", "table"), SWEEPS)
async def test_each_sweep_statement_searches_an_index_on_sqlite(
    sqlite_url: str, name: str, sql: dict[str, str], table: str
) -> None:
    """SQLite's plan names a full scan ``SCAN <table>`` and an index lookup ``SEARCH <table> USING …``."""
    db = await open_database(sqlite_url)
    try:
        await migrate(db)
        rows = await db.fetch("EXPLAIN QUERY PLAN " + sql["sqlite"], 1.5e9, 1000)
    finally:
        await db.close()
    details = [str(r["detail"]) for r in rows]
    assert any(d.startswith(f"SEARCH {table}") for d in details), details
    assert not any(d.startswith("SCAN") for d in details), f"{name}: {details}"
