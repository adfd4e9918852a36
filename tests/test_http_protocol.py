"""Small HTTP protocol points, over ASGI on both backends: no redirect built from Host, OPTIONS
and 405 list every method of the path, CORS only on the browser endpoints, audience URIs are
https (or loopback http) absolute URIs, unknown client fields are refused, and the client
address behind proxies is the right-most untrusted X-Forwarded-For entry."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from issuer.http.forwarded import TrustedProxies
from issuer.oauth.uris import is_https_uri
from tests.conftest import assert_problem, make_client
from tests.test_admin_api import Admin, admin  # noqa: F401 - the fixture, as the admin API tests get it
from tests.test_rate_limits import assert_limited, setup_login
from tests.users_helpers import PASSWORD

TOKEN = "/oauth2/token"
ORIGIN = "https://app.example.com"


# -- redirects, OPTIONS and Allow ----------------------------------------------------------------


async def test_a_trailing_slash_is_not_redirected_to_the_host_header(
    client: httpx.AsyncClient, admin: Admin  # noqa: F811
) -> None:
    for path in ("/admin/clients/", "/oauth2/token/", "/.well-known/jwks.json/"):
        response = await client.get(path, headers={**admin.headers, "Host": "evil.example.com"})
        assert response.status_code == 404, (path, response.status_code)
        assert "location" not in response.headers


@pytest.mark.parametrize(
    ("path", "allow"),
    [
        ("/oauth2/token", "OPTIONS, POST"),
        ("/userinfo", "GET, HEAD, OPTIONS, POST"),
        ("/.well-known/jwks.json", "GET, HEAD, OPTIONS"),
        ("/admin/clients", "GET, HEAD, OPTIONS, POST"),
        ("/admin/clients/some-id", "DELETE, GET, HEAD, OPTIONS, PATCH"),
        ("/admin/users/some-id/roles", "OPTIONS, PUT"),
    ],
)
async def test_options_and_405_list_every_method_of_the_path(client: httpx.AsyncClient, path: str, allow: str) -> None:
    options = await client.options(path)
    assert options.status_code == 204 and options.content == b""
    assert options.headers["allow"] == allow
    missing = next(m for m in ("PUT", "DELETE", "GET") if m not in allow.split(", "))
    refused = await client.request(missing, path)
    assert_problem(refused, 405)
    assert refused.headers["allow"] == allow


async def test_options_on_an_unknown_path_is_404(client: httpx.AsyncClient) -> None:
    assert (await client.options("/no/such/path")).status_code == 404


# -- CORS ----------------------------------------------------------------------------------------


def preflight(http: httpx.AsyncClient, path: str, method: str = "POST") -> Any:
    return http.options(
        path,
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )


async def test_cors_applies_to_browser_endpoints_only(start: Callable[..., Any]) -> None:
    async with start(cors_origins=[ORIGIN]) as http:
        for path, method in (
            ("/oauth2/token", "POST"),
            ("/oauth2/revoke", "POST"),
            ("/userinfo", "GET"),
            ("/.well-known/jwks.json", "GET"),
            ("/.well-known/openid-configuration", "GET"),
        ):
            ok = await preflight(http, path, method)
            assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == ORIGIN, path
        simple = await http.get("/.well-known/jwks.json", headers={"Origin": ORIGIN})
        assert simple.headers["access-control-allow-origin"] == ORIGIN
        # the headers Swagger UI sends with its token request
        swagger = await http.options(
            "/oauth2/token",
            headers={
                "Origin": ORIGIN,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "accept, authorization, content-type, x-requested-with",
            },
        )
        assert swagger.status_code == 200, swagger.text
        assert "x-requested-with" in swagger.headers["access-control-allow-headers"].lower()

        for path, method in (
            ("/admin/clients", "POST"),
            ("/admin/keys", "GET"),
            ("/account/password", "POST"),
            ("/oauth2/introspect", "POST"),
            ("/register", "POST"),
        ):
            refused = await preflight(http, path, method)
            assert not any(h.startswith("access-control-") for h in refused.headers), path
            simple = await http.request(method, path, headers={"Origin": ORIGIN})
            assert not any(h.startswith("access-control-") for h in simple.headers), path


# -- audience URIs and unknown fields ------------------------------------------------------------


GOOD_URIS = ["https://api.example.com", "https://api.example.com:8443/v1?x=1", "http://127.0.0.1:9000", "http://localhost"]
BAD_URIS = [
    "javascript:alert(1)",
    "http://api.example.com",
    "https://user:pw@api.example.com",
    "https://api.example.com/#frag",
    "urn:example:api",
    "/relative",
    "https://",
    "https://api.example.com:99999",
    "https://api.example.com/\u202e",
    "data:text/html,hi",
]


@pytest.mark.parametrize("uri", GOOD_URIS)
def test_acceptable_audience_uris(uri: str) -> None:
    assert is_https_uri(uri)


@pytest.mark.parametrize("uri", BAD_URIS)
async def test_admin_api_refuses_bad_audiences(client: httpx.AsyncClient, admin: Admin, uri: str) -> None:  # noqa: F811
    assert not is_https_uri(uri)
    body = {"name": "x", "grant_types": ["client_credentials"], "audiences": [uri]}
    assert_problem(await client.post("/admin/clients", json=body, headers=admin.headers), 422)
    created = await client.post(
        "/admin/clients", json={**body, "audiences": ["https://api.example.com"]}, headers=admin.headers
    )
    assert created.status_code == 201, created.text
    patched = await client.patch(
        f"/admin/clients/{created.json()['client_id']}", json={"audiences": [uri]}, headers=admin.headers
    )
    assert_problem(patched, 422)


async def test_token_endpoint_refuses_a_bad_resource(http: httpx.AsyncClient) -> None:
    client_id, secret = await make_client(http)
    for resource in ("javascript:alert(1)", "http://api.example.com", "https://u@api.example.com"):
        response = await http.post(
            TOKEN, data={"grant_type": "client_credentials", "resource": resource}, auth=(client_id, secret or "")
        )
        assert response.status_code == 400 and response.json()["error"] == "invalid_target", resource


async def test_creating_a_client_refuses_unknown_fields(client: httpx.AsyncClient, admin: Admin) -> None:  # noqa: F811
    for extra in ({"client_secret": "chosen"}, {"client_id": "mine"}, {"redirect_uri": "https://x"}):
        body = {"name": "x", "grant_types": ["client_credentials"], **extra}
        problem = assert_problem(await client.post("/admin/clients", json=body, headers=admin.headers), 422)
        assert next(iter(extra)) in problem["detail"]
    listed = (await client.get("/admin/clients", headers=admin.headers)).json()["items"]
    assert [c["name"] for c in listed] == ["operator"]


# -- the client address behind proxies -----------------------------------------------------------


def test_the_client_is_the_right_most_untrusted_hop() -> None:
    proxies = TrustedProxies(["127.0.0.1", "10.0.0.0/8"])
    assert proxies.client("127.0.0.1", "198.51.100.9") == "198.51.100.9"
    assert proxies.client("127.0.0.1", "203.0.113.5, 198.51.100.9") == "198.51.100.9"
    assert proxies.client("127.0.0.1", "203.0.113.5, 198.51.100.9, 10.1.2.3") == "198.51.100.9"
    assert proxies.client("192.0.2.1", "198.51.100.9") == "192.0.2.1"  # not a proxy: the header means nothing
    assert proxies.client("127.0.0.1", "not-an-ip, 10.0.0.2") == "not-an-ip"
    assert TrustedProxies([]).client("127.0.0.1", "198.51.100.9") == "127.0.0.1"
    assert TrustedProxies(["*"]).client("192.0.2.1", "203.0.113.5, 198.51.100.9") == "203.0.113.5"
    assert TrustedProxies([], trust_peer=True).client("192.0.2.1", "203.0.113.5, 198.51.100.9") == "198.51.100.9"


async def guess(http: httpx.AsyncClient, client: tuple[str, str | None], forwarded_for: str) -> httpx.Response:
    data = {"grant_type": "password", "username": "alice", "password": "wrong-" + PASSWORD}
    headers = {"X-Forwarded-For": forwarded_for}
    return await http.post(TOKEN, data=data, auth=(client[0], client[1] or ""), headers=headers)


@pytest.mark.parametrize(
    "settings",
    [
        {"forwarded_allow_ips": ["127.0.0.1"]},  # the peer (127.0.0.1) is our proxy
        {"forwarded_allow_ips": ["127.0.0.0/8", "10.0.0.0/8"]},  # a chain of proxies
        {"trust_forwarded_for": True},  # the deprecated switch: one proxy hop
    ],
)
async def test_forged_forwarded_for_entries_do_not_escape_the_ip_limit(
    start: Callable[..., Any], settings: dict[str, Any]
) -> None:
    async with start(rate_limit_login_per_user=0, rate_limit_login_per_ip=5, **settings) as http:
        client = await setup_login(http)
        # the attacker (198.51.100.9, as our proxy saw it) prepends a fresh address to every guess
        for i in range(5):
            assert (await guess(http, client, f"203.0.113.{i}, 198.51.100.9")).json()["error"] == "invalid_grant"
        for i in range(5, 80):
            assert_limited(await guess(http, client, f"203.0.113.{i}, 198.51.100.9"), 60)
        # an honest client behind the same proxy is counted on its own
        assert (await guess(http, client, "198.51.100.10")).json()["error"] == "invalid_grant"


async def test_a_peer_that_is_no_proxy_cannot_choose_its_address(start: Callable[..., Any]) -> None:
    # The peer (127.0.0.1 here) is not among the trusted proxies, so its X-Forwarded-For is ignored.
    settings = {"rate_limit_login_per_user": 0, "rate_limit_login_per_ip": 5, "forwarded_allow_ips": ["10.0.0.0/8"]}
    async with start(**settings) as http:
        client = await setup_login(http)
        for i in range(5):
            assert (await guess(http, client, f"203.0.113.{i}, 10.0.0.1")).json()["error"] == "invalid_grant"
        for i in range(5, 80):
            assert_limited(await guess(http, client, f"203.0.113.{i}, 10.0.0.1"), 60)


async def test_the_audit_log_records_the_forwarded_client(start: Callable[..., Any]) -> None:
    async with start(forwarded_allow_ips=["127.0.0.1"]) as http:
        operator, secret = await make_client(http, name="operator", scopes=("issuer:admin",), audiences=())
        token = (
            await http.post(TOKEN, data={"grant_type": "client_credentials"}, auth=(operator, secret or ""))
        ).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}", "X-Forwarded-For": "203.0.113.66, 198.51.100.9"}
        body = {"name": "audited", "grant_types": ["client_credentials"]}
        assert (await http.post("/admin/clients", json=body, headers=headers)).status_code == 201
        entries = (await http.get("/admin/audit", headers=headers)).json()["items"]
        # (the older entries are the setup's, made through issuer.operations: no address)
        assert [(e["action"], e["remote_addr"]) for e in entries] == [
            ("clients.create", "198.51.100.9"),
            ("clients.create", ""),
            ("keys.initial", ""),
        ]
