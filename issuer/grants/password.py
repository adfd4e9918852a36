"""RFC 6749 §4.3, for first-party clients explicitly allowed it. Unknown user, wrong password
and disabled account give the same ``invalid_grant`` in the same time."""

from __future__ import annotations

from typing import Any

from issuer.accounts.names import username_key
from issuer.cache.limits import address_bucket
from issuer.errors import InvalidGrant, PasswordsBusy, RateLimited, TemporarilyUnavailable
from issuer.grants.base import GrantContext, GrantRequest, bearer_response, user_access_token
from issuer.oauth.scopes import grant_audience, grant_scope, parse_scope, settle_admin_scope


async def password(services: GrantContext, request: GrantRequest) -> dict[str, Any]:
    params, client = request.params, request.client
    username, secret = params.require("username"), params.require("password")
    requested = parse_scope(params.get("scope"))
    resources = params.all("resource")
    scope = grant_scope(requested, client.scopes)
    audience = grant_audience(resources, client.audiences, services.issuer)
    await limit_login_attempts(services, username, request.remote_addr)
    try:
        user = await services.users.login(username, secret)
    except PasswordsBusy as exc:
        raise TemporarilyUnavailable(exc.retry_after) from None
    if user is None:
        services.metrics.login_failures.inc()
        raise InvalidGrant("invalid username or password")
    # issuer:admin follows the user's role, whatever the client (public or not) may request.
    scope, audience = settle_admin_scope(
        scope,
        audience,
        issuer=services.issuer,
        explicit=requested is not None,
        audience_chosen=bool(resources),
        may_administer=services.users.roles.may_administer(user.roles),
    )
    issued = await user_access_token(services, user, client.client_id, scope, audience)
    if "refresh_token" not in client.grant_types:
        # It could never be used, and each login would store a family for its whole lifetime.
        return bearer_response(issued.token, issued.expires_in, scope)
    refresh = await services.refresh_tokens.start(client.client_id, user.user_id, scope, audience)
    return bearer_response(issued.token, issued.expires_in, scope, refresh_token=refresh)


async def limit_login_attempts(services: GrantContext, username: str, ip: str) -> None:
    """Password guesses are limited per username and per client IP (429 with Retry-After)."""
    checks = (
        (f"login-user:{username_key(username[:256])[:64]}", services.login_limit_per_user),
        (f"login-ip:{address_bucket(ip)}", services.login_limit_per_ip),
    )
    for key, limit in checks:
        if limit:
            retry_after = await services.limiter.hit(key, limit, 60)
            if retry_after is not None:
                raise RateLimited(retry_after)

