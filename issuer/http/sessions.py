"""/account/sessions: the signed-in user lists her browser sessions and ends one (audited, through
issuer.operations.sessions)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from issuer.accounts.views import session_view
from issuer.errors import ProblemError
from issuer.http.apidoc import ACCOUNT_API, UNAVAILABLE, documented, no_content, not_found, ok
from issuer.http.responses import done, no_store_json
from issuer.http.session_schemas import BrowserSessionList
from issuer.http.token import client_ip
from issuer.http.users import current_user
from issuer.operations import Actor
from issuer.operations.sessions import NoSuchSession
from issuer.services import Services


@documented("List my browser sessions", ACCOUNT_API, ok(BrowserSessionList), UNAVAILABLE)
async def list_my_sessions(request: Request) -> Response:
    services: Services = request.state.services
    user = await current_user(request, services)
    sessions = await services.ops.sessions.list_for_user(user.user_id)
    return no_store_json({"items": [session_view(s) for s in sessions]})


@documented(
    "End one of my browser sessions (and, if so configured, the refresh tokens it started)",
    ACCOUNT_API,
    no_content("Ended"),
    not_found("session"),
    UNAVAILABLE,
)
async def end_my_session(request: Request) -> Response:
    services: Services = request.state.services
    user = await current_user(request, services)
    actor = Actor.user(user.user_id, client_ip(request, services))
    try:
        await services.ops.sessions.end(actor, user.user_id, request.path_params["session_id"])
    except NoSuchSession:
        raise ProblemError(404, "Not Found", "no such session") from None
    return done()
