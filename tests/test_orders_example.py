"""The example resource server (deploy/examples/orders, FastAPI) and the Starlette glue, against the
real issuer app: 200/400/401/403/503 with RFC 6750 ``WWW-Authenticate`` headers, roles through the
issuer's hierarchy, and the OAuth 2 security scheme Swagger UI's Authorize button needs."""

from __future__ import annotations

import importlib.util
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from issuer_verifier.starlette import BearerTokenMiddleware, requires_token
from tests.conftest import FakeClock
from tests.servers import REPO_ROOT
from tests.verifier_helpers import (
    claims_of,
    forge,
    service_token,
    user_token,
    verifier_for,
)


def orders_module() -> Any:
    spec = importlib.util.spec_from_file_location("orders_example", REPO_ROOT / "deploy/examples/orders/app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
async def orders(sqlite_http: httpx.AsyncClient, clock: FakeClock) -> AsyncIterator[httpx.AsyncClient]:
    base = str(sqlite_http.base_url).rstrip("/")
    app = orders_module().create_app(base, docs_client_id="docs", http=sqlite_http, clock=clock, monotonic=clock)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://orders") as http:
        yield http


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def challenge(response: httpx.Response) -> str:
    value: str = response.headers["www-authenticate"]
    return value


async def test_public_scope_and_role_routes(
    sqlite_http: httpx.AsyncClient, orders: httpx.AsyncClient, clock: FakeClock
) -> None:
    assert (await orders.get("/health")).status_code == 200

    missing = await orders.get("/orders")
    assert missing.status_code == 401 and challenge(missing) == 'Bearer realm="orders"'

    reader = await service_token(sqlite_http, scopes=("orders:read",))
    ok = await orders.get("/orders", headers=bearer(reader))
    assert ok.status_code == 200 and ok.json()["orders"]

    other = await service_token(sqlite_http, scopes=("profile",))
    no_scope = await orders.get("/orders", headers=bearer(other))
    assert no_scope.status_code == 403
    assert challenge(no_scope).startswith('Bearer realm="orders", error="insufficient_scope", error_description="')
    assert challenge(no_scope).endswith(', scope="orders:read"')

    no_role = await orders.get("/reports/revenue", headers=bearer(reader))
    assert no_role.status_code == 403 and 'error="insufficient_scope"' in challenge(no_role)
    assert "lacks role manager" in no_role.json()["detail"]

    for username, roles, status in (("ulla", ("user",), 403), ("maria", ("manager",), 200), ("ada", ("admin",), 200)):
        response = await orders.get("/reports/revenue", headers=bearer(await user_token(sqlite_http, username, roles)))
        assert response.status_code == status, (username, response.text)


@pytest.mark.parametrize(
    ("header", "status", "error"),
    [
        ("Bearer", 400, "invalid_request"),
        ("Bearer not.a.token", 401, "invalid_token"),
        ("Basic dXNlcjpwYXNz", 401, None),
    ],
)
async def test_malformed_credentials(orders: httpx.AsyncClient, header: str, status: int, error: str | None) -> None:
    response = await orders.get("/orders", headers={"Authorization": header})
    assert response.status_code == status
    assert (f'error="{error}"' in challenge(response)) if error else challenge(response) == 'Bearer realm="orders"'


async def test_tokens_not_for_this_api_are_invalid(
    sqlite_http: httpx.AsyncClient, orders: httpx.AsyncClient, clock: FakeClock
) -> None:
    await service_token(sqlite_http)
    for token in (
        forge(sqlite_http, claims_of(sqlite_http, clock), typ="JWT"),  # an ID token
        forge(sqlite_http, claims_of(sqlite_http, clock, aud="https://billing.example.com")),
        forge(sqlite_http, claims_of(sqlite_http, clock, exp=int(clock()) - 120)),
    ):
        response = await orders.get("/orders", headers=bearer(token))
        assert response.status_code == 401, response.text
        assert challenge(response).startswith('Bearer realm="orders", error="invalid_token", error_description="')


async def test_the_openapi_document_declares_the_issuer_for_swagger_ui(
    sqlite_http: httpx.AsyncClient, orders: httpx.AsyncClient
) -> None:
    document = (await orders.get("/openapi.json")).json()
    base = str(sqlite_http.base_url).rstrip("/")
    flow = document["components"]["securitySchemes"]["issuer"]["flows"]["authorizationCode"]
    assert flow["authorizationUrl"] == f"{base}/oauth2/authorize" and flow["tokenUrl"] == f"{base}/oauth2/token"
    assert flow["scopes"] == {"orders:read": "Read orders"}
    assert document["paths"]["/orders"]["get"]["security"] == [{"issuer": ["orders:read"]}]
    assert document["paths"]["/reports/revenue"]["get"]["security"] == [{"issuer": []}]
    assert "security" not in document["paths"]["/health"]["get"]
    docs = (await orders.get("/docs")).text
    assert '"usePkceWithAuthorizationCodeGrant": true' in docs and '"clientId": "docs"' in docs


async def test_an_unreachable_issuer_is_503_not_401(clock: FakeClock) -> None:
    async with httpx.AsyncClient(transport=httpx.MockTransport(lambda r: httpx.Response(503))) as down:
        app = orders_module().create_app("https://issuer.example.com", http=down, clock=clock, monotonic=clock)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://orders") as http:
            header = "eyJhbGciOiJFUzI1NiIsInR5cCI6ImF0K2p3dCIsImtpZCI6ImsifQ"  # ES256, at+jwt, kid k
            response = await http.get("/orders", headers=bearer(f"{header}.e30.x"))
    assert response.status_code == 503 and response.headers["retry-after"]


async def test_starlette_decorator_and_middleware(sqlite_http: httpx.AsyncClient, clock: FakeClock) -> None:
    verifier = verifier_for(sqlite_http, clock)

    @requires_token(verifier, roles=["manager"], realm="reports")
    async def report(request: Request) -> Response:
        return JSONResponse({"sub": request.state.token.subject})

    async def orders_list(request: Request) -> Response:
        return JSONResponse({"scopes": sorted(request.state.token.scopes)})

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    @requires_token(verifier, scopes=["orders:read"])
    def blocking(request: Request) -> Response:  # a sync endpoint runs in the thread pool
        return JSONResponse({"client": request.state.token.client_id})

    decorated = Starlette(routes=[Route("/report", report), Route("/blocking", blocking)])
    guarded = Starlette(routes=[Route("/orders", orders_list), Route("/health", health)])
    guarded.add_middleware(BearerTokenMiddleware, verifier=verifier, scopes=["orders:read"], exempt={"/health"})
    manager = await user_token(sqlite_http, "maria", ("manager",))
    reader = await service_token(sqlite_http)
    async with (
        httpx.AsyncClient(transport=httpx.ASGITransport(app=decorated), base_url="http://s") as one,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=guarded), base_url="http://s") as two,
    ):
        assert (await one.get("/report", headers=bearer(manager))).status_code == 200
        refused = await one.get("/report", headers=bearer(reader))
        assert refused.status_code == 403 and challenge(refused).startswith(
            'Bearer realm="reports", error="insufficient'
        )
        assert challenge(await one.get("/report")) == 'Bearer realm="reports"'
        assert (await one.get("/blocking", headers=bearer(reader))).json()["client"]
        assert (await one.get("/blocking")).status_code == 401
        assert (await two.get("/health")).status_code == 200
        assert (await two.get("/orders", headers=bearer(reader))).json() == {"scopes": ["orders:read"]}
        assert (await two.get("/orders")).status_code == 401
        id_token = forge(sqlite_http, claims_of(sqlite_http, clock), typ="JWT")
        assert (await two.get("/orders", headers=bearer(id_token))).status_code == 401


