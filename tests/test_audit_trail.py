"""Every change lands in the audit log with the right actor, whichever door it came through:
the CLI (``cli:<os user>@<host>``), the scheduler (``scheduler``), the admin API
(``client:<id>``/``user:<id>`` + remote address, see test_admin_api), and the events around
them: refresh-token reuse, registration, self-deactivation and refused admin calls."""

from __future__ import annotations

import getpass
import json
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from issuer.settings import Settings
from tests.conftest import FAST, OPERATOR, FakeClock, cli_env, make_client, run_cli, running_app, services_of
from tests.servers import REPO_ROOT, child_env
from tests.users_helpers import PASSWORD, first_party, login, refresh

CLI_ACTOR = f"cli:{getpass.getuser()}@{socket.gethostname()}"


class Cli:
    def __init__(self, database_url: str, data_dir: Path) -> None:
        self.env = cli_env(database_url, data_dir)

    def ok(self, *args: str, stdin: str | None = None) -> str:
        result = run_cli(self.env, *args, stdin=stdin)
        assert result.returncode == 0, (args, result.returncode, result.stdout, result.stderr)
        return result.stdout


async def admin_token(http: httpx.AsyncClient) -> dict[str, str]:
    client_id, secret = await make_client(http, name="auditor", scopes=("issuer:admin",), audiences=())
    data = {"grant_type": "client_credentials", "scope": "issuer:admin"}
    response = await http.post("/oauth2/token", data=data, auth=(client_id, secret or ""))
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def audit(http: httpx.AsyncClient, headers: dict[str, str]) -> list[dict[str, Any]]:
    response = await http.get("/admin/audit", params={"limit": "500"}, headers=headers)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = list(reversed(response.json()["items"]))  # oldest first
    return items


async def test_every_cli_mutation_is_audited_with_the_os_user_and_host(
    database_url: str, tmp_path: Path, make_settings: Callable[..., Settings], clock: FakeClock
) -> None:
    cli = Cli(database_url, tmp_path / "data")
    expected: list[tuple[str, str]] = []

    # ids may start with "-": "--" ends the options
    cid = json.loads(cli.ok("clients", "create", "--name", "svc", "--grant-type", "client_credentials", "--json"))[
        "client_id"
    ]
    expected.append(("clients.create", cid))
    assert json.loads(cli.ok("clients", "get", "--json", "--", cid))["name"] == "svc"  # a read: no entry
    out = cli.ok("clients", "update", "--name", "svc2", "--scope", "read", "--scope", "write", "--", cid)
    assert "name: svc -> svc2" in out and "scopes:  -> read write" in out
    expected.append(("clients.update", cid))
    assert f"client {cid} disabled" in cli.ok("clients", "disable", "--", cid)
    expected.append(("clients.update", cid))
    assert f"client {cid} enabled" in cli.ok("clients", "enable", "--", cid)
    expected.append(("clients.update", cid))
    rotated = json.loads(cli.ok("clients", "rotate-secret", "--json", "--", cid))
    assert rotated["client_id"] == cid and len(rotated["client_secret"]) >= 43
    expected.append(("clients.rotate_secret", cid))
    assert f"client {cid} deleted" in cli.ok("clients", "delete", "--", cid)
    expected.append(("clients.delete", cid))

    uid = cli.ok("users", "create", "--username", "alice", "--password-stdin", stdin=PASSWORD + "\n").split()[-1]
    expected.append(("users.create", uid))
    assert "alice: user -> admin" in cli.ok("users", "set-role", "alice", "admin").replace("roles of ", "")
    expected.append(("users.set_roles", uid))
    shown = json.loads(cli.ok("users", "show", "alice", "--json"))
    assert shown["user_id"] == uid and shown["roles"] == ["admin"]
    assert "revoked 0 session(s) of alice" in cli.ok("users", "revoke-sessions", "alice")
    expected.append(("users.revoke_sessions", uid))
    assert "disabled" in cli.ok("users", "disable", "alice")
    expected.append(("users.disable", uid))
    assert "enabled" in cli.ok("users", "enable", "alice")
    expected.append(("users.enable", uid))
    (tmp_path / "users.csv").write_text("username,email,password_hash,roles\nbob,,not-a-hash,user\n")
    run_cli(cli.env, "users", "import", str(tmp_path / "users.csv"))  # exit 1: one invalid row
    expected.append(("users.import", "users.csv"))

    keys = json.loads(cli.ok("keys", "list", "--json"))
    pending = next(k["kid"] for k in keys if k["state"] == "pending")
    active = next(k["kid"] for k in keys if k["state"] == "active")
    # the first command on the empty database created the first two keys
    expected.insert(0, ("keys.initial", ",".join(k["kid"] for k in keys)))
    out = cli.ok("keys", "rotate", "--force")
    assert f"{pending}: pending -> active" in out and f"{active}: active -> retired" in out
    expected.append(("keys.rotate", pending))
    assert f"{active}: retired -> revoked" in cli.ok("keys", "revoke", "--", active)  # retired by the rotation above
    expected.append(("keys.revoke", active))
    cli.ok("keys", "rewrap")
    expected.append(("keys.rewrap", ""))

    # `issuer audit tail` shows the same entries, oldest first, one line each
    tail = cli.ok("audit", "tail", "-n", "3").splitlines()
    assert len(tail) == 3
    assert "keys.rotate" in tail[0] and "keys.revoke" in tail[1] and "keys.rewrap" in tail[2]
    assert all(CLI_ACTOR in line for line in tail)
    assert [json.loads(line)["action"] for line in cli.ok("audit", "tail", "-n", "2", "--json").splitlines()] == [
        "keys.revoke",
        "keys.rewrap",
    ]

    async with running_app(make_settings(database_url=database_url, **FAST), clock) as http:
        headers = await admin_token(http)
        items = [e for e in await audit(http, headers) if e["actor"] == CLI_ACTOR]
    initial = items.pop(0)
    assert initial["action"] == "keys.initial" and set(initial["target"].split(",")) == {pending, active}
    assert [(e["action"], e["target"]) for e in items] == expected[1:]
    assert all(e["remote_addr"] == "" for e in items)
    by_action = {e["action"]: e["detail"] for e in items}
    assert by_action["users.import"] == {"imported": 0, "conflicts": 0, "invalid": 1}
    assert by_action["keys.rotate"] == {"force": True}
    assert by_action["users.disable"] == {"families": 0, "browser_sessions": 0}


