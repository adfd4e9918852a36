"""GET /openapi.json: the OpenAPI 3.1 description of every endpoint (tests/test_openapi.py keeps it true)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from issuer.http.responses import json_response
from issuer.services import Services

_OAUTH_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string"}, "error_description": {"type": "string"}},
}
_PROBLEM = {
    "type": "object",
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
    },
}
_TOKEN_RESPONSE = {
    "type": "object",
    "required": ["access_token", "token_type", "expires_in"],
    "properties": {
        "access_token": {"type": "string", "description": "RFC 9068 JWT (typ at+jwt)"},
        "token_type": {"type": "string", "enum": ["Bearer"]},
        "expires_in": {"type": "integer"},
        "scope": {"type": "string"},
        "refresh_token": {"type": "string"},
    },
}


def _json(schema: dict[str, Any] | str, description: str, media: str = "application/json") -> dict[str, Any]:
    ref = {"$ref": f"#/components/schemas/{schema}"} if isinstance(schema, str) else schema
    return {"description": description, "content": {media: {"schema": ref}}}


def _oauth_errors(*codes: int) -> dict[str, Any]:
    return {str(c): _json("OAuthError", "RFC 6749 §5.2 error") for c in codes}


def _form(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {"type": "object", "properties": properties, "required": required}
            }
        },
    }


_S = {"type": "string"}


def paths() -> dict[str, Any]:
    return {
        "/.well-known/oauth-authorization-server": {
            "get": {
                "summary": "Authorization server metadata (RFC 8414)",
                "responses": {"200": _json({"type": "object"}, "Metadata")},
            }
        },
        "/.well-known/openid-configuration": {
            "get": {
                "summary": "The same metadata at the OpenID Connect Discovery location",
                "responses": {"200": _json({"type": "object"}, "Metadata")},
            }
        },
        "/.well-known/jwks.json": {
            "get": {
                "summary": "Public signing keys (pending, active, retired); honours If-None-Match",
                "responses": {
                    "200": _json({"type": "object"}, "JWK Set", "application/jwk-set+json"),
                    "304": {"description": "Not modified"},
                },
            }
        },
        "/oauth2/token": {
            "post": {
                "summary": "Token endpoint (RFC 6749 §3.2)",
                "security": [{"clientBasic": []}, {}],
                "requestBody": _form(
                    {
                        "grant_type": {"type": "string", "enum": ["client_credentials"]},
                        "scope": _S,
                        "resource": {"type": "array", "items": _S, "description": "RFC 8707"},
                        "client_id": _S,
                        "client_secret": _S,
                    },
                    ["grant_type"],
                ),
                "responses": {"200": _json("TokenResponse", "Tokens issued"), **_oauth_errors(400, 401, 413, 429)},
            }
        },
        "/healthz": {"get": {"summary": "Process is up", "responses": {"200": _json({"type": "object"}, "Up")}}},
        "/readyz": {
            "get": {
                "summary": "Dependencies reachable",
                "responses": {
                    "200": _json({"type": "object"}, "Ready"),
                    "503": _json("Problem", "Not ready", "application/problem+json"),
                },
            }
        },
        "/openapi.json": {
            "get": {"summary": "This document", "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1")}}
        },
    }


def document(issuer_url: str) -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "issuer", "version": "0.1.0", "description": "OAuth 2.0 token issuer"},
        "servers": [{"url": issuer_url}],
        "paths": paths(),
        "components": {
            "schemas": {"OAuthError": _OAUTH_ERROR, "Problem": _PROBLEM, "TokenResponse": _TOKEN_RESPONSE},
            "securitySchemes": {
                "clientBasic": {"type": "http", "scheme": "basic", "description": "client_secret_basic"},
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
            },
        },
    }


async def openapi_endpoint(request: Request) -> Response:
    services: Services = request.state.services
    return json_response(document(services.settings.url))
