"""/account/consents: the signed-in user lists what she allowed each client on the consent page,
and withdraws it (audited, through issuer.operations.consents)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from issuer.accounts.views import consent_views
from issuer.errors import ProblemError
from issuer.http.apidoc import ACCOUNT_API, UNAVAILABLE, documented, no_content, not_found, ok
from issuer.http.responses import done, no_store_json
from issuer.http.session_schemas import ConsentList
from issuer.http.token import client_ip
from issuer.http.users import current_user
from issuer.operations import Actor
from issuer.operations.consents import NoSuchConsent
from issuer.services import Services


@documented("List what I allowed each client", ACCOUNT_API, ok(ConsentList), UNAVAILABLE)
async def list_my_consents(request: Request) -> Response:
    services: Services = request.state.services
    user = await current_user(request, services)
    grants = await services.ops.consents.list_for_user(user.user_id)
    return no_store_json({"items": await consent_views(grants, services.clients.get)})


@documented(
    "Withdraw what I allowed a client: its refresh tokens for me are revoked, and it must ask again",
    ACCOUNT_API,
    no_content("Withdrawn"),
    not_found("consent"),
    UNAVAILABLE,
)
async def withdraw_my_consent(request: Request) -> Response:
    services: Services = request.state.services
    user = await current_user(request, services)
    client_id = request.path_params["client_id"]
    actor = Actor.user(user.user_id, client_ip(request, services))
    try:
        await services.ops.consents.withdraw(actor, user.user_id, client_id)
    except NoSuchConsent:
        raise ProblemError(404, "Not Found", "this client was allowed nothing") from None
    return done()
