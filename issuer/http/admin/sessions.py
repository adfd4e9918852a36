"""/admin/users/{user_id}/sessions and /consents: an administrator lists a user's browser sessions
and ends one or all of them, lists what the user allowed clients and withdraws it (audited,
through issuer.operations.sessions and .consents)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from issuer.accounts.views import consent_views, session_view
from issuer.http.admin._common import _Admin, _admin, _not_found
from issuer.http.apidoc import ADMIN_API, documented, no_content, not_found, ok
from issuer.http.responses import done, no_store_json
from issuer.http.session_schemas import BrowserSessionList, ConsentList, SessionsEnded
from issuer.operations.consents import NoSuchConsent
from issuer.operations.sessions import NoSuchSession
from issuer.operations.users import NoSuchUser


async def _known_user(request: Request) -> tuple[_Admin, str]:
    admin = await _admin(request)
    user_id = request.path_params["user_id"]
    try:
        await admin.ops.users.get(user_id)
    except NoSuchUser:
        raise _not_found("user") from None
    return admin, user_id


@documented("List a user's browser sessions", ADMIN_API, ok(BrowserSessionList), not_found("user"))
async def list_user_browser_sessions(request: Request) -> Response:
    admin, user_id = await _known_user(request)
    sessions = await admin.ops.sessions.list_for_user(user_id)
    return no_store_json({"items": [session_view(s) for s in sessions]})


@documented(
    "End one browser session of a user (and, if so configured, the refresh tokens it started)",
    ADMIN_API,
    no_content("Ended"),
    not_found("session"),
)
async def end_user_browser_session(request: Request) -> Response:
    admin = await _admin(request)
    try:
        await admin.ops.sessions.end(admin.actor, request.path_params["user_id"], request.path_params["session_id"])
    except NoSuchSession:
        raise _not_found("session") from None
    return done()


@documented(
    "End every browser session of a user (and, if so configured, the refresh tokens they started)",
    ADMIN_API,
    ok(SessionsEnded),
    not_found("user"),
)
async def end_user_browser_sessions(request: Request) -> Response:
    admin, user_id = await _known_user(request)
    return no_store_json({"ended": await admin.ops.sessions.end_all(admin.actor, user_id)})


@documented("List what a user allowed each client", ADMIN_API, ok(ConsentList), not_found("user"))
async def list_user_consents(request: Request) -> Response:
    admin, user_id = await _known_user(request)
    grants = await admin.ops.consents.list_for_user(user_id)
    return no_store_json({"items": await consent_views(grants, admin.services.clients.get)})


@documented(
    "Withdraw what a user allowed a client (and revoke that client's refresh tokens for the user)",
    ADMIN_API,
    no_content("Withdrawn"),
    not_found("consent"),
)
async def withdraw_user_consent(request: Request) -> Response:
    admin = await _admin(request)
    try:
        await admin.ops.consents.withdraw(admin.actor, request.path_params["user_id"], request.path_params["client_id"])
    except NoSuchConsent:
        raise _not_found("consent") from None
    return done()