def test_audit_tail_follow_prints_new_entries(sqlite_url: str, tmp_path: Path) -> None:
    cli = Cli(sqlite_url, tmp_path / "data")
    cli.ok("clients", "create", "--name", "first", "--grant-type", "client_credentials")
    with subprocess.Popen(
        [sys.executable, "-m", "issuer.cli", "audit", "tail", "-n", "1", "--follow", "--interval", "0.2"],
        env=child_env(cli.env),
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as follower:
        try:
            assert follower.stdout is not None
            assert "clients.create" in follower.stdout.readline()
            cid = cli.ok("clients", "create", "--name", "second", "--grant-type", "client_credentials").split()[1]
            line = follower.stdout.readline()
            assert "clients.create" in line and cid in line and CLI_ACTOR in line
        finally:
            follower.terminate()
            follower.wait(timeout=10)


async def test_scheduled_rotation_and_cleanup_are_audited_as_the_scheduler(
    database_url: str, make_settings: Callable[..., Settings], clock: FakeClock
) -> None:
    settings = make_settings(database_url=database_url, key_rotation_interval=3600, jwks_max_age=300, **FAST)
    async with running_app(settings, clock) as http:
        services = services_of(http)
        before = {k["kid"]: k["state"] for k in await services.ops.keys.schedule()}
        clock.advance(3600 + 1)
        assert await services.ops.keys.run_schedule_once() == "rotated"
        first_active = next(kid for kid, state in before.items() if state == "active")
        # once the longest-lived token the retired key signed has expired, it is removed
        clock.advance(settings.access_token_ttl + settings.clock_skew + 1)
        assert await services.ops.keys.run_schedule_once() in ("cleaned", "rotated")
        await services.keyring.refresh()
        items = [e for e in await audit(http, await admin_token(http)) if e["actor"] == "scheduler"]
    actions = [(e["action"], e["target"], e["detail"]) for e in items]
    new_active = next(kid for kid, state in before.items() if state == "pending")
    assert actions[0][0] == "keys.initial"  # the first start on an empty database
    assert actions[1] == ("keys.rotate", new_active, {"scheduled": True})
    assert ("keys.cleanup", first_active, {}) in actions
    assert all(e["remote_addr"] == "" for e in items)


async def test_refresh_token_reuse_is_audited_as_the_presenting_client(
    http: httpx.AsyncClient, clock: FakeClock
) -> None:
    client = await first_party(http)
    session = await login(http, client)
    first = session["refresh_token"]
    assert (await refresh(http, client, first)).status_code == 200
    clock.advance(services_of(http).settings.refresh_reuse_grace + 1)
    assert (await refresh(http, client, first)).json()["error"] == "invalid_grant"
    entries = [e for e in await services_of(http).store.list_audit(limit=50) if e.action == "refresh.reuse_detected"]
    assert len(entries) == 1
    [entry] = entries
    assert entry.actor == f"client:{client[0]}"
    assert entry.detail["generation"] == 0
    user = await services_of(http).ops.users.find("alice")
    assert entry.detail["user_id"] == user.user_id


async def test_registration_and_self_deactivation_are_audited_as_the_user(start: Callable[..., Any]) -> None:
    async with start(open_registration=True) as http:
        created = await http.post("/register", json={"username": "carol", "password": PASSWORD})
        assert created.status_code == 201, created.text
        uid = created.json()["user_id"]
        client = await first_party(http)
        data = {"grant_type": "password", "username": "carol", "password": PASSWORD}
        data["resource"] = services_of(http).settings.url
        token = (await http.post("/oauth2/token", data=data, auth=(client[0], client[1] or ""))).json()
        response = await http.post(
            "/account/deactivate",
            json={"password": PASSWORD},
            headers={"Authorization": f"Bearer {token['access_token']}"},
        )
        assert response.status_code == 204, response.text
        entries = list(reversed(await services_of(http).store.list_audit(limit=50)))
    mine = [(e.actor, e.action, e.target, e.remote_addr) for e in entries if e.target == uid]
    assert mine == [
        (f"user:{uid}", "users.register", uid, "127.0.0.1"),
        (f"user:{uid}", "users.deactivate", uid, "127.0.0.1"),
    ]
    assert [e.detail for e in entries if e.action == "users.deactivate"] == [{"families": 1, "browser_sessions": 0}]


async def test_refused_admin_calls_by_verified_tokens_are_audited_once_a_minute(
    http: httpx.AsyncClient, clock: FakeClock
) -> None:
    services = services_of(http)
    headers = await admin_token(http)
    demoted_id, demoted_secret = await make_client(http, name="demoted", scopes=("issuer:admin",), audiences=())
    data = {"grant_type": "client_credentials", "scope": "issuer:admin"}
    token = (await http.post("/oauth2/token", data=data, auth=(demoted_id, demoted_secret or ""))).json()
    demoted = {"Authorization": f"Bearer {token['access_token']}"}
    assert (await http.get("/admin/clients", headers=demoted)).status_code == 200
    # the operator takes the power away: the token still verifies, but no longer stands
    await services.ops.clients.update(OPERATOR, demoted_id, scopes=("read",))
    for _ in range(3):
        assert (await http.get("/admin/clients", headers=demoted)).status_code == 403
    # garbage and missing tokens are refused without a trace (anyone can send them)
    for bad in ({"Authorization": "Bearer not-a-token"}, {}):
        assert (await http.get("/admin/clients", headers=bad)).status_code == 401
    refused = [e for e in await audit(http, headers) if e["action"] == "admin.refused"]
    assert [(e["actor"], e["target"], e["detail"], e["remote_addr"]) for e in refused] == [
        (f"client:{demoted_id}", "/admin/clients", {"reason": "lacks issuer:admin"}, "127.0.0.1")
    ]
    clock.advance(61)
    assert (await http.get("/admin/users", headers=demoted)).status_code == 403
    refused = [e for e in await audit(http, headers) if e["action"] == "admin.refused"]
    assert len(refused) == 2 and refused[-1]["target"] == "/admin/users"


async def test_a_disabled_admin_client_is_audited_as_refused(http: httpx.AsyncClient) -> None:
    services = services_of(http)
    headers = await admin_token(http)
    cid, secret = await make_client(http, name="gone", scopes=("issuer:admin",), audiences=())
    data = {"grant_type": "client_credentials", "scope": "issuer:admin"}
    token = (await http.post("/oauth2/token", data=data, auth=(cid, secret or ""))).json()["access_token"]
    await services.ops.clients.set_disabled(OPERATOR, cid, True)
    assert (await http.get("/admin/keys", headers={"Authorization": f"Bearer {token}"})).status_code == 401
    refused = [e for e in await audit(http, headers) if e["action"] == "admin.refused"]
    assert [(e["actor"], e["detail"]) for e in refused] == [(f"client:{cid}", {"reason": "inactive client"})]
