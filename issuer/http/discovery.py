"""Discovery (RFC 8414, OpenID Connect Discovery 1.0 §4), the JWKS, and health probes."""

from __future__ import annotations

import functools
from typing import Any

import orjson
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Scope

from issuer.authorize.request import OIDC_SCOPES, PROMPTS
from issuer.grants import GRANTS
from issuer.http.apidoc import OPERATIONS_API, PUBLIC_API, Reply, documented, ok, problem
from issuer.http.clientauth import AUTH_METHODS
from issuer.http.lean import Answer, LeanGet
from issuer.http.protocol_schemas import AuthorizationServerMetadata, Health, JsonWebKeySet, Readiness
from issuer.http.responses import json_response
from issuer.http.responses import problem as problem_response
from issuer.http.scope import header
from issuer.oauth.scopes import advertised_scopes
from issuer.services import Services
from keys.jwks import etag_matches


def metadata(services: Services, scopes: list[str]) -> dict[str, Any]:
    """RFC 8414 §2 and OpenID Connect Discovery §3: only what works."""
    url = services.settings.url
    return {
        "issuer": url,
        "authorization_endpoint": f"{url}/oauth2/authorize",
        "token_endpoint": f"{url}/oauth2/token",
        "jwks_uri": f"{url}/.well-known/jwks.json",
        "grant_types_supported": sorted(GRANTS),
        "token_endpoint_auth_methods_supported": list(AUTH_METHODS),
        "revocation_endpoint": f"{url}/oauth2/revoke",
        "revocation_endpoint_auth_methods_supported": list(AUTH_METHODS),
        "introspection_endpoint": f"{url}/oauth2/introspect",
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "userinfo_endpoint": f"{url}/userinfo",
        "end_session_endpoint": f"{url}/oauth2/logout",
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": True,
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": sorted(
            {services.settings.signing_alg} | {k.alg for k in services.keyring.keys if k.published}
        ),
        "claims_supported": services.authorize.id_tokens.claims.supported()
        + ["iss", "aud", "exp", "iat", "auth_time", "nonce", "at_hash", "sid"],
        "prompt_values_supported": sorted(PROMPTS),
        "scopes_supported": list(dict.fromkeys([*OIDC_SCOPES, *scopes])),
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,  # OIDC Discovery §3: omitted would mean true
        "service_documentation": f"{url}/docs",
    }


@documented(
    "Authorization server metadata (RFC 8414; also at the OIDC Discovery location)",
    PUBLIC_API,
    ok(AuthorizationServerMetadata),
)
async def oauth_metadata(request: Request) -> Response:
    services: Services = request.state.services
    body = metadata(services, advertised_scopes(await services.scopes_supported()))
    return json_response(body, headers={"Cache-Control": "public, max-age=60"})


@documented(
    "Public signing keys (pending, active, retired)",
    PUBLIC_API,
    {
        200: (Reply("JWK Set", JsonWebKeySet, "application/jwk-set+json", ("ETag", "Cache-Control")),),
        304: (Reply("Not modified: If-None-Match names the current ETag", headers=("ETag", "Cache-Control")),),
    },
    query=("If-None-Match",),
)
async def jwks(request: Request) -> Response:
    return jwks_answer(request.scope, request.state.services).response()


def jwks_answer(scope: Scope, services: Services) -> Answer:
    keyring = services.keyring
    document = keyring.jwks
    headers = _jwks_headers(document.etag, keyring.max_age())
    if etag_matches(header(scope, b"if-none-match"), document.etag):
        return Answer(304, list(headers))
    return Answer(200, [*headers, (b"content-type", b"application/jwk-set+json")], document.body)


@functools.lru_cache(maxsize=16)
def _jwks_headers(etag: str, max_age: int) -> tuple[tuple[bytes, bytes], ...]:
    return (
        (b"cache-control", f"public, max-age={max_age}, stale-if-error={max(max_age, 60)}".encode()),
        (b"etag", etag.encode()),
        (b"vary", b"Accept-Encoding"),
    )


@documented("Process is up", OPERATIONS_API, ok(Health, "Up"))
async def healthz(request: Request) -> Response:
    return healthz_answer(request.scope, request.state.services).response()


_UP = Answer(
    200, [(b"cache-control", b"no-store"), (b"content-type", b"application/json")], orjson.dumps({"status": "ok"})
)


def healthz_answer(scope: Scope, services: Services) -> Answer:
    return _UP


LEAN_GETS = {"/.well-known/jwks.json": LeanGet(jwks, jwks_answer), "/healthz": LeanGet(healthz, healthz_answer)}


@documented(
    "Database reachable (Redis, when configured, is reported as ok or degraded, never gating)",
    OPERATIONS_API,
    ok(Readiness, "Ready"),
    problem(503, "The database is unreachable (checks names each dependency)"),
)
async def readyz(request: Request) -> Response:
    services: Services = request.state.services
    checks = await services.readiness()
    if checks["database"] != "ok":
        return problem_response(503, "Service Unavailable", "the database is not reachable", checks=checks)
    return json_response({"status": "ready", "checks": checks}, headers={"Cache-Control": "no-store"})


@documented(
    "Prometheus metrics",
    OPERATIONS_API,
    {200: (Reply("Prometheus text exposition format", {"type": "string"}, "text/plain", ("Cache-Control",)),)},
)
async def metrics(request: Request) -> Response:
    services: Services = request.state.services
    body = services.metrics.render(services.keyring.keys, services.clock())
    return Response(body, 200, {"Cache-Control": "no-store"}, CONTENT_TYPE_LATEST)
