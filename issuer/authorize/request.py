"""The authorization request (RFC 6749 §4.1.1, RFC 7636, OIDC Core §3.1.2.1), checked in two phases.

Phase 1 establishes the client and the redirect URI; until both are known good an error is shown on
our own page (``ShowError``) and never redirected, so we are no open redirector. After that, errors
go back to the client (``RedirectError``) with ``state`` and ``iss`` (RFC 9207).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from issuer.errors import InvalidRequest, InvalidScope, InvalidTarget
from issuer.models import Client
from issuer.oauth.clients import MAX_CLIENT_ID, ClientRegistry
from issuer.oauth.params import Params
from issuer.oauth.scopes import grant_audience, parse_scope

OIDC_SCOPES = ("openid", "profile", "email")
PROMPTS = frozenset({"none", "login", "consent"})
_CODE_CHALLENGE = re.compile(r"^[A-Za-z0-9_-]{43}$")
_MAX_STATE = 2048
_MAX_NONCE = 512
_MAX_HINT = 256


class ShowError(Exception):
    """Shown on the issuer's error page; the browser is not sent back to the client."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


class RedirectError(Exception):
    """Sent back to the client's (verified) redirect URI: see ``error_redirect``."""

    def __init__(self, error: str, description: str, redirect_uri: str, state: str | None) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.redirect_uri = redirect_uri
        self.state = state

    def location(self, issuer: str) -> str:
        return error_redirect(self.redirect_uri, self.error, self.description, self.state, issuer)


@dataclass(frozen=True)
class AuthorizationRequest:
    client: Client
    redirect_uri: str
    scope: tuple[str, ...]
    state: str | None
    nonce: str | None
    code_challenge: str
    prompt: frozenset[str] = frozenset()
    max_age: int | None = None
    login_hint: str | None = None
    resources: tuple[str, ...] = ()
    # The audience the tokens will carry (RFC 8707, the token endpoint's rule over ``resources``).
    audience: tuple[str, ...] = field(default=())

    @property
    def is_openid(self) -> bool:
        return "openid" in self.scope


def _loopback_ip(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def redirect_uri_matches(registered: tuple[str, ...], given: str) -> bool:
    """Exact string match; for an ``http`` loopback IP literal, any port (RFC 8252 §7.3)."""
    if given in registered:
        return True
    try:
        parts = urlsplit(given)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        return False
    if parts.scheme != "http" or not _loopback_ip(parts.hostname or "") or "#" in given or "@" in parts.netloc:
        return False
    for uri in registered:
        reg = urlsplit(uri)
        if (
            reg.scheme == "http"
            and reg.hostname == parts.hostname
            and (reg.path, reg.query) == (parts.path, parts.query)
        ):
            return True
    return False


def append_query(uri: str, values: dict[str, str]) -> str:
    parts = urlsplit(uri)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(values.items())
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))


def error_redirect(redirect_uri: str, error: str, description: str, state: str | None, issuer: str) -> str:
    values = {"error": error, "error_description": description}
    if state is not None:
        values["state"] = state
    values["iss"] = issuer
    return append_query(redirect_uri, values)


def code_redirect(request: AuthorizationRequest, code: str, issuer: str) -> str:
    values = {"code": code}
    if request.state is not None:
        values["state"] = request.state
    values["iss"] = issuer
    return append_query(request.redirect_uri, values)


def read_params(pairs: Iterable[tuple[str, str]]) -> Params:
    """The authorization (or end-session) request's parameters; a repeated one is shown, not redirected."""
    try:
        return Params(pairs)
    except InvalidRequest as exc:
        raise ShowError("invalid_request", exc.description) from None


async def _phase_one(params: Params, clients: ClientRegistry) -> tuple[Client, str]:
    client_id = params.get("client_id")
    if client_id is None:
        raise ShowError("invalid_request", "missing parameter: client_id")
    client = await clients.get(client_id) if len(client_id) <= MAX_CLIENT_ID else None
    if client is None or client.disabled:
        raise ShowError("invalid_client", "unknown client")
    redirect_uri = params.get("redirect_uri")
    if redirect_uri is None:
        raise ShowError("invalid_request", "missing parameter: redirect_uri")
    if not redirect_uri_matches(client.redirect_uris, redirect_uri):
        raise ShowError("invalid_request", "redirect_uri is not registered for this client")
    return client, redirect_uri