def readme_snippet(after: str, constructor: str, http: httpx.AsyncClient) -> dict[str, Any]:
    """Run the README's first Python snippet after ``after``, its ``constructor`` pointed at ``http``."""
    readme = (REPO_ROOT / "README.md").read_text()
    snippet = readme[readme.index(after) :].split("```python\n", 1)[1].split("```", 1)[0]
    construction = f'{constructor}("https://issuer.example.com", audience="https://api.example.com")'
    assert construction in snippet
    namespace: dict[str, Any] = {"ISSUER": str(http.base_url).rstrip("/"), "HTTP": http}
    exec(
        snippet.replace(construction, f'{constructor}(ISSUER, audience="https://api.example.com", http=HTTP)'),
        namespace,
    )
    return namespace


async def test_the_readme_fastapi_snippet_protects_a_route_with_a_role(sqlite_http: httpx.AsyncClient) -> None:
    namespace = readme_snippet("## Protect your API", "IssuerAuth", sqlite_http)
    manager = await user_token(sqlite_http, "maria", ("manager",))
    reader = await service_token(sqlite_http)
    transport = httpx.ASGITransport(app=namespace["app"])
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as api:
        assert (await api.get("/reports", headers=bearer(manager))).status_code == 200
        assert (await api.get("/reports", headers=bearer(reader))).status_code == 403
        assert (await api.get("/reports")).status_code == 401


