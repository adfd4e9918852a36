"""GET /openapi.json: the OpenAPI 3.1 document, generated from the app's route table and what each
handler declares (issuer.http.apidoc): bodies and responses are described by the pydantic models
that validate them (issuer.http.schemas), whose ``$defs`` become shared components. A route whose
handler declared nothing cannot be described, and the document refuses to build."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, TypeAdapter
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from issuer.http.apidoc import (
    BODY_GUARD,
    DECLARED,
    HEADERS,
    OPERATIONS_API,
    QUERY_PARAMETERS,
    TAGS,
    Operation,
    Replies,
    Reply,
    Schema,
    documented,
    merge,
)
from issuer.http.responses import json_response
from issuer.oauth.scopes import ADMIN_SCOPE
from issuer.services import Services

_REF = "#/components/schemas/{model}"


class Undocumented(LookupError):
    """A route whose handler has no @documented declaration."""


class _Components:
    def __init__(self) -> None:
        self.schemas: dict[str, Schema] = {}

    def schema(self, source: Any) -> Schema:
        """A $ref to a model's component, or the inline schema of another type; nested models
        (pydantic's ``$defs``) are hoisted into the components."""
        if isinstance(source, dict):
            return source
        if isinstance(source, type) and issubclass(source, BaseModel):
            name = source.model_config.get("title") or source.__name__
            if name not in self.schemas:
                self.schemas[name] = self._hoist(source.model_json_schema(ref_template=_REF))
            return {"$ref": _REF.format(model=name)}
        return self._hoist(TypeAdapter(source).json_schema(ref_template=_REF))

    def _hoist(self, schema: Schema) -> Schema:
        self.schemas.update(schema.pop("$defs", {}))
        return schema

    def responses(self, replies: Replies) -> Schema:
        """A status answered several ways lists every description, header and body."""
        out: Schema = {}
        for status, options in replies.items():
            response: Schema = {"description": "; ".join(dict.fromkeys(r.description for r in options))}
            headers = dict.fromkeys(h for r in options for h in r.headers)
            if headers:
                response["headers"] = {h: {"$ref": f"#/components/headers/{h}"} for h in headers}
            content = self._content(options)
            if content:
                response["content"] = content
            out[str(status)] = response
        return out

    def _content(self, options: Iterable[Reply]) -> Schema:
        by_media: dict[str, list[Schema]] = {}
        for reply in options:
            if reply.schema is not None:
                schema = self.schema(reply.schema)
                if schema not in by_media.setdefault(reply.media, []):
                    by_media[reply.media].append(schema)
        return {
            media: {"schema": schemas[0] if len(schemas) == 1 else {"anyOf": schemas}}
            for media, schemas in by_media.items()
        }

    def operation(self, op: Operation, operation_id: str) -> Schema:
        out: Schema = {"operationId": operation_id, "summary": op.summary, "tags": [op.family.tag]}
        if op.description:
            out["description"] = op.description
        if op.family.security is not None:
            out["security"] = op.family.security
        if op.query:
            out["parameters"] = [{"$ref": f"#/components/parameters/{name}"} for name in op.query]
        if op.body is not None:
            content: Schema = {"schema": self.schema(op.body)}
            if op.body_media != "application/json":
                content["encoding"] = {"resource": {"style": "form", "explode": True}}
            out["requestBody"] = {"required": True, "content": {op.body_media: content}}
        out["responses"] = self.responses(merge(op.family.replies, op.replies, BODY_GUARD))
        return out


def _methods(route: Route) -> list[str]:
    methods = set(route.methods or ())
    if "GET" in methods:
        methods.discard("HEAD")  # Starlette adds HEAD to every GET
    return sorted(m.lower() for m in methods)


def _path_parameters(path: str) -> list[Schema]:
    return [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in re.findall(r"{(\w+)(?::\w+)?}", path)
    ]


class _OperationIds:
    """The handler's name; on a further path of the same handler the path is added, on a
    further method of the same path the method."""

    def __init__(self) -> None:
        self._first_path: dict[str, str] = {}
        self._taken: set[str] = set()

    def __call__(self, name: str, path: str, method: str) -> str:
        if self._first_path.setdefault(name, path) != path:
            name = f"{name}_{re.sub(r'[^a-z0-9]+', '_', path.lower()).strip('_')}"
        operation_id = name if name not in self._taken else f"{name}_{method}"
        if operation_id in self._taken:
            raise ValueError(f"no unique operationId for {method} {path}")
        self._taken.add(operation_id)
        return operation_id


def paths(routes: Iterable[BaseRoute], components: _Components) -> dict[str, Schema]:
    out: dict[str, Schema] = {}
    operation_id = _OperationIds()
    for route in routes:
        if not isinstance(route, Route):
            raise Undocumented(f"{route!r} is not a plain route")
        if not route.include_in_schema:
            continue  # the hosted HTML pages (issuer.pages): for browsers, not an API
        op = DECLARED.get(route.endpoint)
        if op is None:
            raise Undocumented(f"{route.path} ({route.endpoint.__name__}) declares no @documented operation")
        item = out.setdefault(route.path, {})
        parameters = _path_parameters(route.path)
        if parameters:
            item["parameters"] = parameters
        for method in _methods(route):
            item[method] = components.operation(op, operation_id(route.endpoint.__name__, route.path, method))
    return out


OAUTH2_SCOPES = {
    "openid": "Sign in with OpenID Connect (an ID token; /userinfo)",
    "profile": "Your username (preferred_username)",
    "email": "Your email address and whether it is verified",
    ADMIN_SCOPE: "The management API under /admin (administrators only)",
}


def oauth2_scheme(issuer_url: str) -> Schema:
    """The authorization code flow against this issuer, as Swagger UI's "Authorize" runs it."""
    return {
        "type": "oauth2",
        "description": "Authorization code with PKCE (S256, required of every client) against this issuer. "
        "A public client authenticates with its client_id alone (or HTTP Basic with an empty password).",
        "flows": {
            "authorizationCode": {
                "authorizationUrl": issuer_url + "/oauth2/authorize",
                "tokenUrl": issuer_url + "/oauth2/token",
                "refreshUrl": issuer_url + "/oauth2/token",
                "scopes": OAUTH2_SCOPES,
            }
        },
    }


def document(issuer_url: str, routes: Iterable[BaseRoute]) -> dict[str, Any]:
    components = _Components()
    path_items = paths(routes, components)
    return {
        "openapi": "3.1.0",
        "info": {"title": "issuer", "version": "0.1.0", "description": "OAuth 2.0 token issuer"},
        "servers": [{"url": issuer_url}],
        "tags": [{"name": name, "description": text} for name, text in TAGS.items()],
        "paths": path_items,
        "components": {
            "schemas": dict(sorted(components.schemas.items())),
            "parameters": QUERY_PARAMETERS,
            "headers": HEADERS,
            "securitySchemes": {
                "clientBasic": {"type": "http", "scheme": "basic", "description": "client_secret_basic"},
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "RFC 9068 access token from this issuer",
                },
                "oauth2": oauth2_scheme(issuer_url),
            },
        },
    }


@documented("This document", OPERATIONS_API, {200: (Reply("OpenAPI 3.1", {"type": "object"}),)})
async def openapi_endpoint(request: Request) -> Response:
    # Built once per app (about 15 ms of schema generation): this endpoint is public.
    state = request.app.state
    if getattr(state, "openapi_body", None) is None:
        services: Services = request.state.services
        state.openapi_body = json_response(document(services.settings.url, request.app.routes)).body
    return Response(state.openapi_body, media_type="application/json")
