"""RFC 6750 §3.1 errors: one class per case, each with its status and ``WWW-Authenticate`` header.

Messages name what failed (a claim, a kid, a time) and never contain the token, so they can be logged.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_UNSAFE = re.compile(r"[^\x20\x21\x23-\x5b\x5d-\x7e]")  # RFC 6750 §3: no '"', no '\\', printable ASCII


def _quoted(value: str) -> str:
    return _UNSAFE.sub("?", value)


class BearerError(Exception):
    """A request the resource server refuses. ``reason`` is a short stable code for logs and metrics."""

    error: str | None = None
    status_code = 401

    def __init__(self, description: str, *, reason: str = "", scope: Iterable[str] = ()) -> None:
        super().__init__(description)
        self.description = description
        self.reason = reason or (self.error or "missing_token")
        self.scope = tuple(scope)

    def www_authenticate(self, realm: str | None = None) -> str:
        """The ``WWW-Authenticate`` challenge for this refusal."""
        params = [f'realm="{_quoted(realm)}"'] if realm else []
        if self.error is not None:
            params.append(f'error="{self.error}"')
            params.append(f'error_description="{_quoted(self.description)}"')
        if self.scope:
            params.append(f'scope="{_quoted(" ".join(self.scope))}"')
        return "Bearer" + (" " + ", ".join(params) if params else "")


class MissingToken(BearerError):
    """No bearer token at all: 401 with a bare challenge (RFC 6750 §3.1 says no error code)."""


class InvalidRequest(BearerError):
    """The ``Authorization`` header is malformed (400)."""

    error = "invalid_request"
    status_code = 400


class InvalidToken(BearerError):
    """Expired, not for us, badly signed, not an access token, unknown key… (401)."""

    error = "invalid_token"


class InsufficientScope(BearerError):
    """A valid token without the scope or role the route requires (403)."""

    error = "insufficient_scope"
    status_code = 403


class IssuerUnavailable(Exception):
    """The issuer's metadata or keys could not be fetched and no usable cached copy is left.
    Not the client's fault: integrations answer 503."""
