"""Bad input never answers 500, on both backends: each input here answered 500 once (issue 7 §3).

Every case goes through the real app over ASGI and expects a 4xx in the endpoint's format.
"""

from __future__ import annotations

import base64

import httpx
import pytest

from tests.conftest import assert_problem, make_client
from tests.test_admin_api import client_token

NESTED = ("[" * 5000 + "]" * 5000).encode()
NESTED_OBJECT = ('{"name": ' + "[" * 5000 + "]" * 5000 + "}").encode()


async def admin_headers(http: httpx.AsyncClient) -> dict[str, str]:
    client_id, secret = await make_client(http, name="operator", scopes=("issuer:admin",))
    assert secret is not None
    return {"Authorization": f"Bearer {await client_token(http, client_id, secret)}"}


@pytest.mark.parametrize("path", ["/admin/clients", "/admin/users", "/admin/audit"])
@pytest.mark.parametrize("limit", ["%C2%B2", "%D9%A3", "1000000000000000000000", "-1", "+5", " 5", "0", "501"])
async def test_a_limit_that_is_not_ascii_digits_1_to_500_is_400(http: httpx.AsyncClient, path: str, limit: str) -> None:
    headers = await admin_headers(http)
    response = await http.get(f"{path}?limit={limit}", headers=headers)
    assert_problem(response, 400)


@pytest.mark.parametrize(
    "before", ["9223372036854775808", "99999999999999999999999", "%C2%B2", "-1", "1e3", "%F0%9D%9F%99"]
)
async def test_a_before_outside_int64_or_not_digits_is_400(http: httpx.AsyncClient, before: str) -> None:
    headers = await admin_headers(http)
    assert_problem(await http.get(f"/admin/audit?before={before}", headers=headers), 400)


@pytest.mark.parametrize("before", ["2147483648", "4294967296", "9223372036854775807"])
async def test_a_before_past_int32_pages_the_audit_log(http: httpx.AsyncClient, before: str) -> None:
    headers = await admin_headers(http)
    await http.post("/admin/clients", headers=headers, json={"name": "x", "grant_types": ["client_credentials"]})
    response = await http.get(f"/admin/audit?before={before}", headers=headers)
    assert response.status_code == 200, response.text
    # the first start's keys and the admin client made by admin_headers are audited too
    assert [e["action"] for e in response.json()["items"]] == ["clients.create", "clients.create", "keys.initial"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/admin/clients/a%00b"),
        ("PATCH", "/admin/clients/a%00b"),
        ("DELETE", "/admin/clients/a%00b"),
        ("POST", "/admin/clients/a%00b/secret"),
        ("GET", "/admin/users/a%00b"),
        ("POST", "/admin/users/a%00b/disable"),
        ("POST", "/admin/users/a%00b/enable"),
        ("PUT", "/admin/users/a%00b/roles"),
        ("POST", "/admin/users/a%00b/sessions/revoke"),
        ("POST", "/admin/keys/a%00b/revoke"),
    ],
)
async def test_a_nul_in_a_path_id_is_404(http: httpx.AsyncClient, method: str, path: str) -> None:
    headers = await admin_headers(http)
    body = {"roles": ["user"]} if path.endswith("/roles") else {"name": "x"}
    response = await http.request(method, path, headers=headers, json=body if method in ("PATCH", "PUT") else None)
    assert_problem(response, 404)


@pytest.mark.parametrize("path", ["/admin/clients", "/admin/users"])
async def test_a_nul_in_the_after_cursor_is_400(http: httpx.AsyncClient, path: str) -> None:
    headers = await admin_headers(http)
    assert_problem(await http.get(f"{path}?after=a%00b", headers=headers), 400)


async def test_a_nul_at_an_oauth_endpoint_answers_in_oauth_form(http: httpx.AsyncClient) -> None:
    response = await http.post("/oauth2/token%00", data={"grant_type": "client_credentials"})
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["error"] == "invalid_request"


@pytest.mark.parametrize("body", [NESTED, NESTED_OBJECT], ids=["array", "in-object"])
async def test_deeply_nested_json_to_register_is_400(http: httpx.AsyncClient, body: bytes) -> None:
    response = await http.post("/register", content=body, headers={"Content-Type": "application/json"})
    assert_problem(response, 400)


@pytest.mark.parametrize("method", ["POST", "PATCH"])
async def test_deeply_nested_json_to_the_admin_api_is_400(http: httpx.AsyncClient, method: str) -> None:
    headers = await admin_headers(http)
    path = "/admin/clients"
    if method == "PATCH":
        client_id, _ = await make_client(http)
        path = f"/admin/clients/{client_id}"
    response = await http.request(
        method, path, content=NESTED_OBJECT, headers={**headers, "Content-Type": "application/json"}
    )
    assert_problem(response, 400)


