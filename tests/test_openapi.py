"""GET /openapi.json is valid OpenAPI 3.1 and describes exactly the app's routes.

Uses openapi-spec-validator (a test dependency)."""

from __future__ import annotations

from typing import Any

import httpx
from openapi_spec_validator import validate
from openapi_spec_validator.validation import OpenAPIV31SpecValidator
from starlette.routing import Route

from issuer.app import routes
from tests.conftest import services_of

HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def route_methods() -> dict[str, set[str]]:
    """Path → methods of every Starlette route; the HEAD Starlette adds to every GET is implicit."""
    found: dict[str, set[str]] = {}
    for route in routes():
        assert isinstance(route, Route), route
        if not route.include_in_schema:
            continue
        methods = {m.lower() for m in route.methods or ()}
        if "get" in methods:
            methods.discard("head")
        found.setdefault(route.path, set()).update(methods)
    return found


def document_methods(document: dict[str, Any]) -> dict[str, set[str]]:
    return {path: {m for m in item if m in HTTP_METHODS} for path, item in document["paths"].items()}


async def test_openapi_document_is_valid_openapi_3_1(client: httpx.AsyncClient) -> None:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    document = response.json()
    assert document["openapi"].startswith("3.1.")
    validate(document, cls=OpenAPIV31SpecValidator)
    assert document["servers"] == [{"url": services_of(client).settings.url}]


async def test_every_route_is_documented_with_its_methods_and_nothing_else(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    assert document_methods(document) == route_methods()


async def test_every_documented_operation_answers(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    for path, methods in document_methods(document).items():
        for method in methods:
            response = await client.request(method.upper(), path)
            assert response.status_code not in (404, 405, 500), (method, path, response.status_code)
            assert str(response.status_code) in document["paths"][path][method]["responses"], (
                method,
                path,
                response.status_code,
            )
