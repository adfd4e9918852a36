"""GET/POST /userinfo and the signed-in user's account actions (change password, deactivate),
plus an administrator disabling a user."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from issuer.accounts.users import NewUser
from tests.conftest import OPERATOR, FakeClock, make_client, services_of
from tests.users_helpers import PASSWORD, Client, first_party


@pytest.fixture
async def app_client(http: httpx.AsyncClient) -> Client:
    return await first_party(http)


@pytest.fixture
async def alice(http: httpx.AsyncClient) -> Any:
    return await services_of(http).ops.users.create(
        OPERATOR, NewUser("alice", PASSWORD, "alice@example.com"), ("manager",)
    )


async def login(
    http: httpx.AsyncClient, client: Client, username: str = "alice", password: str = PASSWORD
) -> httpx.Response:
    client_id, secret = client
    # /userinfo and /account accept only tokens meant for the issuer itself (RFC 9068 §4)
    resource = services_of(http).settings.url
    data = {"grant_type": "password", "username": username, "password": password, "resource": resource}
    return await http.post("/oauth2/token", data=data, auth=(client_id, secret or ""))


async def tokens(http: httpx.AsyncClient, client: Client, **kwargs: str) -> dict[str, Any]:
    response = await login(http, client, **kwargs)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def refresh(http: httpx.AsyncClient, client: Client, token: str) -> httpx.Response:
    client_id, secret = client
    data = {"grant_type": "refresh_token", "refresh_token": token}
    return await http.post("/oauth2/token", data=data, auth=(client_id, secret or ""))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_unauthorized(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["error"] == "invalid_token"


# -- userinfo -----------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_userinfo_describes_the_signed_in_user(
    http: httpx.AsyncClient, app_client: Client, alice: Any, method: str
) -> None:
    access = (await tokens(http, app_client))["access_token"]

    response = await http.request(method, "/userinfo", headers=bearer(access))

    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    assert response.json() == {
        "sub": alice.user_id,
        "preferred_username": "alice",
        "email": "alice@example.com",
        "roles": ["manager", "user"],
    }


async def test_userinfo_omits_a_missing_email(http: httpx.AsyncClient, app_client: Client) -> None:
    user = await services_of(http).ops.users.create(OPERATOR, NewUser("nomail", PASSWORD))
    access = (await tokens(http, app_client, username="nomail"))["access_token"]
    body = (await http.get("/userinfo", headers=bearer(access))).json()
    assert body == {"sub": user.user_id, "preferred_username": "nomail", "roles": ["user"]}


async def test_userinfo_without_a_token_is_401_with_a_bearer_challenge(http: httpx.AsyncClient) -> None:
    response = await http.get("/userinfo")
    assert response.status_code == 401
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith("Bearer ")
    assert f'realm="{services_of(http).settings.url}"' in challenge


@pytest.mark.parametrize("token", ["garbage", "a.b.c", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."])
async def test_userinfo_with_an_invalid_token_is_401(http: httpx.AsyncClient, token: str) -> None:
    response = await http.get("/userinfo", headers=bearer(token))
    assert_unauthorized(response)
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


async def test_userinfo_with_an_expired_token_is_401(
    http: httpx.AsyncClient, app_client: Client, alice: Any, clock: FakeClock
) -> None:
    access = (await tokens(http, app_client))["access_token"]
    clock.advance(services_of(http).settings.access_token_ttl + 1)
    assert_unauthorized(await http.get("/userinfo", headers=bearer(access)))


async def test_userinfo_rejects_a_client_credentials_token(http: httpx.AsyncClient) -> None:
    client_id, secret = await make_client(http)
    # meant for the issuer, so it is refused for being a client's own token, not for its audience
    data = {"grant_type": "client_credentials", "resource": services_of(http).settings.url}
    response = await http.post("/oauth2/token", data=data, auth=(client_id, secret or ""))
    assert response.status_code == 200, response.text
    assert_unauthorized(await http.get("/userinfo", headers=bearer(response.json()["access_token"])))


async def test_userinfo_with_another_scheme_is_rejected_with_a_bearer_challenge(http: httpx.AsyncClient) -> None:
    response = await http.get("/userinfo", headers={"Authorization": "Basic YWxpY2U6cGFzc3dvcmQ="})
    assert response.status_code in (400, 401)
    assert response.headers["www-authenticate"].startswith("Bearer")


# -- change password ------------------------------------------------------------------------------


async def change_password(http: httpx.AsyncClient, access: str, current: Any, new: Any) -> httpx.Response:
    return await http.post(
        "/account/password", json={"current_password": current, "new_password": new}, headers=bearer(access)
    )


async def test_changing_the_password_revokes_every_session_and_the_new_password_works(
    http: httpx.AsyncClient, app_client: Client, alice: Any
) -> None:
    mine = await tokens(http, app_client)
    sessions = services_of(http).authorize.sessions
    _, browser_cookie = await sessions.start(alice.user_id, "192.0.2.9", "a browser")
    assert await sessions.resume(browser_cookie) is not None
    other_device = await tokens(http, app_client)
    other_app = await make_client(http, name="other", grant_types=("password", "refresh_token"))
    other_app_tokens = await tokens(http, other_app)

    response = await change_password(http, mine["access_token"], PASSWORD, "brand-new-password")

    assert response.status_code == 204, response.text
    assert await sessions.resume(browser_cookie) is None  # the browser signs in again
    for client, session in ((app_client, mine), (app_client, other_device), (other_app, other_app_tokens)):
        result = await refresh(http, client, session["refresh_token"])
        assert result.status_code == 400 and result.json()["error"] == "invalid_grant", result.text
    assert (await login(http, app_client)).json()["error"] == "invalid_grant"
    fresh = await login(http, app_client, password="brand-new-password")
    assert fresh.status_code == 200, fresh.text
    assert (await refresh(http, app_client, fresh.json()["refresh_token"])).status_code == 200
    stored = await services_of(http).users.store.get_user(alice.user_id)
    assert stored.password_hash.startswith("$argon2id$")


async def test_a_wrong_current_password_is_422_and_changes_nothing(
    http: httpx.AsyncClient, app_client: Client, alice: Any
) -> None:
    session = await tokens(http, app_client)

    response = await change_password(http, session["access_token"], "not-my-password", "brand-new-password")

    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert set(response.json()["errors"]) == {"current_password"}
    assert (await refresh(http, app_client, session["refresh_token"])).status_code == 200
    assert (await login(http, app_client)).status_code == 200
    assert (await login(http, app_client, password="brand-new-password")).status_code == 400


@pytest.mark.parametrize("new", ["short", "x" * 129, None, 12345678])
async def test_an_invalid_new_password_is_422(
    http: httpx.AsyncClient, app_client: Client, alice: Any, new: Any
) -> None:
    session = await tokens(http, app_client)
    response = await change_password(http, session["access_token"], PASSWORD, new)
    assert response.status_code == 422, response.text
    assert set(response.json()["errors"]) == {"new_password"}
    assert (await login(http, app_client)).status_code == 200


async def test_account_actions_need_a_user_bearer_token(http: httpx.AsyncClient, alice: Any) -> None:
    for path, body in (
        ("/account/password", {"current_password": PASSWORD, "new_password": "brand-new-password"}),
        ("/account/deactivate", {"password": PASSWORD}),
    ):
        response = await http.post(path, json=body)
        assert response.status_code == 401, response.text
        assert response.headers["www-authenticate"].startswith("Bearer")
    assert (await services_of(http).users.store.get_user(alice.user_id)).disabled is False


# -- deactivate and disable --------------------------------------------------------------------------


async def test_deactivating_ends_sessions_refuses_login_and_userinfo(
    http: httpx.AsyncClient, app_client: Client, alice: Any
) -> None:
    session = await tokens(http, app_client)
    access = session["access_token"]

    wrong = await http.post("/account/deactivate", json={"password": "not-my-password"}, headers=bearer(access))
    assert wrong.status_code == 422, wrong.text
    assert set(wrong.json()["errors"]) == {"password"}
    assert (await http.get("/userinfo", headers=bearer(access))).status_code == 200

    response = await http.post("/account/deactivate", json={"password": PASSWORD}, headers=bearer(access))

    assert response.status_code == 204, response.text
    assert (await refresh(http, app_client, session["refresh_token"])).json()["error"] == "invalid_grant"
    assert (await login(http, app_client)).json()["error"] == "invalid_grant"
    assert_unauthorized(await http.get("/userinfo", headers=bearer(access)))
    again = await http.post("/account/deactivate", json={"password": PASSWORD}, headers=bearer(access))
    assert again.status_code == 401


async def test_admin_disable_revokes_every_family_at_once(
    http: httpx.AsyncClient, app_client: Client, alice: Any
) -> None:
    sessions = [await tokens(http, app_client) for _ in range(2)]
    services = services_of(http)
    client_id, secret = app_client

    await services.ops.users.set_disabled(OPERATOR, alice.user_id, True)

    for session in sessions:
        found = await services.refresh_tokens.lookup(session["refresh_token"])
        assert found is not None and found[1].revoked_at is not None
        body = (
            await http.post(
                "/oauth2/introspect", data={"token": session["refresh_token"]}, auth=(client_id, secret or "")
            )
        ).json()
        assert body == {"active": False}
        assert (await refresh(http, app_client, session["refresh_token"])).json()["error"] == "invalid_grant"
    assert (await login(http, app_client)).json()["error"] == "invalid_grant"

    await services.ops.users.set_disabled(OPERATOR, alice.user_id, False)
    assert (await refresh(http, app_client, sessions[0]["refresh_token"])).json()["error"] == "invalid_grant"
    assert (await login(http, app_client)).status_code == 200