async def test_json_nested_a_little_too_deep_is_400_and_a_nul_in_a_field_is_422(http: httpx.AsyncClient) -> None:
    deep: list[object] = []
    for _ in range(40):
        deep = [deep]
    assert_problem(await http.post("/register", json={"username": "deep", "password": "password-123", "x": deep}), 400)
    assert_problem(await http.post("/register", json=deep), 400)
    nul = {"username": "nul", "password": "pass\x00word-123"}
    assert "password" in assert_problem(await http.post("/register", json=nul), 422)["errors"]
    ok = {"username": "plain", "password": "password-123", "email": "plain@example.com"}
    assert (await http.post("/register", json=ok)).status_code == 201


@pytest.mark.parametrize(
    "body",
    [
        {"name": "a\x00b", "grant_types": ["client_credentials"]},
        {"name": "x", "grant_types": ["client_credentials"], "scopes": ["a\x00"]},
        {"name": "x", "grant_types": ["client_credentials"], "audiences": ["https://api.example.com/\x00"]},
        {"name": "x", "grant_types": ["client_\x00credentials"]},
    ],
)
async def test_a_nul_in_a_client_field_is_422(http: httpx.AsyncClient, body: dict[str, object]) -> None:
    headers = await admin_headers(http)
    assert_problem(await http.post("/admin/clients", json=body, headers=headers), 422)


LONE_SURROGATE = '"\\ud800\\ud800\\ud800\\ud800\\ud800\\ud800\\ud800\\ud800x"'


async def test_a_lone_surrogate_escape_is_400_without_login(http: httpx.AsyncClient) -> None:
    body = ('{"username": "surr1", "password": ' + LONE_SURROGATE + "}").encode()
    response = await http.post("/register", content=body, headers={"Content-Type": "application/json"})
    assert "surrogate" in assert_problem(response, 400)["detail"]
    # a properly paired escape (U+1F600) is ordinary text
    paired = b'{"username": "surr2", "password": "pass-\\ud83d\\ude00-word-9"}'
    response = await http.post("/register", content=paired, headers={"Content-Type": "application/json"})
    assert response.status_code == 201, response.text


async def test_a_lone_surrogate_escape_is_400_at_the_account_and_admin_api(http: httpx.AsyncClient) -> None:
    from tests.conftest import services_of
    from tests.users_helpers import PASSWORD, first_party, login

    issuer = services_of(http).settings.url
    session = await login(http, await first_party(http), "surrogate-user", resource=issuer)
    user = {"Authorization": f"Bearer {session['access_token']}", "Content-Type": "application/json"}
    for path, body in (
        ("/account/password", '{"current_password": ' + LONE_SURROGATE + ', "new_password": "x-new-pass-9"}'),
        ("/account/password", '{"current_password": "' + PASSWORD + '", "new_password": ' + LONE_SURROGATE + "}"),
        ("/account/deactivate", '{"password": ' + LONE_SURROGATE + "}"),
    ):
        assert_problem(await http.post(path, content=body.encode(), headers=user), 400)
    admin = {**(await admin_headers(http)), "Content-Type": "application/json"}
    body = '{"name": ' + LONE_SURROGATE + ', "grant_types": ["client_credentials"]}'
    assert_problem(await http.post("/admin/clients", content=body.encode(), headers=admin), 400)


async def test_a_token_whose_header_is_deeply_nested_json_is_refused_not_a_500(http: httpx.AsyncClient) -> None:
    """The header is parsed before any signature check: nesting past the recursion limit must be
    an invalid token at every place that reads one of ours."""
    header = base64.urlsafe_b64encode(b"[" * 5000).rstrip(b"=").decode()
    token = f"{header}.eyJhIjoxfQ.c2ln"
    bearer = {"Authorization": f"Bearer {token}"}
    for path in ("/userinfo", "/admin/clients", "/account/sessions"):
        response = await http.get(path, headers=bearer)
        assert response.status_code == 401 and response.json()["error"] == "invalid_token", (path, response.text)
    client_id, secret = await make_client(http, name="rs", scopes=("read",))
    assert secret is not None
    introspected = await http.post("/oauth2/introspect", data={"token": token}, auth=(client_id, secret))
    assert introspected.status_code == 200 and introspected.json() == {"active": False}
    logout = await http.get("/oauth2/logout", params={"id_token_hint": token})
    assert logout.status_code == 400, logout.text
