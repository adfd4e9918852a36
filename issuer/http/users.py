"""End-user endpoints: registration, userinfo, and the account actions of the signed-in user."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from issuer.errors import InvalidToken, ProblemError
from issuer.grants.password import limit_login_attempts
from issuer.http.bearer import bearer_principal
from issuer.http.forms import read_json
from issuer.http.responses import no_store_json
from issuer.http.token import client_ip
from issuer.models import User
from issuer.services import Services
from issuer.tokens.principal import ACCOUNT, USERINFO, Rule
from issuer.users import Conflict, UserInputError, check_password, parse_registration
from issuer.views import user_view


def _invalid(errors: dict[str, str]) -> ProblemError:
    return ProblemError(422, "Unprocessable Content", "the request has invalid fields", errors=errors)


async def register(request: Request) -> Response:
    services: Services = request.state.services
    if not services.settings.open_registration:
        raise ProblemError(403, "Forbidden", "registration is closed; ask an administrator for an account")
    data = await read_json(request, services.settings.max_body_bytes)
    try:
        user = await services.users.create(parse_registration(data))
    except UserInputError as exc:
        raise _invalid(exc.errors) from None
    except Conflict as exc:
        raise ProblemError(409, "Conflict", f"that {exc.field} is already taken", errors={exc.field: "taken"}) from None
    return no_store_json(user_view(user, services.users.roles), 201)


async def _current_user(request: Request, services: Services, rule: Rule = ACCOUNT) -> User:
    principal = await bearer_principal(request, services, rule)
    # The row itself is needed for what these endpoints answer or check (email, password).
    user = await services.users.store.get_user(str(principal.claims.get("sub")))
    if user is None or user.disabled:
        raise InvalidToken(
            "the token does not belong to an active user",
            headers={"WWW-Authenticate": f'Bearer realm="{services.settings.url}", error="invalid_token"'},
        )
    return user


async def userinfo(request: Request) -> Response:
    services: Services = request.state.services
    user = await _current_user(request, services, USERINFO)
    body = {
        "sub": user.user_id,
        "preferred_username": user.username,
        "roles": services.users.roles.effective(user.roles),
    }
    if user.email:
        body["email"] = user.email
    return no_store_json(body)


async def _confirm_password(request: Request, services: Services, user: User, data: dict[str, Any], field: str) -> None:
    await limit_login_attempts(services, user.username, client_ip(request, services))
    password = data.get(field)
    if not isinstance(password, str) or not (await services.users.passwords.verify(user.password_hash, password)).ok:
        raise _invalid({field: "incorrect password"})


async def change_password(request: Request) -> Response:
    services: Services = request.state.services
    user = await _current_user(request, services)
    data = await read_json(request, services.settings.max_body_bytes)
    message = check_password(data.get("new_password"))
    if message:
        raise _invalid({"new_password": message})
    await _confirm_password(request, services, user, data, "current_password")
    await services.users.change_password(user, data["new_password"])
    return Response(status_code=204, headers={"Cache-Control": "no-store"})


async def deactivate(request: Request) -> Response:
    services: Services = request.state.services
    user = await _current_user(request, services)
    data = await read_json(request, services.settings.max_body_bytes)
    await _confirm_password(request, services, user, data, "password")
    await services.users.set_disabled(user.user_id, True, "deactivated by the user")
    return Response(status_code=204, headers={"Cache-Control": "no-store"})
