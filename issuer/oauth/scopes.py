"""Scope strings (RFC 6749 §3.3) and resource indicators (RFC 8707 §2).

Two scopes belong to the issuer itself: ``issuer:admin`` (the management API under /admin)
and ``issuer:introspect`` (registered on a client: it may introspect any access token).
"""

from __future__ import annotations

import re

from issuer.errors import InvalidScope, InvalidTarget
from issuer.oauth.uris import is_https_uri, uri_problem

ADMIN_SCOPE = "issuer:admin"
INTROSPECT_SCOPE = "issuer:introspect"

# Scopes in this namespace are the issuer's own powers, granted by registration and role, not
# something a client should discover and ask for.
ISSUER_NAMESPACE = "issuer:"

_SCOPE_TOKEN = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]+$")


def is_scope_token(value: str) -> bool:
    return bool(_SCOPE_TOKEN.match(value))


def advertised_scopes(registered: list[str]) -> list[str]:
    """RFC 8414 ``scopes_supported``: what enabled clients may ask for, minus the issuer's own."""
    return [s for s in registered if not s.startswith(ISSUER_NAMESPACE)]


def parse_scope(value: str | None) -> tuple[str, ...] | None:
    """None when absent; the ordered, de-duplicated tokens otherwise."""
    if value is None:
        return None
    tokens = value.split(" ")
    if not value or any(not is_scope_token(t) for t in tokens):
        raise InvalidScope('scope must be space-separated tokens of printable ASCII without " or \\')
    return tuple(dict.fromkeys(tokens))


def grant_scope(requested: tuple[str, ...] | None, allowed: tuple[str, ...]) -> tuple[str, ...]:
    """The requested scope if wholly allowed; everything allowed if none was requested."""
    if requested is None:
        return allowed
    refused = [s for s in requested if s not in allowed]
    if refused:
        raise InvalidScope(f"scope not allowed for this client: {' '.join(refused)}")
    return requested


def is_resource_uri(value: str) -> bool:
    return is_https_uri(value)


def grant_audience(resources: list[str], allowed: tuple[str, ...], issuer: str) -> tuple[str, ...]:
    """RFC 8707: each ``resource`` must be an absolute URI (issuer.oauth.uris) that the client may
    address. The issuer itself is always addressable: its own endpoints enforce their own rules
    (audience, scope, and the principal's standing), so naming it grants nothing by itself."""
    if not resources:
        return (allowed[0],) if allowed else (issuer,)
    for resource in resources:
        if resource == issuer:
            continue
        if not is_resource_uri(resource):
            raise InvalidTarget(f"resource {uri_problem(resource)}")
        if resource not in allowed:
            raise InvalidTarget("resource not allowed for this client")
    return tuple(dict.fromkeys(resources))


def settle_admin_scope(
    scope: tuple[str, ...],
    audience: tuple[str, ...],
    *,
    issuer: str,
    explicit: bool,
    audience_chosen: bool,
    may_administer: bool,
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``issuer:admin`` only for a principal allowed it, and only in a token meant for us alone,
    so no resource server ever holds a token it could replay at /admin.

    Asked for explicitly, a refusal is an error; when it came with the client's default scope it
    is left out (RFC 6749 §3.3 lets us narrow, and the response's ``scope`` says so). Without a
    chosen ``resource``, a token carrying it is minted for the issuer only."""
    if ADMIN_SCOPE not in scope:
        return scope, audience
    narrowed = tuple(s for s in scope if s != ADMIN_SCOPE)
    if not may_administer:
        if explicit:
            raise InvalidScope(f"{ADMIN_SCOPE} requires the administrator role")
        return narrowed, audience
    if audience_chosen and audience != (issuer,):
        if explicit:
            raise InvalidTarget(f"a token with {ADMIN_SCOPE} is for this issuer only; ask for no other resource")
        return narrowed, audience
    return scope, (issuer,)