async def parse_authorization_request(params: Params, clients: ClientRegistry, issuer: str) -> AuthorizationRequest:
    """Raises ShowError (phase 1) or RedirectError (after). ``params`` may come from the query
    (GET) or the form body (POST)."""
    client, redirect_uri = await _phase_one(params, clients)
    state = params.get("state")
    if state is not None and len(state) > _MAX_STATE:
        state = None  # not echoed back: the error below says why

    def refuse(error: str, description: str) -> RedirectError:
        return RedirectError(error, description, redirect_uri, state)

    if params.get("state") is not None and state is None:
        raise refuse("invalid_request", f"state is longer than {_MAX_STATE} characters")
    if "authorization_code" not in client.grant_types:
        raise refuse("unauthorized_client", "this client may not use the authorization code flow")
    for name, error in (("request", "request_not_supported"), ("request_uri", "request_uri_not_supported")):
        if name in params:
            raise refuse(error, f"the {name} parameter is not supported")
    if "registration" in params:
        raise refuse("registration_not_supported", "the registration parameter is not supported")
    response_type = params.get("response_type")
    if response_type is None:
        raise refuse("invalid_request", "missing parameter: response_type")
    if response_type != "code":
        raise refuse("unsupported_response_type", "only response_type=code is supported")
    if params.get("response_mode") not in (None, "query"):
        raise refuse("invalid_request", "only response_mode=query is supported")
    challenge, method = params.get("code_challenge"), params.get("code_challenge_method")
    if challenge is None:
        raise refuse("invalid_request", "PKCE is required: code_challenge with code_challenge_method=S256")
    if method != "S256":
        raise refuse("invalid_request", "code_challenge_method must be S256")
    if not _CODE_CHALLENGE.match(challenge):
        raise refuse("invalid_request", "code_challenge must be the 43-character base64url SHA-256 of the verifier")
    try:
        requested = parse_scope(params.get("scope"))
    except InvalidScope as exc:
        raise refuse("invalid_scope", exc.description) from None
    allowed = OIDC_SCOPES + tuple(s for s in client.scopes if s not in OIDC_SCOPES)
    scope = requested if requested is not None else client.scopes
    refused = [s for s in scope if s not in allowed]
    if refused:
        raise refuse("invalid_scope", f"scope not allowed for this client: {' '.join(refused)[:200]}")
    prompt = frozenset((params.get("prompt") or "").split())
    if prompt - PROMPTS:
        raise refuse("invalid_request", "prompt may be none, login or consent")
    if "none" in prompt and len(prompt) > 1:
        raise refuse("invalid_request", "prompt=none cannot be combined with other values")
    max_age = _max_age(params.get("max_age"))
    if max_age == -1:
        raise refuse("invalid_request", "max_age must be a non-negative integer")
    nonce, hint = params.get("nonce"), params.get("login_hint")
    if nonce is not None and len(nonce) > _MAX_NONCE:
        raise refuse("invalid_request", f"nonce is longer than {_MAX_NONCE} characters")
    if hint is not None and len(hint) > _MAX_HINT:
        hint = None  # only a hint
    resources = tuple(dict.fromkeys(params.all("resource")))
    try:
        audience = grant_audience(list(resources), client.audiences, issuer)
    except InvalidTarget as exc:
        raise refuse("invalid_target", exc.description) from None
    return AuthorizationRequest(
        client=client,
        redirect_uri=redirect_uri,
        scope=scope,
        state=state,
        nonce=nonce,
        code_challenge=challenge,
        prompt=prompt,
        max_age=max_age,
        login_hint=hint,
        resources=resources,
        audience=audience,
    )


def _max_age(value: str | None) -> int | None:
    if value is None:
        return None
    if not value.isdigit() or not value.isascii() or len(value) > 10:
        return -1
    return int(value)
