"""Browser sessions through the account API (the user's own), the admin API and the CLI: listed,
ended one by one or all at once, audited, and ending one revokes the refresh tokens it started."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from issuer.settings import Settings
from tests.authorize_helpers import authorize, context, exchange, user, web_client
from tests.conftest import OPERATOR, FakeClock, assert_problem, cli_env, make_client, run_cli, running_app, services_of
from tests.users_helpers import first_party, login, refresh


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def account_token(http: httpx.AsyncClient, username: str) -> str:
    app = await first_party(http, name=f"app-{username}")
    body = await login(http, app, username, resource=services_of(http).settings.url)
    token: str = body["access_token"]
    return token


async def admin_headers(http: httpx.AsyncClient) -> dict[str, str]:
    client_id, secret = await make_client(http, name="operator", scopes=("issuer:admin",))
    assert secret is not None
    response = await http.post("/oauth2/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret))
    return bearer(response.json()["access_token"])


async def audit_actions(http: httpx.AsyncClient) -> list[tuple[str, str, dict[str, Any]]]:
    entries = await services_of(http).ops.audit.recent(limit=50)
    return [(e.action, e.actor, e.detail) for e in entries if e.action.startswith("sessions.")]


async def test_the_user_lists_and_ends_her_own_sessions(http: httpx.AsyncClient) -> None:
    sessions = context(http).sessions
    alice, bob = await user(http), await user(http, "bob")
    token = await account_token(http, "alice")
    first, c1 = await sessions.start(alice.user_id, "192.0.2.7", "Firefox")
    second, c2 = await sessions.start(alice.user_id, "192.0.2.8", "Chromium")
    theirs, c3 = await sessions.start(bob.user_id, "", "")
    listed = await http.get("/account/sessions", headers=bearer(token))
    assert listed.status_code == 200 and listed.headers["cache-control"] == "no-store"
    items = listed.json()["items"]
    assert {i["session_id"] for i in items} == {first.session_id, second.session_id}
    assert {i["user_agent"] for i in items} == {"Firefox", "Chromium"}
    assert "cookie" not in listed.text and c1 not in listed.text

    ended = await http.delete(f"/account/sessions/{first.session_id}", headers=bearer(token))
    assert ended.status_code == 204
    assert await sessions.resume(c1) is None and await sessions.resume(c2) is not None
    assert_problem(await http.delete(f"/account/sessions/{first.session_id}", headers=bearer(token)), 404)
    assert_problem(await http.delete(f"/account/sessions/{theirs.session_id}", headers=bearer(token)), 404)
    assert await sessions.resume(c3) is not None
    assert (await audit_actions(http))[0] == (
        "sessions.end", f"user:{alice.user_id}", {"session_id": first.session_id, "families": 0}
    )
    assert (await http.get("/account/sessions")).status_code == 401


async def test_ending_a_session_revokes_its_refresh_tokens(http: httpx.AsyncClient) -> None:
    client = await web_client(http)
    flow = await authorize(http, client[0])
    body = (await exchange(http, client, flow)).json()
    token = await account_token(http, "alice")
    assert (await http.delete(f"/account/sessions/{flow.session.session_id}", headers=bearer(token))).status_code == 204
    assert (await refresh(http, client, body["refresh_token"])).json()["error"] == "invalid_grant"
    # Ending them all revokes theirs too; each audit entry counts the families it revoked.
    again = await authorize(http, client[0])
    second = (await exchange(http, client, again)).json()
    assert await services_of(http).ops.sessions.end_all(OPERATOR, again.session.user_id) == [again.session.session_id]
    assert (await refresh(http, client, second["refresh_token"])).json()["error"] == "invalid_grant"
    actions = await audit_actions(http)
    assert [(a[0], a[2]["families"]) for a in actions[:2]] == [("sessions.end_all", 1), ("sessions.end", 1)]


async def test_an_admin_lists_and_ends_a_users_sessions(http: httpx.AsyncClient, clock: FakeClock) -> None:
    sessions = context(http).sessions
    alice = await user(http)
    headers = await admin_headers(http)
    one, c1 = await sessions.start(alice.user_id, "", "")
    clock.advance(1)
    two, c2 = await sessions.start(alice.user_id, "", "")
    base = f"/admin/users/{alice.user_id}/sessions"
    listed = await http.get(base, headers=headers)
    assert listed.status_code == 200
    assert [i["session_id"] for i in listed.json()["items"]] == [two.session_id, one.session_id]
    assert (await http.delete(f"{base}/{one.session_id}", headers=headers)).status_code == 204
    assert await sessions.resume(c1) is None
    assert_problem(await http.delete(f"{base}/{one.session_id}", headers=headers), 404)
    everything = await http.delete(base, headers=headers)
    assert everything.status_code == 200 and everything.json() == {"ended": [two.session_id]}
    assert await sessions.resume(c2) is None
    assert (await http.get(base, headers=headers)).json() == {"items": []}
    for method in ("GET", "DELETE"):
        assert_problem(await http.request(method, "/admin/users/no-such-user/sessions", headers=headers), 404)
    actions = await audit_actions(http)
    assert [a[0] for a in actions[:2]] == ["sessions.end_all", "sessions.end"]
    assert actions[0][1].startswith("client:") and actions[0][2] == {"sessions": 1, "families": 0}


async def test_disabling_a_user_ends_her_sessions_for_good(http: httpx.AsyncClient) -> None:
    sessions = context(http).sessions
    alice = await user(http)
    _, cookie = await sessions.start(alice.user_id, "", "")
    ops = services_of(http).ops.users
    await ops.set_disabled(OPERATOR, alice.user_id, True)
    await ops.set_disabled(OPERATOR, alice.user_id, False)
    assert await sessions.resume(cookie) is None
    assert await sessions.list_for_user(alice.user_id) == []


async def test_the_cli_lists_and_ends_sessions(
    tmp_path: Path, database_url: str, make_settings: Any
) -> None:
    settings: Settings = make_settings(database_url=database_url)
    async with running_app(settings) as http:
        alice = await user(http)
        one, _ = await context(http).sessions.start(alice.user_id, "192.0.2.9", "Safari")
        two, _ = await context(http).sessions.start(alice.user_id, "", "")
    env = cli_env(database_url, tmp_path / "data")
    listed = run_cli(env, "users", "sessions", "alice")
    assert listed.returncode == 0, listed.stderr
    assert one.session_id in listed.stdout and "Safari" in listed.stdout
    ended = run_cli(env, "users", "end-sessions", "alice", "--session", one.session_id)
    assert ended.returncode == 0, ended.stderr
    assert run_cli(env, "users", "end-sessions", "alice", f"--session={one.session_id}").returncode == 4
    assert "ended 1 browser session(s)" in run_cli(env, "users", "end-sessions", "alice").stdout
    assert run_cli(env, "users", "sessions", "alice", "--json").stdout.strip() == "[]"
    async with running_app(settings) as http:
        assert await services_of(http).store.get_session(two.session_id) is not None
        assert [a[1] for a in await audit_actions(http)][0].startswith("cli:")
