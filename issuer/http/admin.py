"""The management API under /admin, for access tokens meant for this issuer carrying
``issuer:admin``, whose client or user still holds that power (issuer.tokens.principal.ADMIN).

Every change is written to the audit log (who, what, when, from where) before it is answered.
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
from issuer.models import Client
from issuer.oauth.clients import ClientValidationError
from issuer.services import Services
from issuer.tokens.principal import ADMIN, Principal
from keys.info import describe_keys
from keys.lifecycle import NoSuchKey, NotYetSafe
from keys.manager import ScheduleBusy

# ASCII digits only: str.isdigit() also accepts "²" and "٣", which int() then refuses.
_DIGITS = re.compile(r"[0-9]{1,19}")
_INT64_MAX = 2**63 - 1


class _Admin:
    """The authorised caller of one admin request."""

    def __init__(self, request: Request, services: Services, principal: Principal) -> None:
        self.request = request
        self.services = services
        self.actor = str(principal.claims.get("sub"))

    async def audit(self, action: str, target: str, **detail: object) -> None:
        await self.services.store.append_audit(
            self.services.clock(), self.actor, action, target, detail, client_ip(self.request, self.services)
        )


async def _admin(request: Request) -> _Admin:
    services: Services = request.state.services
    return _Admin(request, services, await bearer_principal(request, services, ADMIN))


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


async def _key_schedule(services: Services) -> Response:
    keys = await services.store.list_keys()
    return no_store_json({"items": describe_keys(keys, services.keys.policy, services.clock())})


@documented("Signing keys and their schedule", ADMIN_API, ok(KeyList))
async def list_keys(request: Request) -> Response:
    admin = await _admin(request)
    return await _key_schedule(admin.services)


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
        transition = await admin.services.keys.rotate(force=force == "true")
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
    admin.services.metrics.key_rotations.labels("forced" if force == "true" else "manual").inc()
    activated = [c.kid for c in transition.changes if c.to_state.value == "active"]
    await admin.audit("keys.rotate", ",".join(activated), force=force == "true")
    # Not list_keys(request): after an emergency rotation the caller's own token may be unverifiable.
    return await _key_schedule(admin.services)


@documented(
    "Revoke a key (unpublished at once)",
    ADMIN_API,
    ok(KeyList, "Every key after the change"),
    not_found("published key"),
    _BUSY,
)
async def revoke_key(request: Request) -> Response:
    admin = await _admin(request)
    kid = request.path_params["kid"]
    try:
        await admin.services.keys.revoke(kid)
    except NoSuchKey:
        raise _not_found("published key") from None
    except ScheduleBusy:
        raise _busy() from None
    admin.services.metrics.key_rotations.labels("revoked").inc()
    await admin.audit("keys.revoke", kid)
    return await _key_schedule(admin.services)


# -- clients ----------------------------------------------------------------------------------


@documented("List clients", ADMIN_API, ok(ClientPage), _PAGE_ERRORS, query=("limit", "after"))
async def list_clients(request: Request) -> Response:
    admin = await _admin(request)
    limit, after = _page(request)
    items = await admin.services.store.list_clients(limit=limit, after=after)
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
        client, secret = await admin.services.clients.create(
            body.name, tuple(body.grant_types), tuple(body.scopes), tuple(body.audiences), public=body.public
        )
    except ClientValidationError as exc:
        raise _invalid(str(exc)) from None
    await admin.audit("clients.create", client.client_id, name=body.name)
    view = client_view(client)
    if secret is not None:
        view["client_secret"] = secret
    return no_store_json(view, 201)


async def _client(admin: _Admin, request: Request) -> Client:
    client = await admin.services.store.get_client(request.path_params["client_id"])
    if client is None:
        raise _not_found("client")
    return client


@documented("Get a client", ADMIN_API, ok(ClientView), not_found("client"))
async def get_client(request: Request) -> Response:
    admin = await _admin(request)
    return no_store_json(client_view(await _client(admin, request)))


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
    client = await _client(admin, request)
    changes = (await parse_body(request, ClientUpdate)).changes()
    try:
        updated = await admin.services.clients.update(client, **changes)
    except ClientValidationError as exc:
        raise _invalid(str(exc)) from None
    detail: dict[str, Any] = {"fields": sorted(changes)}
    if "disabled" in changes:
        detail["disabled"] = changes["disabled"]
    await admin.audit("clients.update", client.client_id, **detail)
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
    client = await _client(admin, request)
    if client.is_public:
        raise _invalid("a public client has no secret")
    updated, secret = await admin.services.clients.rotate_secret(client)
    await admin.audit("clients.rotate_secret", client.client_id)
    return no_store_json({**client_view(updated), "client_secret": secret})


@documented("Delete a client", ADMIN_API, no_content("Deleted"), not_found("client"))
async def delete_client(request: Request) -> Response:
    admin = await _admin(request)
    client = await _client(admin, request)
    await admin.services.clients.delete(client.client_id)
    await admin.audit("clients.delete", client.client_id)
    return Response(status_code=204, headers={"Cache-Control": "no-store"})


# -- users ------------------------------------------------------------------------------------


@documented("List users", ADMIN_API, ok(UserPage), _PAGE_ERRORS, query=("limit", "after"))
async def list_users(request: Request) -> Response:
    admin = await _admin(request)
    limit, after = _page(request)
    items = await admin.services.users.store.list_users(limit=limit, after=after)
    nxt = items[-1].username.casefold() if len(items) == limit else None
    return no_store_json({"items": [user_view(u, admin.services.users.roles) for u in items], "next": nxt})


async def _user_id(admin: _Admin, request: Request) -> str:
    user = await admin.services.users.store.get_user(request.path_params["user_id"])
    if user is None:
        raise _not_found("user")
    return user.user_id


@documented("Get a user", ADMIN_API, ok(UserView), not_found("user"))
async def get_user(request: Request) -> Response:
    admin = await _admin(request)
    user = await admin.services.users.store.get_user(request.path_params["user_id"])
    if user is None:
        raise _not_found("user")
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
    user_id = await _user_id(admin, request)
    roles = tuple((await parse_body(request, RoleAssignment)).roles)
    try:
        user = await admin.services.users.set_roles(user_id, roles)
    except UserInputError as exc:
        raise _invalid("invalid roles", exc.errors) from None
    assert user is not None
    await admin.audit("users.set_roles", user_id, roles=list(roles))
    return no_store_json(user_view(user, admin.services.users.roles))


@documented("Disable a user", ADMIN_API, *_USER_CHANGE)
async def disable_user(request: Request) -> Response:
    return await _set_disabled(request, True)


@documented("Enable a user", ADMIN_API, *_USER_CHANGE)
async def enable_user(request: Request) -> Response:
    return await _set_disabled(request, False)


async def _set_disabled(request: Request, disabled: bool) -> Response:
    admin = await _admin(request)
    user_id = await _user_id(admin, request)
    user = await admin.services.users.set_disabled(user_id, disabled, "disabled by an administrator")
    assert user is not None
    await admin.audit("users.disable" if disabled else "users.enable", user_id)
    return no_store_json(user_view(user, admin.services.users.roles))


@documented("Revoke every refresh-token family of a user", ADMIN_API, ok(SessionRevocation), not_found("user"))
async def revoke_user_sessions(request: Request) -> Response:
    admin = await _admin(request)
    user_id = await _user_id(admin, request)
    count = await admin.services.users.revoke_sessions(user_id, "revoked by an administrator")
    await admin.audit("users.revoke_sessions", user_id, families=count)
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
    entries = await admin.services.store.list_audit(limit=limit, before=before)
    items = [
        {
            "id": e.id,
            "at": int(e.at),
            "actor": e.actor,
            "action": e.action,
            "target": e.target,
            "detail": e.detail,
            "remote_addr": e.remote_addr,
        }
        for e in entries
    ]
    nxt = entries[-1].id if len(entries) == limit else None
    return no_store_json({"items": items, "next": nxt})
