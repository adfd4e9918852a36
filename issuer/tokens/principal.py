"""Who may call our own protected endpoints: /admin, /account and /userinfo are resource
servers too (RFC 9068 §4). A token must be meant for us, carry the scope the endpoint needs,
and speak for a principal that still stands at request time: its client exists and is
enabled; its user exists and is enabled; and for /admin, the client is still registered with
``issuer:admin`` or the user still holds the administrator role. Each check reads the
in-process views (client registry, user states), so none costs a database read when warm."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from issuer.accounts.users import UserState, UserStates
from issuer.models import Client
from issuer.oauth.clients import ClientRegistry
from issuer.oauth.scopes import ADMIN_SCOPE
from issuer.tokens.validate import InvalidAccessToken, audiences, scopes

if TYPE_CHECKING:  # services builds revoke.TokenContext, which uses standing() from here
    from issuer.services import Services


class Inactive(Exception):
    """The token is not, or no longer, good here: RFC 6750 ``invalid_token``."""

    claims: dict[str, Any] | None = None
    """Set when the token itself verified (ours, unexpired) but was refused here."""


class Insufficient(Exception):
    """The principal stands but lacks the power: RFC 6750 ``insufficient_scope``."""

    def __init__(self, scope: str) -> None:
        super().__init__(scope)
        self.scope = scope
        self.claims: dict[str, Any] | None = None


@dataclass(frozen=True)
class Rule:
    """One endpoint family's requirements, declared once (see the rules below)."""

    scope: str | None = None
    """A scope the token must carry."""
    or_scope: str | None = None
    """Besides an ``aud`` naming the issuer, a token carrying this scope is also meant for us."""
    users_only: bool = False
    """Only a user's token (not a client's own) speaks for someone here."""
    admin: bool = False
    """The principal must still hold administrative power (registered scope or role)."""


ADMIN = Rule(scope=ADMIN_SCOPE, admin=True)
ACCOUNT = Rule(users_only=True)
USERINFO = Rule(or_scope="openid", users_only=True)  # OIDC Core §5.3: an openid token is for us


@dataclass(frozen=True)
class Principal:
    claims: dict[str, Any]
    client: Client
    user: UserState | None
    """None for a client's own token (``sub`` = ``client_id``)."""


async def standing(clients: ClientRegistry, users: UserStates, claims: dict[str, Any]) -> Principal:
    """The principal behind valid claims, if it still stands; raises Inactive otherwise."""
    client_id = claims.get("client_id")
    client = await clients.get(client_id) if isinstance(client_id, str) else None
    if client is None or client.disabled:
        raise Inactive("client")
    if "roles" not in claims:
        if claims.get("sub") != client.client_id:
            raise Inactive("subject")
        return Principal(claims, client, None)
    state = await users.get(str(claims.get("sub")))
    if state is None or state.disabled:
        raise Inactive("user")
    return Principal(claims, client, state)


def _may_administer(services: Services, principal: Principal) -> bool:
    if principal.user is None:
        return ADMIN_SCOPE in principal.client.scopes
    return services.users.roles.may_administer(principal.user.roles)


async def authorize(services: Services, token: str, rule: Rule) -> Principal:
    issuer = services.settings.url
    try:
        claims = await services.validator.validate(token, None if rule.or_scope else issuer)
    except InvalidAccessToken:
        raise Inactive("token") from None
    try:
        return await _check(services, claims, rule, issuer)
    except (Inactive, Insufficient) as exc:
        exc.claims = claims
        raise


async def _check(services: Services, claims: dict[str, Any], rule: Rule, issuer: str) -> Principal:
    if rule.or_scope and issuer not in audiences(claims) and rule.or_scope not in scopes(claims):
        raise Inactive("audience")
    if rule.scope is not None and rule.scope not in scopes(claims):
        raise Insufficient(rule.scope)
    principal = await standing(services.clients, services.users.states, claims)
    if rule.users_only and principal.user is None:
        raise Inactive("not a user")
    if rule.admin and not _may_administer(services, principal):
        raise Insufficient(ADMIN_SCOPE)
    return principal
