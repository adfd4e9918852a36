"""Typed errors, raised deep and rendered once (issuer.http.responses).

``OAuthError`` subclasses are the RFC 6749 §5.2 / RFC 6750 §3.1 / RFC 8707 codes;
``ProblemError`` is everything else, rendered as RFC 9457 problem details.
"""

from __future__ import annotations

from typing import Any, ClassVar


class OAuthError(Exception):
    error: ClassVar[str] = "invalid_request"
    status_code: ClassVar[int] = 400

    def __init__(self, description: str = "", *, headers: dict[str, str] | None = None) -> None:
        super().__init__(description or self.error)
        self.description = description
        self.headers = headers or {}


class InvalidRequest(OAuthError):
    error = "invalid_request"


class BodyTooLarge(InvalidRequest):
    status_code = 413


class UnsupportedTransferCoding(InvalidRequest):
    """RFC 9112 §6.1: a transfer coding we do not implement (only plain ``chunked`` is)."""

    status_code = 501


class InvalidClient(OAuthError):
    error = "invalid_client"
    status_code = 401


class InvalidGrant(OAuthError):
    error = "invalid_grant"


class UnauthorizedClient(OAuthError):
    error = "unauthorized_client"


class UnsupportedGrantType(OAuthError):
    error = "unsupported_grant_type"


class InvalidScope(OAuthError):
    error = "invalid_scope"


class InvalidTarget(OAuthError):
    error = "invalid_target"


class UnsupportedTokenType(OAuthError):
    error = "unsupported_token_type"


class RateLimited(OAuthError):
    """Too many requests at an OAuth endpoint: 429 in §5.2 form, with Retry-After."""

    error = "temporarily_unavailable"
    status_code = 429

    def __init__(self, retry_after: float) -> None:
        seconds = max(1, int(retry_after + 0.999))
        super().__init__("too many requests; retry later", headers={"Retry-After": str(seconds)})
        self.retry_after = seconds


class TemporarilyUnavailable(OAuthError):
    """RFC 6749 §5.2's ``temporarily_unavailable`` with 503 and Retry-After: the server sheds load."""

    error = "temporarily_unavailable"
    status_code = 503

    def __init__(self, retry_after: int) -> None:
        super().__init__("the server is busy; retry later", headers={"Retry-After": str(retry_after)})


class InvalidToken(OAuthError):
    """RFC 6750 §3.1, for bearer-protected resources."""

    error = "invalid_token"
    status_code = 401


class InsufficientScope(OAuthError):
    error = "insufficient_scope"
    status_code = 403


class ProblemError(Exception):
    """An RFC 9457 problem for the non-OAuth endpoints (registration, admin, account)."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str = "",
        *,
        errors: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail or title)
        self.status = status
        self.title = title
        self.detail = detail
        self.errors = errors
        self.headers = headers or {}


class PasswordsBusy(ProblemError):
    """The password-hash budget is spent: 503 with Retry-After rather than an unbounded queue.
    The token endpoint answers it as ``TemporarilyUnavailable``."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            503, "Service Unavailable", "the server is busy; retry later", headers={"Retry-After": str(retry_after)}
        )
        self.retry_after = retry_after


class ServiceUnavailable(Exception):
    """A dependency is down for now (the database): 503 + Retry-After, in the endpoint's format
    (``temporarily_unavailable`` on /oauth2/*, problem details elsewhere). Nothing internal is shown."""

    retry_after: ClassVar[int] = 5


class ConfigurationError(Exception):
    """The issuer cannot start as configured; the message says what to set."""
