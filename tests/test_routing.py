"""issuer.http.routing.IndexedRouter picks exactly the route Starlette's Router would."""

from __future__ import annotations

import asyncio
import itertools

import pytest
from starlette.routing import BaseRoute, Route, Router
from starlette.types import Receive, Scope, Send

from issuer.app import routes
from issuer.http.routing import IndexedRouter

Choice = tuple[BaseRoute | None, dict[str, object]]


def _chosen(router: Router, method: str, path: str, monkeypatch: pytest.MonkeyPatch) -> Choice:
    seen: list[BaseRoute | None] = []

    async def handle(self: BaseRoute, scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(self)

    async def default(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(None)

    monkeypatch.setattr(Route, "handle", handle)
    monkeypatch.setattr(router, "default", default)
    scope = {"type": "http", "method": method, "path": path, "root_path": "", "headers": [], "query_string": b""}
    asyncio.run(router.app(scope, None, None))  # type: ignore[arg-type]
    return seen[0], {k: scope.get(k) for k in ("endpoint", "path_params")}


def test_every_path_and_method_is_routed_as_starlette_routes_it(monkeypatch: pytest.MonkeyPatch) -> None:
    route_list = routes()
    indexed, plain = IndexedRouter(route_list, redirect_slashes=False), Router(route_list, redirect_slashes=False)
    declared = [r.path for r in route_list if isinstance(r, Route)]
    filled = [p.replace("{", "").replace("}", "").split(":")[0] for p in declared]  # /admin/clients/client_id…
    paths = sorted({*declared, *filled, "/", "/nope", "/healthz/", "/oauth2/token/x", "/admin/clients/export"})
    assert len(indexed._by_path) > 20  # most paths are literal: the index is in use
    for method, path in itertools.product(["GET", "HEAD", "POST", "PATCH", "DELETE", "OPTIONS"], paths):
        assert _chosen(indexed, method, path, monkeypatch) == _chosen(plain, method, path, monkeypatch), (method, path)
