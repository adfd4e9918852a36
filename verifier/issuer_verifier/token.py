"""RFC 9068 access-token checks: the JOSE header before any key is looked up, the claims after
the signature. Every refusal is an ``InvalidToken`` naming what failed."""

from __future__ import annotations

import json
import math
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jws import CompactSignature

from issuer_verifier.errors import InsufficientScope, InvalidToken

MAX_TOKEN_BYTES = 16384
MAX_TIME = 253402300799  # 9999-12-31T23:59:59Z: a NumericDate beyond is refused, not an overflow
# RFC 9068 §2.2: the claims an access token always carries
REQUIRED_CLAIMS = ("iss", "sub", "aud", "exp", "iat", "jti", "client_id")
ACCESS_TOKEN_TYPES = ("at+jwt", "application/at+jwt")  # RFC 9068 §4: compared case-insensitively


@dataclass(frozen=True)
class AccessToken:
    """A verified access token. ``roles`` are the effective roles (a manager also holds ``user``)."""

    subject: str
    client_id: str
    scopes: frozenset[str]
    roles: frozenset[str]
    audiences: tuple[str, ...]
    expires_at: int
    issued_at: int
    token_id: str
    kid: str
    claims: Mapping[str, Any] = field(repr=False)

    def require(self, *, scopes: Iterable[str] = (), roles: Iterable[str] = ()) -> None:
        """Raise InsufficientScope unless the token holds every one of ``scopes`` and ``roles``."""
        scopes, roles = tuple(scopes), tuple(roles)
        missing_scopes = [s for s in scopes if s not in self.scopes]
        if missing_scopes:
            raise InsufficientScope(
                f"token lacks scope {' '.join(missing_scopes)} (sub {self.subject})",
                reason="missing_scope",
                scope=scopes,
            )
        missing_roles = [r for r in roles if r not in self.roles]
        if missing_roles:
            raise InsufficientScope(
                f"token lacks role {' '.join(missing_roles)} (sub {self.subject})", reason="missing_role", scope=scopes
            )


@dataclass(frozen=True)
class Header:
    kid: str
    alg: str
    signed: CompactSignature  # parsed once; the signature is checked against it


def read_header(token: str, algorithms: Collection[str]) -> Header:
    """Check the protected header without trusting it yet: shape, ``typ``, ``alg``, ``kid``."""
    if len(token) > MAX_TOKEN_BYTES or token.count(".") != 2:
        raise InvalidToken("not a compact JWS", reason="malformed")
    try:
        signed = jws.extract_compact(token.encode("ascii"))
    except (JoseError, ValueError, TypeError, UnicodeError) as exc:
        raise InvalidToken("the token is not base64url JSON segments", reason="malformed") from exc
    header = signed.protected
    if not isinstance(header, dict):
        raise InvalidToken("the token header is not a JSON object", reason="malformed")
    typ = header.get("typ")
    if not isinstance(typ, str) or typ.lower() not in ACCESS_TOKEN_TYPES:
        raise InvalidToken(
            f"typ {_shown(typ)} is not an access token (want at+jwt; an ID token is typ JWT)", reason="typ"
        )
    alg, kid = header.get("alg"), header.get("kid")
    if not isinstance(alg, str) or alg not in algorithms:
        raise InvalidToken(
            f"algorithm {_shown(alg)} is not allowed (allowed: {', '.join(sorted(algorithms))})", reason="alg"
        )
    if not isinstance(kid, str) or not kid:
        raise InvalidToken("the token header has no kid", reason="malformed")
    if "crit" in header:
        raise InvalidToken("the token header has critical extensions we do not understand", reason="malformed")
    return Header(kid, alg, signed)


def _shown(value: Any, limit: int = 80) -> str:
    """An untrusted value for a log message: repr (control characters escaped), cut short."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _when(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_claims(payload: bytes) -> Any:
    """The signed payload as JSON: no ``NaN``/``Infinity``, no nesting deep enough to exhaust the stack."""
    try:
        return json.loads(payload, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        raise InvalidToken("the token payload is not JSON", reason="malformed") from exc


def _number(claims: Mapping[str, Any], name: str) -> int | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidToken(f"claim {name} is not a number", reason="claims")
    if (isinstance(value, float) and not math.isfinite(value)) or not 0 <= value <= MAX_TIME:
        raise InvalidToken(f"claim {name} is out of range", reason="claims")
    return int(value)


def _strings(value: Any, name: str, *, one: bool = False) -> tuple[str, ...]:
    """A list of strings (or, with ``one``, also a single string, as ``aud`` may be)."""
    if value is None:
        return ()
    items = [value] if one and isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise InvalidToken(f"claim {name} is not a list of strings", reason="claims")
    return tuple(items)


@dataclass(frozen=True)
class ClaimRules:
    issuer: str
    audiences: frozenset[str]
    leeway: float
    required: tuple[str, ...]


def check_claims(claims: Any, kid: str, rules: ClaimRules, now: float) -> AccessToken:
    """``iss``, ``aud``, ``exp``/``nbf``/``iat`` (with ``leeway``), required claims and their types."""
    if not isinstance(claims, dict):
        raise InvalidToken("the token payload is not a JSON object", reason="malformed")
    missing = [c for c in rules.required if claims.get(c) is None]
    if missing:
        raise InvalidToken(f"token lacks required claim {', '.join(missing)}", reason="claims")
    if claims.get("iss") != rules.issuer:
        raise InvalidToken(f"token issued by {_shown(claims.get('iss'))}, not {rules.issuer!r}", reason="issuer")
    audiences = _strings(claims.get("aud"), "aud", one=True)
    if not rules.audiences.intersection(audiences):
        raise InvalidToken(f"token is for {_shown(', '.join(audiences))}, not for this API", reason="audience")
    exp, nbf, iat = _number(claims, "exp"), _number(claims, "nbf"), _number(claims, "iat")
    if exp is not None and now >= exp + rules.leeway:
        raise InvalidToken(f"token expired at {_when(exp)}", reason="expired")
    if nbf is not None and now + rules.leeway < nbf:
        raise InvalidToken(f"token not valid before {_when(nbf)}", reason="not_yet_valid")
    if iat is not None and now + rules.leeway < iat:
        raise InvalidToken(f"token issued in the future ({_when(iat)})", reason="not_yet_valid")
    for name in ("sub", "client_id", "jti", "scope"):
        if claims.get(name) is not None and not isinstance(claims[name], str):
            raise InvalidToken(f"claim {name} is not a string", reason="claims")
    return AccessToken(
        subject=claims.get("sub", ""),
        client_id=claims.get("client_id", ""),
        scopes=frozenset(claims.get("scope", "").split()),
        roles=frozenset(_strings(claims.get("roles"), "roles")),
        audiences=audiences,
        expires_at=exp or 0,
        issued_at=iat or 0,
        token_id=claims.get("jti", ""),
        kid=kid,
        claims=claims,
    )
