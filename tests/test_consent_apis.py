"""What a user allowed each client, through the account API (her own), the admin API and the CLI:
listed, withdrawn (audited), and a withdrawal revokes that client's refresh tokens for her and
makes the next sign-in ask again."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from issuer.operations import Actor
from issuer.settings import Settings
from tests.authorize_helpers import authorize, exchange, user, web_client
from tests.conftest import assert_problem, cli_env, run_cli, running_app, services_of
from tests.test_session_apis import account_token, admin_headers, bearer
from tests.users_helpers import refresh


async def test_the_user_lists_and_withdraws_what_she_allowed(http: httpx.AsyncClient) -> None:
    services = services_of(http)
    alice, bob = await user(http), await user(http, "bob")
    photos = await web_client(http, name="Photos")
    other = await web_client(http, name="Calendar")
    bobs_only = await web_client(http, name="Bob's app")
    await services.ops.consents.grant(Actor.user(bob.user_id), bob.user_id, bobs_only[0], ("read",))
    tokens = {}  # authorize() allows what it asks, as the consent page would
    for name, client in (("photos", photos), ("other", other)):
        body = (await exchange(http, client, await authorize(http, client[0], scope="openid read"))).json()
        tokens[name] = body["refresh_token"]
    bobs = (await exchange(http, photos, await authorize(http, photos[0], username="bob", scope="openid"))).json()
    token = await account_token(http, "alice")

    listed = await http.get("/account/consents", headers=bearer(token))
    assert listed.status_code == 200 and listed.headers["cache-control"] == "no-store"
    items = {i["client_id"]: i for i in listed.json()["items"]}
    assert items[photos[0]]["client_name"] == "Photos" and items[photos[0]]["scopes"] == ["openid", "read"]
    assert items[other[0]]["scopes"] == ["openid", "read"] and len(items) == 2

    withdrawn = await http.delete(f"/account/consents/{photos[0]}", headers=bearer(token))
    assert withdrawn.status_code == 204, withdrawn.text
    assert [i["client_id"] for i in (await http.get("/account/consents", headers=bearer(token))).json()["items"]] == [
        other[0]
    ]
    # That client's refresh token for her is revoked; her other client's and Bob's are not.
    assert (await refresh(http, photos, tokens["photos"])).json()["error"] == "invalid_grant"
    assert (await refresh(http, other, tokens["other"])).status_code == 200
    assert (await refresh(http, photos, bobs["refresh_token"])).status_code == 200
    client = await services.clients.get(photos[0])
    assert client is not None and await services.authorize.consents.needs_consent(alice.user_id, client, ("openid",))
    entries = [e for e in await services.ops.audit.recent(limit=20) if e.action == "consents.withdraw"]
    assert [(e.actor, e.target, e.detail) for e in entries] == [
        (f"user:{alice.user_id}", alice.user_id, {"client_id": photos[0], "families": 1})
    ]

    # A code issued before the withdrawal is worth nothing after it.
    pending = await authorize(http, photos[0], scope="openid read")
    await services.ops.consents.withdraw(Actor.user(alice.user_id), alice.user_id, photos[0])
    refused = await exchange(http, photos, pending)
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant", refused.text
    assert "withdrawn consent" in refused.json()["error_description"]
    # A client only Bob allowed: nothing to withdraw for her (404), and Bob's consent stays.
    assert_problem(await http.delete(f"/account/consents/{bobs_only[0]}", headers=bearer(token)), 404)
    assert {g.client_id for g in await services.ops.consents.list_for_user(bob.user_id)} == {photos[0], bobs_only[0]}
    again = await http.delete(f"/account/consents/{photos[0]}", headers=bearer(token))
    assert_problem(again, 404)
    assert_problem(await http.delete("/account/consents/" + "x" * 300, headers=bearer(token)), 404)
    assert (await http.get("/account/consents")).status_code == 401


async def test_an_administrator_lists_and_withdraws_a_users_consent(http: httpx.AsyncClient) -> None:
    services = services_of(http)
    alice = await user(http)
    photos = await web_client(http, name="Photos")
    await services.ops.consents.grant(Actor.user(alice.user_id), alice.user_id, photos[0], ("openid", "read"))
    body = (await exchange(http, photos, await authorize(http, photos[0], scope="openid read"))).json()
    admin = await admin_headers(http)
    listed = await http.get(f"/admin/users/{alice.user_id}/consents", headers=admin)
    assert listed.status_code == 200
    assert [(i["client_id"], i["client_name"], i["scopes"]) for i in listed.json()["items"]] == [
        (photos[0], "Photos", ["openid", "read"])
    ]
    assert_problem(await http.get("/admin/users/nobody/consents", headers=admin), 404)
    assert (await http.delete(f"/admin/users/{alice.user_id}/consents/{photos[0]}", headers=admin)).status_code == 204
    assert_problem(await http.delete(f"/admin/users/{alice.user_id}/consents/{photos[0]}", headers=admin), 404)
    assert (await refresh(http, photos, body["refresh_token"])).json()["error"] == "invalid_grant"
    entry = next(e for e in await services.ops.audit.recent(limit=10) if e.action == "consents.withdraw")
    assert entry.actor.startswith("client:") and entry.target == alice.user_id
    assert (await http.get(f"/admin/users/{alice.user_id}/consents", headers=bearer("x"))).status_code == 401


async def test_the_cli_lists_and_withdraws_consents(tmp_path: Path, database_url: str, make_settings: Any) -> None:
    settings: Settings = make_settings(database_url=database_url)
    async with running_app(settings) as http:
        alice = await user(http)
        photos = await web_client(http, name="Photos")
        await services_of(http).ops.consents.grant(Actor.user(alice.user_id), alice.user_id, photos[0], ("read",))
    env = cli_env(database_url, tmp_path / "data")
    listed = run_cli(env, "users", "consents", "alice")
    assert listed.returncode == 0, listed.stderr
    assert photos[0] in listed.stdout and "Photos" in listed.stdout and "read" in listed.stdout
    withdrawn = run_cli(env, "users", "withdraw-consent", "alice", photos[0])
    assert withdrawn.returncode == 0, withdrawn.stderr
    assert "revoked 0 refresh token families" in withdrawn.stdout
    again = run_cli(env, "users", "withdraw-consent", "alice", photos[0])
    assert again.returncode == 4 and "allowed client" in again.stderr
    assert run_cli(env, "users", "consents", "alice", "--json").stdout.strip() == "[]"
    async with running_app(settings) as http:
        entries = await services_of(http).ops.audit.recent(limit=5)
        assert entries[0].action == "consents.withdraw" and entries[0].actor.startswith("cli:")
