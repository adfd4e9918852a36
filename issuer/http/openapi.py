"""GET /openapi.json: the OpenAPI 3.1 description of every endpoint (tests/test_openapi.py keeps it true).

The document is assembled from small pieces: component schemas, parameters and headers are defined
once and referenced; an operation is its handler (whose name gives the operationId), a summary, and
the responses its code path can produce, merged from error families (client authentication on the
form endpoints, RFC 6750 bearer checks, strict JSON bodies, and the body-size guard that the request
middleware applies to every route).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from issuer.accounts.users import PASSWORD_MAX, PASSWORD_MIN, USERNAME
from issuer.errors import OAuthError
from issuer.http import admin, discovery, oauth, token, users
from issuer.http.clientauth import AUTH_METHODS
from issuer.http.responses import json_response
from issuer.oauth.clients import GRANT_TYPES
from issuer.oauth.scopes import ADMIN_SCOPE
from issuer.services import Services
from keys.lifecycle import KeyState

Schema = dict[str, Any]
Handler = Callable[[Request], Awaitable[Response]]

JSON = "application/json"
PROBLEM = "application/problem+json"
FORM = "application/x-www-form-urlencoded"

# -- schema building blocks -------------------------------------------------------------------

_STR: Schema = {"type": "string"}
_INT: Schema = {"type": "integer"}
_BOOL: Schema = {"type": "boolean"}
_URI: Schema = {"type": "string", "format": "uri"}
_STRINGS: Schema = {"type": "array", "items": _STR}
_EPOCH: Schema = {"type": "integer", "description": "Unix time, seconds"}
_WHEN: Schema = {"type": ["string", "null"], "format": "date-time"}
_SCOPE: Schema = {"type": "string", "description": "Space-separated scope tokens"}
_GRANT_TYPES: Schema = {"type": "array", "items": {"type": "string", "enum": list(GRANT_TYPES)}}
_PASSWORD: Schema = {"type": "string", "minLength": PASSWORD_MIN, "maxLength": PASSWORD_MAX}


def _ref(name: str, kind: str = "schemas") -> Schema:
    return {"$ref": f"#/components/{kind}/{name}"}


def _described(schema: Schema, description: str) -> Schema:
    return {**schema, "description": description}


def _array(item: Schema) -> Schema:
    return {"type": "array", "items": item}


def _object(
    properties: dict[str, Schema],
    required: Iterable[str] = (),
    *,
    closed: bool = False,
    description: str | None = None,
) -> Schema:
    schema: Schema = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    if closed:
        schema["additionalProperties"] = False
    if description:
        schema["description"] = description
    return schema


def _all_required(properties: dict[str, Schema], **kwargs: Any) -> Schema:
    return _object(properties, properties, **kwargs)


def _page_of(item: str, cursor: Schema, cursor_param: str) -> Schema:
    return _all_required(
        {
            "items": _array(_ref(item)),
            "next": _described(cursor, f"Pass as `{cursor_param}` for the next page; null on the last page"),
        },
        description=f"A page of {item} entries",
    )


def _oauth_error_codes() -> list[str]:
    codes, todo = set(), [OAuthError]
    while todo:
        cls = todo.pop()
        codes.add(cls.error)
        todo.extend(cls.__subclasses__())
    return sorted(codes)


# -- component schemas ------------------------------------------------------------------------

_CLIENT_PARAMS: dict[str, Schema] = {
    "client_id": _described(_STR, "client_secret_post, or a public client (auth method none); must match HTTP Basic"),
    "client_secret": _described(_STR, "client_secret_post; not together with HTTP Basic"),
}


def _token_request(grant: str, description: str, **params: Schema) -> Schema:
    properties = {
        "grant_type": {"type": "string", "const": grant},
        **params,
        "scope": _described(_SCOPE, "Requested scope; defaults to the client's (refresh_token: the original grant's)"),
        "resource": _described(_array(_URI), "RFC 8707 resource indicators; repeat the parameter for several"),
        **_CLIENT_PARAMS,
    }
    return _object(properties, ["grant_type", *params], description=description)


def _oauth_schemas() -> dict[str, Schema]:
    hint = {"type": "string", "enum": ["access_token", "refresh_token"], "description": "Which kind to try first"}
    return {
        "OAuthError": _object(
            {"error": {"type": "string", "enum": _oauth_error_codes()}, "error_description": _STR},
            ["error"],
            description="RFC 6749 §5.2 / RFC 6750 §3.1 error",
        ),
        "ClientCredentialsRequest": _token_request("client_credentials", "RFC 6749 §4.4; confidential clients only"),
        "PasswordRequest": _token_request(
            "password", "RFC 6749 §4.3; first-party clients allowed it", username=_STR, password=_STR
        ),
        "RefreshTokenRequest": _token_request(
            "refresh_token", "RFC 6749 §6; scope and resource may narrow, never widen", refresh_token=_STR
        ),
        "TokenResponse": _object(
            {
                "access_token": _described(_STR, "RFC 9068 JWT (typ at+jwt)"),
                "token_type": {"type": "string", "enum": ["Bearer"]},
                "expires_in": _INT,
                "scope": _SCOPE,
                "refresh_token": _described(_STR, "password and refresh_token grants; rotated on every use"),
            },
            ["access_token", "token_type", "expires_in"],
        ),
        "TokenHintRequest": _object({"token": _STR, "token_type_hint": hint, **_CLIENT_PARAMS}, ["token"]),
        "Introspection": _object(
            {
                "active": _BOOL,
                "token_type": {"type": "string", "enum": ["Bearer", "refresh_token"]},
                "scope": _SCOPE,
                "client_id": _STR,
                "sub": _STR,
                "aud": {"oneOf": [_STR, _STRINGS]},
                "iss": _URI,
                "iat": _EPOCH,
                "exp": _EPOCH,
                "jti": _STR,
                "roles": _STRINGS,
            },
            ["active"],
            description="RFC 7662 §2.2: just {active: false} for an unknown, expired, revoked or foreign token",
        ),
    }


def _user_schemas() -> dict[str, Schema]:
    return {
        "User": _all_required(
            {
                "user_id": _STR,
                "username": _STR,
                "email": {"type": ["string", "null"], "format": "email"},
                "roles": _STRINGS,
                "effective_roles": _described(_STRINGS, "roles plus every role they imply"),
                "disabled": _BOOL,
                "created_at": _EPOCH,
            }
        ),
        "UserInfo": _object(
            {
                "sub": _STR,
                "preferred_username": _STR,
                "email": {"type": "string", "format": "email"},
                "roles": _STRINGS,
            },
            ["sub", "preferred_username", "roles"],
        ),
        "Registration": _object(
            {
                "username": {
                    "type": "string",
                    "pattern": f"^{USERNAME.pattern}$",
                    "description": "Checked after NFKC normalisation; compared by its NFKC + casefold key",
                },
                "password": _PASSWORD,
                "email": {"type": ["string", "null"], "format": "email", "maxLength": 254},
            },
            ["username", "password"],
            closed=True,
        ),
        "PasswordChange": _object(
            {"current_password": _STR, "new_password": _PASSWORD}, ["current_password", "new_password"]
        ),
        "Deactivation": _object({"password": _STR}, ["password"]),
    }


def _admin_schemas() -> dict[str, Schema]:
    client_fields = {
        "name": {"type": "string", "minLength": 1, "maxLength": 200},
        "grant_types": _GRANT_TYPES,
        "scopes": _STRINGS,
        "audiences": _described(
            _array(_URI),
            "Resource URIs the client's tokens may be issued for: absolute https (http only to a loopback host), "
            "without user info or fragment",
        ),
    }
    key_transition = _all_required(
        {"to": {"type": "string", "enum": ["active", "retired", "removed"]}, "at": _WHEN},
    )
    return {
        "Client": _all_required(
            {
                "client_id": _STR,
                "name": _STR,
                "type": {"type": "string", "enum": ["public", "confidential"]},
                "grant_types": _GRANT_TYPES,
                "scopes": _STRINGS,
                "audiences": _array(_URI),
                "disabled": _described(
                    {"type": "boolean"}, "A disabled client fails authentication and its tokens are refused"
                ),
                "created_at": _EPOCH,
                "updated_at": _EPOCH,
            }
        ),
        "ClientWithSecret": {
            "allOf": [
                _ref("Client"),
                _object({"client_secret": _described(_STR, "Shown only in this response")}, ["client_secret"]),
            ]
        },
        "ClientCreate": _object(
            {**client_fields, "public": {"type": "boolean", "default": False}}, ["name", "grant_types"], closed=True
        ),
        "ClientUpdate": _object(
            {**client_fields, "disabled": {"type": "boolean"}},
            closed=True, description="Only the fields given change; list values are de-duplicated"
        ),
        "SigningKey": _all_required(
            {
                "kid": _STR,
                "alg": _STR,
                "state": {"type": "string", "enum": [s.value for s in KeyState]},
                "created_at": _WHEN,
                "published_at": _WHEN,
                "activated_at": _WHEN,
                "retired_at": _WHEN,
                "revoked_at": _WHEN,
                "next_transition": {"anyOf": [key_transition, {"type": "null"}]},
                "earliest_activation": _described(_WHEN, "Pending keys: when every JWKS cache holds it"),
            }
        ),
        "KeyList": _all_required({"items": _array(_ref("SigningKey"))}),
        "AuditEntry": _all_required(
            {
                "id": _INT,
                "at": _EPOCH,
                "actor": _described(_STR, "sub of the admin token"),
                "action": _STR,
                "target": _STR,
                "detail": {"type": "object"},
                "remote_addr": _STR,
            }
        ),
        "ClientPage": _page_of("Client", {"type": ["string", "null"]}, "after"),
        "UserPage": _page_of("User", {"type": ["string", "null"]}, "after"),
        "AuditPage": _page_of("AuditEntry", {"type": ["integer", "null"]}, "before"),
        "RoleAssignment": _object({"roles": _STRINGS}, ["roles"]),
        "SessionRevocation": _all_required({"revoked_families": _described(_INT, "Refresh-token families revoked")}),
    }


def _discovery_schemas() -> dict[str, Schema]:
    endpoints = ("token", "revocation", "introspection", "userinfo")
    methods = {"type": "array", "items": {"type": "string", "enum": list(AUTH_METHODS)}}
    jwk = _object({m: _STR for m in ("kty", "kid", "use", "alg", "n", "e", "crv", "x", "y")}, ["kty", "kid"])
    return {
        "AuthorizationServerMetadata": _object(
            {
                "issuer": _URI,
                "jwks_uri": _URI,
                **{f"{e}_endpoint": _URI for e in endpoints},
                **{f"{e}_endpoint_auth_methods_supported": methods for e in endpoints[:3]},
                "grant_types_supported": _GRANT_TYPES,
                "response_types_supported": _STRINGS,
                "scopes_supported": _STRINGS,
                "service_documentation": _URI,
            },
            ["issuer", "token_endpoint", "jwks_uri", "response_types_supported"],
            description="RFC 8414 §2",
        ),
        "JsonWebKeySet": _all_required({"keys": _array(jwk)}, description="Pending, active and retired keys"),
        "Health": _all_required({"status": {"const": "ok"}}),
        "Readiness": _all_required(
            {"status": {"const": "ready"}, "checks": {"type": "object", "additionalProperties": _STR}}
        ),
        "Problem": _object(
            {
                "type": _STR,
                "title": _STR,
                "status": _INT,
                "detail": _STR,
                "errors": _described({"type": "object"}, "Per-field messages, or details such as safe_at"),
                "checks": _described({"type": "object", "additionalProperties": _STR}, "readyz: each dependency"),
            },
            ["type", "title", "status"],
            description="RFC 9457 problem details",
        ),
    }


def schemas() -> dict[str, Schema]:
    return {**_oauth_schemas(), **_user_schemas(), **_admin_schemas(), **_discovery_schemas()}


# -- parameters and headers -------------------------------------------------------------------


def _param(name: str, where: str, schema: Schema, description: str) -> Schema:
    return {"name": name, "in": where, "required": where == "path", "schema": schema, "description": description}


_PARAMETERS: dict[str, Schema] = {
    "kid": _param("kid", "path", _STR, "Key id"),
    "client_id": _param("client_id", "path", _STR, "Client id"),
    "user_id": _param("user_id", "path", _STR, "User id"),
    "limit": _param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 500, "default": 100}, "Page size"),
    "after": _param("after", "query", {"type": "string", "maxLength": 256}, "Cursor: `next` of the previous page"),
    "before": _param(
        "before",
        "query",
        {"type": "integer", "minimum": 0, "maximum": 2**63 - 1, "default": 0},
        "Entries older than this id; 0 = newest",
    ),
    "force": _param(
        "force", "query", {"type": "boolean", "default": False}, "Activate the pending key even if not yet safe"
    ),
    "If-None-Match": _param("If-None-Match", "header", _STR, "ETag of a cached JWKS"),
}

_HEADERS: dict[str, Schema] = {
    "WWW-Authenticate": {
        "description": "RFC 6750 §3 Bearer challenge, or a Basic challenge for client authentication",
        "schema": _STR,
    },
    "Retry-After": {"description": "Seconds to wait before retrying", "schema": _INT},
    "ETag": {"description": "Validator of the JWKS document", "schema": _STR},
    "Cache-Control": {"description": "Caching policy (no-store on token and account responses)", "schema": _STR},
}


def _params(*names: str) -> list[Schema]:
    return [_ref(n, "parameters") for n in names]


# -- responses --------------------------------------------------------------------------------

Responses = dict[str, Schema]


def _response(
    description: str, schema: Schema | str | None = None, media: str = JSON, headers: Iterable[str] = ()
) -> Schema:
    response: Schema = {"description": description}
    if headers:
        response["headers"] = {h: _ref(h, "headers") for h in headers}
    if schema is not None:
        response["content"] = {media: {"schema": _ref(schema) if isinstance(schema, str) else schema}}
    return response


def _oauth_error(description: str, *headers: str) -> Schema:
    return _response(description, "OAuthError", JSON, headers)


def _problem(description: str, *headers: str) -> Schema:
    return _response(description, "Problem", PROBLEM, headers)


def _ok(schema: str, description: str = "OK", status: int = 200) -> Responses:
    return {str(status): _response(description, schema, headers=["Cache-Control"])}


def _no_content(description: str, status: int = 204) -> Responses:
    return {str(status): _response(description, headers=["Cache-Control"])}


def _merge(*groups: Responses) -> Responses:
    """Join response maps; one status from several sources lists every body and header."""
    merged: Responses = {}
    for group in groups:
        for status, response in group.items():
            old = merged.get(status)
            if old is None:
                merged[status] = response
                continue
            combined: Schema = {"description": old["description"]}
            if response["description"] not in old["description"]:
                combined["description"] += f"; {response['description']}"
            for part in ("headers", "content"):
                if part in old or part in response:
                    combined[part] = {**old.get(part, {}), **response.get(part, {})}
            merged[status] = combined
    return dict(sorted(merged.items()))


_TOO_LARGE = "Body larger than the configured limit"
# The request middleware refuses an oversized Content-Length on every route, before routing.
_BODY_GUARD: Responses = {"413": _problem(_TOO_LARGE)}
_UNAVAILABLE_TEXT = "The database is unavailable for now; retry after Retry-After seconds"
# Every operation that reads the database answers 503 while it is down (issuer.errors.ServiceUnavailable).
_UNAVAILABLE: Responses = {"503": _problem(_UNAVAILABLE_TEXT, "Retry-After")}
_CLIENT_AUTH: Responses = {
    "400": _oauth_error("invalid_request: not a UTF-8 form, or a parameter missing or repeated"),
    "401": _oauth_error("invalid_client: client authentication failed", "WWW-Authenticate"),
    "413": _oauth_error(_TOO_LARGE),
    "503": _oauth_error(f"temporarily_unavailable: {_UNAVAILABLE_TEXT}", "Retry-After"),
}
_JSON_BODY: Responses = {
    "400": _problem("The body is not a JSON object, or is nested more than 32 levels deep"),
    "413": _problem(_TOO_LARGE),
    "415": _problem("The body is not application/json"),
}
_RATE_LIMITED: Responses = {"429": _oauth_error("temporarily_unavailable: too many attempts", "Retry-After")}
_HASH_BUDGET_SPENT: Responses = {"503": _problem("The password-hash budget is spent; retry later", "Retry-After")}


def _bearer_errors(scope: str | None = None) -> Responses:
    errors = {
        "400": _oauth_error("invalid_request: Authorization does not use the Bearer scheme", "WWW-Authenticate"),
        "401": _oauth_error(
            "invalid_token: missing, invalid, expired or revoked access token, one not meant for this issuer, "
            "or one whose client or user was deleted or disabled",
            "WWW-Authenticate",
        ),
    }
    if scope:
        errors["403"] = _oauth_error(
            f"insufficient_scope: the token lacks {scope}, or its client or user no longer holds that power",
            "WWW-Authenticate",
        )
    return errors


def _not_found(what: str) -> Responses:
    return {"404": _problem(f"No such {what}")}


def _invalid(description: str) -> Responses:
    return {"422": _problem(description)}


def _bad_query(description: str) -> Responses:
    return {"400": _problem(description)}


# -- operations -------------------------------------------------------------------------------

_CLIENT_SECURITY: list[dict[str, list[str]]] = [
    {"clientBasic": []},
    {},
]  # {}: client_secret_post or a public client's client_id in the body
_USER_SECURITY: list[dict[str, list[str]]] = [{"bearer": []}]
_ADMIN_SECURITY = [{"bearer": [ADMIN_SCOPE]}]
_ADMIN_ERRORS = _merge(_bearer_errors(ADMIN_SCOPE), _UNAVAILABLE)


def _operation(
    handler: Handler,
    summary: str,
    tag: str,
    *responses: Responses,
    suffix: str = "",
    security: list[Schema] | None = None,
    body: Schema | None = None,
    parameters: Iterable[str] = (),
    description: str | None = None,
) -> Schema:
    operation: Schema = {"operationId": handler.__name__ + suffix, "summary": summary, "tags": [tag]}
    if description:
        operation["description"] = description
    if security is not None:
        operation["security"] = security
    if parameters:
        operation["parameters"] = _params(*parameters)
    if body is not None:
        operation["requestBody"] = body
    operation["responses"] = _merge(*responses, _BODY_GUARD)
    return operation


def _admin_op(handler: Handler, summary: str, *responses: Responses, **kwargs: Any) -> Schema:
    return _operation(handler, summary, "admin", *responses, _ADMIN_ERRORS, security=_ADMIN_SECURITY, **kwargs)


def _body(schema: Schema | str, media: str = JSON, **encoding: Schema) -> Schema:
    content: Schema = {"schema": _ref(schema) if isinstance(schema, str) else schema}
    if encoding:
        content["encoding"] = encoding
    return {"required": True, "content": {media: content}}


def _token_body() -> Schema:
    grants = {
        "client_credentials": "ClientCredentialsRequest",
        "password": "PasswordRequest",
        "refresh_token": "RefreshTokenRequest",
    }
    schema = {
        "oneOf": [_ref(name) for name in grants.values()],
        "discriminator": {
            "propertyName": "grant_type",
            "mapping": {g: f"#/components/schemas/{n}" for g, n in grants.items()},
        },
    }
    return _body(schema, FORM, resource={"style": "form", "explode": True})


def _item(path: str, **operations: Schema) -> tuple[str, Schema]:
    """A path item; its {name} segments reference the component parameter of that name."""
    item: Schema = dict(operations)
    names = re.findall(r"{(\w+)}", path)
    if names:
        item["parameters"] = _params(*names)
    return path, item


def _discovery_paths() -> list[tuple[str, Schema]]:
    def metadata(suffix: str, summary: str) -> Schema:
        return _operation(
            discovery.oauth_metadata, summary, "discovery", _ok("AuthorizationServerMetadata"), suffix=suffix
        )

    jwks = _operation(
        discovery.jwks,
        "Public signing keys (pending, active, retired)",
        "discovery",
        {
            "200": _response("JWK Set", "JsonWebKeySet", "application/jwk-set+json", ["ETag", "Cache-Control"]),
            "304": _response("Not modified: If-None-Match names the current ETag", headers=["ETag", "Cache-Control"]),
        },
        parameters=["If-None-Match"],
    )
    return [
        _item("/.well-known/oauth-authorization-server", get=metadata("", "Authorization server metadata (RFC 8414)")),
        _item(
            "/.well-known/openid-configuration",
            get=metadata("_openid", "The same metadata at the OIDC Discovery location"),
        ),
        _item("/.well-known/jwks.json", get=jwks),
    ]


def _oauth_paths() -> list[tuple[str, Schema]]:
    def client_op(handler: Handler, summary: str, body: Schema, *responses: Responses, **kwargs: Any) -> Schema:
        return _operation(
            handler, summary, "oauth", *responses, _CLIENT_AUTH, security=_CLIENT_SECURITY, body=body, **kwargs
        )

    token_op = client_op(
        token.token,
        "Token endpoint (RFC 6749 §3.2)",
        _token_body(),
        _ok("TokenResponse", "Tokens issued"),
        {
            "400": _oauth_error(
                "unsupported_grant_type, unauthorized_client, invalid_grant, invalid_scope or invalid_target"
            )
        },
        _RATE_LIMITED,
        {"503": _oauth_error("temporarily_unavailable: the password-hash budget is spent", "Retry-After")},
    )
    revoke = client_op(
        oauth.revoke,
        "Revoke a token (RFC 7009); a refresh token revokes its whole family",
        _body("TokenHintRequest", FORM),
        _no_content("Revoked, or unknown / not this client's (no difference is revealed)", 200),
    )
    introspect = client_op(
        oauth.introspect,
        "Introspect a token (RFC 7662)",
        _body("TokenHintRequest", FORM),
        _ok("Introspection", "Token state"),
        {"401": _oauth_error("invalid_client: unknown, disabled or public client, or wrong secret")},
        description="Confidential clients only: client_secret_basic or client_secret_post. An access token is "
        "described only to a caller registered with an audience the token names, or with the scope "
        "issuer:introspect (RFC 7662 §4); otherwise, and for a token whose client or user was deleted or "
        "disabled, the answer is {\"active\": false}.",
    )
    return [
        _item("/oauth2/token", post=token_op),
        _item("/oauth2/revoke", post=revoke),
        _item("/oauth2/introspect", post=introspect),
    ]


def _account_paths() -> list[tuple[str, Schema]]:
    not_active = {"401": _oauth_error("invalid_token: the token does not belong to an active user", "WWW-Authenticate")}

    def user_op(handler: Handler, summary: str, *responses: Responses, **kwargs: Any) -> Schema:
        return _operation(
            handler, summary, "account", *responses, _bearer_errors(), not_active, security=_USER_SECURITY, **kwargs
        )

    def account_action(handler: Handler, summary: str, body: str, field: str) -> Schema:
        return user_op(
            handler,
            summary,
            _no_content("Done"),
            _JSON_BODY,
            _invalid(f"Invalid fields (errors names them; a wrong {field} too)"),
            _RATE_LIMITED,
            _HASH_BUDGET_SPENT,
            _UNAVAILABLE,
            body=_body(body),
        )

    def userinfo(suffix: str) -> Schema:
        return user_op(
            users.userinfo,
            "Claims about the signed-in user",
            _ok("UserInfo"),
            _UNAVAILABLE,
            suffix=suffix,
            description="A user's access token whose aud names this issuer, or that carries the openid scope "
            "(OIDC Core §5.3).",
        )

    register = _operation(
        users.register,
        "Self-service registration (when open_registration is on)",
        "account",
        _ok("User", "Registered", 201),
        _JSON_BODY,
        {"403": _problem("Registration is closed")},
        {"409": _problem("Username already taken (emails are not unique, so never a conflict)")},
        _invalid("Invalid or unknown fields, or a password the policy refuses (errors names them)"),
        {"429": _problem("Too many registrations from this address or in total", "Retry-After")},
        _HASH_BUDGET_SPENT,
        _UNAVAILABLE,
        body=_body("Registration"),
    )
    return [
        _item("/userinfo", get=userinfo("_get"), post=userinfo("_post")),
        _item("/register", post=register),
        _item(
            "/account/password",
            post=account_action(users.change_password, "Change password", "PasswordChange", "current_password"),
        ),
        _item(
            "/account/deactivate",
            post=account_action(users.deactivate, "Deactivate own account", "Deactivation", "password"),
        ),
    ]


def _admin_paths() -> list[tuple[str, Schema]]:
    keys = _ok("KeyList", "Every key after the change")
    page_errors = _bad_query("limit is not 1 to 500, or after is too long or contains a NUL")
    busy = {"409": _problem("Another key change won the race; retry after Retry-After seconds", "Retry-After")}
    client_body_errors = (_JSON_BODY, _invalid("Invalid client fields"))
    user_change = (_ok("User", "The updated user"), _not_found("user"))
    rotate = _admin_op(
        admin.rotate_keys,
        "Activate the pending key (retiring the active one)",
        keys,
        _bad_query("force is not true or false"),
        {"409": _problem("The pending key is not yet in every JWKS cache (errors.safe_at)", "Retry-After")},
        busy,
        parameters=["force"],
    )
    create = _admin_op(
        admin.create_client,
        "Register a client",
        {
            "201": _response(
                "Created; confidential clients get their client_secret once",
                {"anyOf": [_ref("ClientWithSecret"), _ref("Client")]},
                headers=["Cache-Control"],
            )
        },
        *client_body_errors,
        body=_body("ClientCreate"),
    )
    return [
        _item("/admin/keys", get=_admin_op(admin.list_keys, "Signing keys and their schedule", _ok("KeyList"))),
        _item("/admin/keys/rotate", post=rotate),
        _item(
            "/admin/keys/{kid}/revoke",
            post=_admin_op(
                admin.revoke_key, "Revoke a key (unpublished at once)", keys, _not_found("published key"), busy
            ),
        ),
        _item(
            "/admin/clients",
            get=_admin_op(
                admin.list_clients, "List clients", _ok("ClientPage"), page_errors, parameters=["limit", "after"]
            ),
            post=create,
        ),
        _item(
            "/admin/clients/{client_id}",
            get=_admin_op(admin.get_client, "Get a client", _ok("Client"), _not_found("client")),
            patch=_admin_op(
                admin.update_client,
                "Change a client",
                _ok("Client", "The updated client"),
                _not_found("client"),
                *client_body_errors,
                body=_body("ClientUpdate"),
            ),
            delete=_admin_op(admin.delete_client, "Delete a client", _no_content("Deleted"), _not_found("client")),
        ),
        _item(
            "/admin/clients/{client_id}/secret",
            post=_admin_op(
                admin.rotate_client_secret,
                "Issue a new client secret (the old one stops working)",
                _ok("ClientWithSecret", "The client with its new secret"),
                _not_found("client"),
                _invalid("A public client has no secret"),
            ),
        ),
        _item(
            "/admin/users",
            get=_admin_op(admin.list_users, "List users", _ok("UserPage"), page_errors, parameters=["limit", "after"]),
        ),
        _item("/admin/users/{user_id}", get=_admin_op(admin.get_user, "Get a user", _ok("User"), _not_found("user"))),
        _item(
            "/admin/users/{user_id}/roles",
            put=_admin_op(
                admin.set_user_roles,
                "Replace a user's roles",
                *user_change,
                _JSON_BODY,
                _invalid("roles is not a list of known roles"),
                body=_body("RoleAssignment"),
            ),
        ),
        _item("/admin/users/{user_id}/disable", post=_admin_op(admin.disable_user, "Disable a user", *user_change)),
        _item("/admin/users/{user_id}/enable", post=_admin_op(admin.enable_user, "Enable a user", *user_change)),
        _item(
            "/admin/users/{user_id}/sessions/revoke",
            post=_admin_op(
                admin.revoke_user_sessions,
                "Revoke every refresh-token family of a user",
                _ok("SessionRevocation"),
                _not_found("user"),
            ),
        ),
        _item(
            "/admin/audit",
            get=_admin_op(
                admin.list_audit,
                "Audit log, newest first",
                _ok("AuditPage"),
                _bad_query("limit is not 1 to 500, or before is not an entry id (0 to 2**63-1)"),
                parameters=["limit", "before"],
            ),
        ),
    ]


def _operations_paths() -> list[tuple[str, Schema]]:
    readyz = _operation(
        discovery.readyz,
        "Database reachable (Redis, when configured, is reported as ok or degraded, never gating)",
        "operations",
        _ok("Readiness", "Ready"),
        {"503": _problem("The database is unreachable (checks names each dependency)")},
    )
    metrics = _operation(
        discovery.metrics,
        "Prometheus metrics",
        "operations",
        {"200": _response("Prometheus text exposition format", _STR, "text/plain", ["Cache-Control"])},
    )
    openapi = _operation(
        openapi_endpoint, "This document", "operations", {"200": _response("OpenAPI 3.1", {"type": "object"})}
    )
    return [
        _item("/healthz", get=_operation(discovery.healthz, "Process is up", "operations", _ok("Health", "Up"))),
        _item("/readyz", get=readyz),
        _item("/metrics", get=metrics),
        _item("/openapi.json", get=openapi),
    ]


def paths() -> dict[str, Schema]:
    return dict(_discovery_paths() + _oauth_paths() + _account_paths() + _admin_paths() + _operations_paths())


_TAGS = {
    "discovery": "Metadata and public keys",
    "oauth": "Client-authenticated OAuth 2.0 endpoints",
    "account": "End users: registration, userinfo and their own account",
    "admin": f"Management API; bearer token with scope {ADMIN_SCOPE}",
    "operations": "Health, readiness, metrics and this document",
}


def document(issuer_url: str) -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "issuer", "version": "0.1.0", "description": "OAuth 2.0 token issuer"},
        "servers": [{"url": issuer_url}],
        "tags": [{"name": name, "description": text} for name, text in _TAGS.items()],
        "paths": paths(),
        "components": {
            "schemas": schemas(),
            "parameters": _PARAMETERS,
            "headers": _HEADERS,
            "securitySchemes": {
                "clientBasic": {"type": "http", "scheme": "basic", "description": "client_secret_basic"},
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "RFC 9068 access token from this issuer",
                },
            },
        },
    }


async def openapi_endpoint(request: Request) -> Response:
    services: Services = request.state.services
    return json_response(document(services.settings.url))
