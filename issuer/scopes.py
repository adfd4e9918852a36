"""Scope strings (RFC 6749 §3.3) and resource indicators (RFC 8707 §2)."""

from __future__ import annotations

import re

from issuer.errors import InvalidScope, InvalidTarget
from issuer.uris import is_https_uri, uri_problem

_SCOPE_TOKEN = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]+$")


def is_scope_token(value: str) -> bool:
    return bool(_SCOPE_TOKEN.match(value))


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


def grant_audience(resources: list[str], allowed: tuple[str, ...], default: str) -> tuple[str, ...]:
    """RFC 8707: each ``resource`` must be an absolute URI (issuer.uris) that the client may address."""
    if not resources:
        return (allowed[0],) if allowed else (default,)
    for resource in resources:
        if not is_resource_uri(resource):
            raise InvalidTarget(f"resource {uri_problem(resource)}")
        if resource not in allowed:
            raise InvalidTarget("resource not allowed for this client")
    return tuple(dict.fromkeys(resources))
