"""RP-Initiated Logout 1.0: ``/oauth2/logout`` (the ``end_session_endpoint``), GET and POST.

A request whose ``id_token_hint`` names this browser's session ends it at once; any other asks
the user first (a confirmation form with a CSRF token), so a third-party page cannot sign a
user out. Afterwards the browser goes to the registered ``post_logout_redirect_uri`` with
``state``, or sees a "signed out" page."""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import Response

from issuer.authorize import BrowserSession, LogoutRequest, ShowError, logout_redirect, parse_end_session, read_params
from issuer.errors import OAuthError
from issuer.http.forms import read_form
from issuer.oauth.params import Params
from issuer.operations import Actor
from issuer.pages.flow import csrf_refused, current_session, expired, remote, services_of
from issuer.pages.render import redirect


async def logout(request: Request) -> Response:
    pages, services = services_of(request)
    browser = pages.browser(request)
    try:
        if request.method == "POST":
            form = await read_form(request, services.settings.max_body_bytes)
            if "ticket" in form or "csrf" in form:
                return await _confirmed(request, form)
            pairs = form.pairs()
        else:
            pairs = parse_qsl(request.url.query, keep_blank_values=True, max_num_fields=64)
        ask = await _parse(request, pairs)
    except (OAuthError, ShowError) as exc:
        return pages.error(400, exc.error, exc.description, browser=browser, title="Sign-out problem")
    except ValueError:
        return pages.error(400, "invalid_request", "the request has too many parameters", browser=browser)
    session = await current_session(request)
    if session is None or (ask.session_id is not None and ask.session_id == session.session_id):
        return await _end(request, session, ask)
    user = await services.users.store.get_user(session.user_id)
    return pages.render(
        "logout.html",
        browser=browser,
        title="Sign out?",
        username=user.username if user else "",
        client_name=ask.client.name if ask.client else "",
        ticket=pages.seal.seal({"logout": pairs}, browser[0]),
        redirects_to=[ask.post_logout_redirect_uri] if ask.post_logout_redirect_uri else [],
    )


async def _confirmed(request: Request, form: Params) -> Response:
    pages, services = services_of(request)
    browser = pages.browser(request)
    if browser[1] or not pages.seal.csrf_ok(browser[0], form.get("csrf")):
        return csrf_refused(pages)
    payload = pages.seal.open(form.get("ticket"), browser[0])
    if payload is None or not isinstance(payload.get("logout"), list):
        return expired(pages, browser)
    try:
        ask = await _parse(request, [(str(k), str(v)) for k, v in payload["logout"]])
    except ShowError as exc:
        return pages.error(400, exc.error, exc.description, browser=browser, title="Sign-out problem")
    return await _end(request, await current_session(request), ask)


async def _parse(request: Request, pairs: list[tuple[str, str]]) -> LogoutRequest:
    _, services = services_of(request)
    auth = services.authorize
    return await parse_end_session(read_params(pairs), auth.clients, auth.keyring, auth.issuer)


async def _end(request: Request, session: BrowserSession | None, ask: LogoutRequest) -> Response:
    pages, services = services_of(request)
    if session is not None:
        actor = Actor.user(session.user_id, remote(request, services)[0])
        await services.ops.sessions.sign_out(actor, session, "logout")
    location = logout_redirect(ask)
    if location is not None:
        response = redirect(location)
    else:
        response = pages.render(
            "message.html", title="Signed out", message=f"You are signed out of {services.settings.product_name}.",
            note="You can close this window.",
        )
    pages.clear_cookie(response, pages.session_cookie)
    return response
