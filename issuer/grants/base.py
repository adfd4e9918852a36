from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from issuer.accounts.users import Users
from issuer.authorize.codes import AuthorizationCodes
from issuer.authorize.consent import Consents
from issuer.authorize.sessions import BrowserSessions
from issuer.cache.limits import RateLimiter
from issuer.models import Client, User
from issuer.oauth.params import Params
from issuer.observability.metrics import Metrics
from issuer.tokens.access import AccessTokens, IssuedToken
from issuer.tokens.id_tokens import IdTokens
from issuer.tokens.refresh import RefreshTokens


@dataclass(frozen=True)
class GrantContext:
    """What grant handlers use, and nothing more (built once with Services)."""

    issuer: str
    access_tokens: AccessTokens
    refresh_tokens: RefreshTokens
    users: Users
    limiter: RateLimiter
    metrics: Metrics
    id_tokens: IdTokens
    codes: AuthorizationCodes
    sessions: BrowserSessions
    consents: Consents
    login_limit_per_user: int
    login_limit_per_ip: int


@dataclass(frozen=True)
class GrantRequest:
    client: Client
    params: Params
    remote_addr: str


Grant = Callable[[GrantContext, GrantRequest], Awaitable[dict[str, Any]]]


def bearer_response(token: str, expires_in: int, scope: tuple[str, ...], **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"access_token": token, "token_type": "Bearer", "expires_in": expires_in}
    if scope:
        body["scope"] = " ".join(scope)
    body.update(extra)
    return body


async def user_access_token(
    services: GrantContext, user: User, client_id: str, scope: tuple[str, ...], audience: tuple[str, ...]
) -> IssuedToken:
    """An access token for ``user`` with her effective roles (as they are now)."""
    roles = services.users.roles.effective(user.roles)
    return await services.access_tokens.mint(
        subject=user.user_id, client_id=client_id, scope=scope, audience=audience, extra={"roles": roles}
    )


async def id_token_field(
    services: GrantContext,
    user: User,
    client_id: str,
    scope: tuple[str, ...],
    access: IssuedToken,
    *,
    auth_time: float,
    sid: str | None,
    nonce: str | None = None,
) -> dict[str, str]:
    """``{"id_token": …}`` for an ``openid`` scope (OIDC Core §3.1.3.3), else nothing."""
    if "openid" not in scope:
        return {}
    token = await services.id_tokens.mint(
        user=user,
        client_id=client_id,
        scope=scope,
        auth_time=auth_time,
        nonce=nonce,
        sid=sid,
        access_token=access.token,
    )
    return {"id_token": token}
