"""End-user endpoints: registration, userinfo, and the account actions of the signed-in user."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from issuer.accounts.users import Conflict, NewUser, UserInputError
from issuer.accounts.views import user_view
from issuer.cache.limits import address_bucket
from issuer.errors import InvalidToken, PasswordsBusy, ProblemError
from issuer.grants.password import limit_login_attempts
from issuer.http.apidoc import (
    ACCOUNT_API,
    HASH_BUDGET_SPENT,
    JSON_BODY,
    RATE_LIMITED,
    REGISTRATION_API,
    UNAVAILABLE,
    Replies,
    documented,
    invalid,
    no_content,
    ok,
    problem,
)
from issuer.http.bearer import bearer_principal
from issuer.http.forms import parse_body
from issuer.http.responses import done, no_store_json
from issuer.http.schemas import Deactivation, PasswordChange, Registration, UserInfo, UserView
from issuer.http.token import client_ip
from issuer.models import User
from issuer.operations import Actor
from issuer.operations.users import NoSuchUser
from issuer.services import Services
from issuer.tokens.principal import ACCOUNT, USERINFO, Rule
from issuer.tokens.validate import scopes


def _invalid(errors: dict[str, str]) -> ProblemError:
    return ProblemError(422, "Unprocessable Content", "the request has invalid fields", errors=errors)


def _account_action(field: str) -> tuple[Replies, ...]:
    return (
        no_content("Done"),
        JSON_BODY,
        invalid(f"Invalid fields (a wrong {field} too)"),
        RATE_LIMITED,
        HASH_BUDGET_SPENT,
        UNAVAILABLE,
    )


async def limit_registrations(services: Services, ip: str) -> None:
    """Sign-ups are limited per client IP per hour and for the whole issuer per minute (429 with
    Retry-After), before the body is even read: username probes and hash floods stop here."""
    settings = services.settings
    checks = (
        (f"register-ip:{address_bucket(ip)}", settings.rate_limit_register_per_ip, 3600),
        ("register-all", settings.rate_limit_register_global, 60),
    )
    for key, limit, window in checks:
        if limit:
            retry_after = await services.limiter.hit(key, limit, window)
            if retry_after is not None:
                seconds = str(max(1, int(retry_after + 0.999)))
                raise ProblemError(
                    429, "Too Many Requests", "too many registrations; retry later", headers={"Retry-After": seconds}
                )


@documented(
    "Self-service registration (when open_registration is on)",
    REGISTRATION_API,
    ok(UserView, "Registered", 201),
    JSON_BODY,
    problem(403, "Registration is closed"),
    problem(409, "Username already taken (emails are not unique, so never a conflict)"),
    invalid("Invalid or unknown fields, or a password the policy refuses"),
    problem(429, "Too many registrations from this address or in total", "Retry-After"),
    HASH_BUDGET_SPENT,
    UNAVAILABLE,
    body=Registration,
)
async def register(request: Request) -> Response:
    services: Services = request.state.services
    if not services.settings.open_registration:
        raise ProblemError(403, "Forbidden", "registration is closed; ask an administrator for an account")
    try:
        await limit_registrations(services, client_ip(request, services))
        services.users.admit_registration()
    except ProblemError as exc:
        # A refusal (429, 503) is answered after a pause: a flood that ignores Retry-After on a
        # keep-alive connection is held to one attempt per pause per connection, which costs a
        # sleeping coroutine instead of a request's worth of CPU taken from logins.
        await asyncio.sleep(services.settings.register_refusal_pause)
        raise exc from None
    body = await parse_body(request, Registration)
    try:
        user = await services.ops.users.register(
            NewUser(body.username, body.password, body.email), client_ip(request, services)
        )
    except UserInputError as exc:
        raise _invalid(exc.errors) from None
    except PasswordsBusy:
        await asyncio.sleep(services.settings.register_refusal_pause)
        raise
    except Conflict:
        # Only a username can conflict: emails are not unique, so nothing here tells whether an
        # address is registered.
        raise ProblemError(409, "Conflict", "that username is already taken", errors={"username": "taken"}) from None
    return no_store_json(user_view(user, services.users.roles), 201)


async def current_user(request: Request, services: Services, rule: Rule = ACCOUNT) -> User:
    return (await current_user_and_claims(request, services, rule))[0]


async def current_user_and_claims(request: Request, services: Services, rule: Rule) -> tuple[User, dict[str, Any]]:
    principal = await bearer_principal(request, services, rule)
    # The row itself is needed for what these endpoints answer or check (email, password).
    try:
        user: User | None = await services.ops.users.get(str(principal.claims.get("sub")))
    except NoSuchUser:
        user = None
    if user is None or user.disabled:
        raise InvalidToken(
            "the token does not belong to an active user",
            headers={"WWW-Authenticate": f'Bearer realm="{services.settings.url}", error="invalid_token"'},
        )
    return user, principal.claims


@documented(
    "Claims about the signed-in user",
    ACCOUNT_API,
    ok(UserInfo),
    UNAVAILABLE,
    description="A user's access token whose aud names this issuer, or that carries the openid scope (OIDC Core §5.3).",
)
async def userinfo(request: Request) -> Response:
    services: Services = request.state.services
    user, claims = await current_user_and_claims(request, services, USERINFO)
    scope = scopes(claims)
    if "openid" in scope:
        # OpenID Connect: the claims the token's scopes allow (OIDC Core §5.3.2, §5.4).
        return no_store_json(services.authorize.id_tokens.claims.of(user, scope))
    body = {
        "sub": user.user_id,
        "preferred_username": user.username,
        "roles": services.users.roles.effective(user.roles),
    }
    if user.email:
        body["email"] = user.email
    return no_store_json(body)


async def _confirm_password(request: Request, services: Services, user: User, password: str, field: str) -> None:
    await limit_login_attempts(services.grants, user.username, client_ip(request, services))
    if not (await services.users.passwords.verify(user.password_hash, password)).ok:
        raise _invalid({field: "incorrect password"})


@documented("Change password", ACCOUNT_API, *_account_action("current_password"), body=PasswordChange)
async def change_password(request: Request) -> Response:
    services: Services = request.state.services
    user = await current_user(request, services)
    body = await parse_body(request, PasswordChange, {"username": user.username})
    await _confirm_password(request, services, user, body.current_password, "current_password")
    actor = Actor.user(user.user_id, client_ip(request, services))
    await services.ops.users.change_password(actor, user, body.new_password)
    return done()


@documented("Deactivate own account", ACCOUNT_API, *_account_action("password"), body=Deactivation)
async def deactivate(request: Request) -> Response:
    services: Services = request.state.services
    user = await current_user(request, services)
    body = await parse_body(request, Deactivation)
    await _confirm_password(request, services, user, body.password, "password")
    await services.ops.users.set_disabled(Actor.user(user.user_id, client_ip(request, services)), user.user_id, True)
    return done()
