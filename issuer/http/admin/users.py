"""/admin/users: list and show end users, replace their roles, disable them, end their sessions."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from issuer.accounts.users import UserInputError
from issuer.accounts.views import user_view
from issuer.http.admin._common import _PAGE_ERRORS, _admin, _invalid, _not_found, _page
from issuer.http.apidoc import ADMIN_API, JSON_BODY, documented, invalid, not_found, ok
from issuer.http.forms import parse_body
from issuer.http.responses import no_store_json
from issuer.http.schemas import RoleAssignment, SessionRevocation, UserPage, UserView
from issuer.operations.users import NoSuchUser

_USER_CHANGE = (ok(UserView, "The updated user"), not_found("user"))


@documented("List users", ADMIN_API, ok(UserPage), _PAGE_ERRORS, query=("limit", "after"))
async def list_users(request: Request) -> Response:
    admin = await _admin(request)
    limit, after = _page(request)
    items = await admin.ops.users.page(limit=limit, after=after)
    nxt = items[-1].username.casefold() if len(items) == limit else None
    return no_store_json({"items": [user_view(u, admin.services.users.roles) for u in items], "next": nxt})


@documented("Get a user", ADMIN_API, ok(UserView), not_found("user"))
async def get_user(request: Request) -> Response:
    admin = await _admin(request)
    try:
        user = await admin.ops.users.get(request.path_params["user_id"])
    except NoSuchUser:
        raise _not_found("user") from None
    return no_store_json(user_view(user, admin.services.users.roles))


@documented(
    "Replace a user's roles",
    ADMIN_API,
    *_USER_CHANGE,
    JSON_BODY,
    invalid("roles is not a list of known roles"),
    body=RoleAssignment,
)
async def set_user_roles(request: Request) -> Response:
    admin = await _admin(request)
    user_id = request.path_params["user_id"]
    try:
        await admin.ops.users.get(user_id)  # 404 before 422
        roles = tuple((await parse_body(request, RoleAssignment)).roles)
        user = await admin.ops.users.set_roles(admin.actor, user_id, roles)
    except NoSuchUser:
        raise _not_found("user") from None
    except UserInputError as exc:
        raise _invalid("invalid roles", exc.errors) from None
    return no_store_json(user_view(user, admin.services.users.roles))


@documented("Disable a user", ADMIN_API, *_USER_CHANGE)
async def disable_user(request: Request) -> Response:
    return await _set_disabled(request, True)


@documented("Enable a user", ADMIN_API, *_USER_CHANGE)
async def enable_user(request: Request) -> Response:
    return await _set_disabled(request, False)


async def _set_disabled(request: Request, disabled: bool) -> Response:
    admin = await _admin(request)
    try:
        user = await admin.ops.users.set_disabled(admin.actor, request.path_params["user_id"], disabled)
    except NoSuchUser:
        raise _not_found("user") from None
    return no_store_json(user_view(user, admin.services.users.roles))


@documented("Revoke every refresh-token family of a user", ADMIN_API, ok(SessionRevocation), not_found("user"))
async def revoke_user_sessions(request: Request) -> Response:
    admin = await _admin(request)
    try:
        count = await admin.ops.users.revoke_sessions(admin.actor, request.path_params["user_id"])
    except NoSuchUser:
        raise _not_found("user") from None
    return no_store_json({"revoked_families": count})
