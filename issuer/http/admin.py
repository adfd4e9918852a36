"""The management API under /admin, for access tokens meant for this issuer carrying
``issuer:admin``, whose client or user still holds that power (issuer.tokens.principal.ADMIN).

Every change is made by issuer.operations, which writes the audit entry (who, what, when, from
where) in the change's own transaction; these handlers parse, call and render, and hold no
storage calls.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from issuer.accounts.users import UserInputError
from issuer.accounts.views import client_view, user_view
from issuer.errors import ProblemError
from issuer.http.apidoc import ADMIN_API, JSON_BODY, bad_query, documented, invalid, no_content, not_found, ok, problem
from issuer.http.bearer import bearer_principal
from issuer.http.forms import parse_body
from issuer.http.responses import no_store_json
from issuer.http.schemas import (
    AuditPage,
    ClientCreate,
    ClientPage,
    ClientUpdate,
    ClientView,
    ClientWithSecret,
    KeyList,
    RoleAssignment,
    SessionRevocation,
    UserPage,
    UserView,
)
from issuer.http.token import client_ip
from issuer.operations import Actor
from issuer.operations.audit import audit_view
from issuer.operations.clients import ClientValidationError, NoSuchClient
from issuer.operations.users import NoSuchUser
from issuer.services import Services
from issuer.tokens.principal import ADMIN
from keys.lifecycle import NoSuchKey, NotYetSafe
from keys.manager import ScheduleBusy

# ASCII digits only: str.isdigit() also accepts "²" and "٣", which int() then refuses.
_DIGITS = re.compile(r"[0-9]{1,19}")
_INT64_MAX = 2**63 - 1


def _actor(claims: dict[str, Any], remote_addr: str) -> Actor:
    if "roles" in claims:
        return Actor.user(str(claims.get("sub")), remote_addr)
    return Actor.client(str(claims.get("client_id")), remote_addr)


class _Admin:
    """The authorised caller of one admin request, and the operations it may call."""

    def __init__(self, services: Services, actor: Actor) -> None:
        self.services = services
        self.ops = services.ops
        self.actor = actor


async def _admin(request: Request) -> _Admin:
    services: Services = request.state.services
    ip = client_ip(request, services)

    async def refused(claims: dict[str, Any], reason: str) -> None:
        await services.refusals.refused(_actor(claims, ip), request.url.path, reason)

    principal = await bearer_principal(request, services, ADMIN, on_refused=refused)
    return _Admin(services, _actor(principal.claims, ip))


def _integer(request: Request, name: str, default: int, low: int, high: int, message: str) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not _DIGITS.fullmatch(raw) or not low <= int(raw) <= high:
        raise ProblemError(400, "Bad Request", message)
    return int(raw)


def _page(request: Request) -> tuple[int, str]:
    limit = _integer(request, "limit", 100, 1, 500, "limit must be an integer from 1 to 500")
    after = request.query_params.get("after", "")
    if len(after) > 256:
        raise ProblemError(400, "Bad Request", "after is too long")
    if "\x00" in after:
        raise ProblemError(400, "Bad Request", "after contains a NUL character")
    return limit, after


def _busy() -> ProblemError:
    return ProblemError(409, "Conflict", "another key change won the race; retry", headers={"Retry-After": "1"})


def _not_found(what: str) -> ProblemError:
    return ProblemError(404, "Not Found", f"no such {what}")


def _invalid(message: str, errors: dict[str, str] | None = None) -> ProblemError:
    # The same shape as a body refused by its model (issuer.http.forms.parse_body): errors by field.
    return ProblemError(422, "Unprocessable Content", message, errors=errors or {"body": message})


_BUSY = problem(409, "Another key change won the race; retry after Retry-After seconds", "Retry-After")
_PAGE_ERRORS = bad_query("limit is not 1 to 500, or after is too long or contains a NUL")
_USER_CHANGE = (ok(UserView, "The updated user"), not_found("user"))


# -- keys -------------------------------------------------------------------------------------


async def _key_schedule(admin: _Admin) -> Response:
    return no_store_json({"items": await admin.ops.keys.schedule()})


@documented("Signing keys and their schedule", ADMIN_API, ok(KeyList))
async def list_keys(request: Request) -> Response:
    return await _key_schedule(await _admin(request))


@documented(
    "Activate the pending key (retiring the active one)",
    ADMIN_API,
    ok(KeyList, "Every key after the change"),
    bad_query("force is not true or false"),
    problem(409, "The pending key is not yet in every JWKS cache (errors.safe_at)", "Retry-After"),
    _BUSY,
    query=("force",),
)
async def rotate_keys(request: Request) -> Response:
    admin = await _admin(request)
    force = request.query_params.get("force", "false").lower()
    if force not in ("true", "false"):
        raise ProblemError(400, "Bad Request", "force must be true or false")
    try:
        await admin.ops.keys.rotate(admin.actor, force=force == "true")
    except NotYetSafe as exc:
        raise ProblemError(
            409,
            "Conflict",
            "the pending key has not been published long enough for every JWKS cache to hold it",
            headers={"Retry-After": str(max(1, int(exc.safe_at - admin.services.clock()) + 1))},
            errors={"safe_at": int(exc.safe_at)},
        ) from None
    except ScheduleBusy:
        raise _busy() from None
    # Not list_keys(request): after an emergency rotation the caller's own token may be unverifiable.
    return await _key_schedule(admin)


@documented(
    "Revoke a key (unpublished at once)",
    ADMIN_API,
    ok(KeyList, "Every key after the change"),
    not_found("published key"),
    _BUSY,
)
async def revoke_key(request: Request) -> Response:
    admin = await _admin(request)
    try:
        await admin.ops.keys.revoke(admin.actor, request.path_params["kid"])
    except NoSuchKey:
        raise _not_found("published key") from None
    except ScheduleBusy:
        raise _busy() from None
    return await _key_schedule(admin)


# -- clients ----------------------------------------------------------------------------------


@documented("List clients", ADMIN_API, ok(ClientPage), _PAGE_ERRORS, query=("limit", "after"))
async def list_clients(request: Request) -> Response:
    admin = await _admin(request)
    limit, after = _page(request)
    items = await admin.ops.clients.page(limit=limit, after=after)
    nxt = items[-1].client_id if len(items) == limit else None
    return no_store_json({"items": [client_view(c) for c in items], "next": nxt})


@documented(
    "Register a client",
    ADMIN_API,
    ok(ClientWithSecret | ClientView, "Created; confidential clients get their client_secret once", 201),
    JSON_BODY,
    invalid("Invalid client fields"),
    body=ClientCreate,
)
async def create_client(request: Request) -> Response:
    admin = await _admin(request)
    body = await parse_body(request, ClientCreate)
    try:
        client, secret = await admin.ops.clients.create(
            admin.actor,
            body.name,
            tuple(body.grant_types),
            tuple(body.scopes),
            tuple(body.audiences),
            public=body.public,
        )
    except ClientValidationError as exc:
        raise _invalid(str(exc)) from None
    view = client_view(client)
    if secret is not None:
        view["client_secret"] = secret
    return no_store_json(view, 201)


@documented("Get a client", ADMIN_API, ok(ClientView), not_found("client"))
async def get_client(request: Request) -> Response:
    admin = await _admin(request)
    try:
        return no_store_json(client_view(await admin.ops.clients.get(request.path_params["client_id"])))
    except NoSuchClient:
        raise _not_found("client") from None


@documented(
    "Change a client",
    ADMIN_API,
    ok(ClientView, "The updated client"),
    not_found("client"),
    JSON_BODY,
    invalid("Invalid client fields"),
    body=ClientUpdate,
)
async def update_client(request: Request) -> Response:
    admin = await _admin(request)
    client_id = request.path_params["client_id"]
    try:
        await admin.ops.clients.get(client_id)  # 404 before 422
    except NoSuchClient:
        raise _not_found("client") from None
    changes = (await parse_body(request, ClientUpdate)).changes()
    try:
        updated = await admin.ops.clients.update(admin.actor, client_id, **changes)
    except ClientValidationError as exc:
        raise _invalid(str(exc)) from None
    except NoSuchClient:
        raise _not_found("client") from None
    return no_store_json(client_view(updated))


@documented(
    "Issue a new client secret (the old one stops working)",
    ADMIN_API,
    ok(ClientWithSecret, "The client with its new secret"),
    not_found("client"),
    problem(422, "A public client has no secret"),
)
async def rotate_client_secret(request: Request) -> Response:
    admin = await _admin(request)
    try:
        updated, secret = await admin.ops.clients.rotate_secret(admin.actor, request.path_params["client_id"])
    except NoSuchClient:
        raise _not_found("client") from None
    except ClientValidationError as exc:
        raise _invalid(str(exc)) from None
    return no_store_json({**client_view(updated), "client_secret": secret})


@documented("Delete a client", ADMIN_API, no_content("Deleted"), not_found("client"))
async def delete_client(request: Request) -> Response:
    admin = await _admin(request)
    try:
        await admin.ops.clients.delete(admin.actor, request.path_params["client_id"])
    except NoSuchClient:
        raise _not_found("client") from None
    return Response(status_code=204, headers={"Cache-Control": "no-store"})


# -- users ------------------------------------------------------------------------------------


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


# -- audit ------------------------------------------------------------------------------------


@documented(
    "Audit log, newest first",
    ADMIN_API,
    ok(AuditPage),
    bad_query("limit is not 1 to 500, or before is not an entry id (0 to 2**63-1)"),
    query=("limit", "before"),
)
async def list_audit(request: Request) -> Response:
    admin = await _admin(request)
    limit, _ = _page(request)
    before = _integer(request, "before", 0, 0, _INT64_MAX, "before must be an entry id (0 to 2**63-1)")
    entries = await admin.ops.audit.recent(limit=limit, before=before)
    nxt = entries[-1].id if len(entries) == limit else None
    return no_store_json({"items": [audit_view(e) for e in entries], "next": nxt})