async def handshake(app: Any, headers: dict[str, str]) -> list[dict[str, Any]]:
    """A WebSocket handshake driven over ASGI directly; the messages the app sends back."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    raw = [(name.lower().encode(), value.encode()) for name, value in headers.items()]
    scope = {"type": "websocket", "path": "/ws", "raw_path": b"/ws", "headers": raw, "query_string": b""}
    await app({**scope, "root_path": "", "scheme": "ws", "server": ("s", 80), "subprotocols": []}, receive, send)
    return sent


async def test_the_middleware_authenticates_websocket_handshakes(
    sqlite_http: httpx.AsyncClient, clock: FakeClock
) -> None:
    verifier = verifier_for(sqlite_http, clock)

    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text(websocket.state.token.client_id)
        await websocket.close()

    app = Starlette(routes=[WebSocketRoute("/ws", ws)])
    app.add_middleware(BearerTokenMiddleware, verifier=verifier, scopes=["orders:read"])
    reader = await service_token(sqlite_http)
    assert await handshake(app, {}) == [{"type": "websocket.close", "code": 1008, "reason": "unauthorized"}]
    refused = await handshake(app, bearer(await service_token(sqlite_http, scopes=("profile",))))
    assert [m["type"] for m in refused] == ["websocket.close"] and refused[0]["code"] == 1008
    accepted = await handshake(app, bearer(reader))
    assert [m["type"] for m in accepted] == ["websocket.accept", "websocket.send", "websocket.close"]
    assert accepted[1]["text"] == (await verifier.verify(reader)).client_id


async def test_the_readme_starlette_snippet_protects_an_endpoint_and_an_app(sqlite_http: httpx.AsyncClient) -> None:
    namespace = readme_snippet("**Starlette**", "Verifier", sqlite_http)
    manager = await user_token(sqlite_http, "maria", ("manager",))
    reader = await service_token(sqlite_http)
    async with (
        httpx.AsyncClient(transport=httpx.ASGITransport(app=namespace["app"]), base_url="http://s") as one,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=namespace["api"]), base_url="http://s") as two,
    ):
        assert (await one.get("/reports", headers=bearer(manager))).status_code == 200
        assert (await one.get("/reports", headers=bearer(reader))).status_code == 403
        assert (await one.get("/health")).status_code == 200
        assert (await two.get("/orders", headers=bearer(reader))).json() == {"scopes": ["orders:read"]}
        assert (await two.get("/orders")).status_code == 401
        assert (await two.get("/health")).status_code == 200
