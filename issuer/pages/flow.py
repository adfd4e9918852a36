"""The authorization decision shared by the pages (OIDC Core §3.1.2): validate the request,
then sign-in, then consent, then the code. Between pages the request travels as a sealed
ticket (issuer.pages.seal) holding its original parameters, re-validated at every step."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from issuer import authorize as authz
from issuer.authorize import AuthorizationRequest, BrowserSession
from issuer.errors import OAuthError
from issuer.http.forms import read_form
from issuer.http.token import client_ip
from issuer.oauth.params import Params
from issuer.pages.render import Pages, redirect
from issuer.services import Services


class PageError(Exception):
    """Stop here and answer this response (an error page, or an error redirect to the client)."""

    def __init__(self, response: Response) -> None:
        super().__init__("page error")
        self.response = response


@dataclass(frozen=True)
class Flight:
    """An authorization request in progress, in one browser."""

    request: AuthorizationRequest
    pairs: list[tuple[str, str]]
    browser: tuple[str, bool]
    # The session that signed in (or consented) during this flight: prompt=login and max_age
    # are satisfied by it, and consent need not be asked again.
    signed_in: str | None = None
    consented: bool = False

    def ticket(self, pages: Pages, **changes: Any) -> str:
        payload = {"q": self.pairs, "sid": self.signed_in, "ok": self.consented, **changes}
        return pages.seal.seal(payload, self.browser[0])


def services_of(request: Request) -> tuple[Pages, Services]:
    return request.state.pages, request.state.services


async def parse_flight(
    request: Request, pairs: list[tuple[str, str]], browser: tuple[str, bool], **state: Any
) -> Flight:
    pages, services = services_of(request)
    try:
        params = authz.read_params(pairs)
        parsed = await authz.parse_authorization_request(params, services.authorize.clients, services.settings.url)
    except authz.ShowError as exc:
        raise PageError(pages.error(400, exc.error, exc.description, browser=browser)) from None
    except authz.RedirectError as exc:
        raise PageError(redirect(exc.location(services.settings.url))) from None
    return Flight(parsed, pairs, browser, **state)


async def posted_flight(request: Request) -> tuple[Flight, Params]:
    """The form of a page's POST, checked: CSRF token, then the ticket it carries."""
    pages, services = services_of(request)
    browser = pages.browser(request)
    try:
        form = await read_form(request, services.settings.max_body_bytes)
    except OAuthError as exc:
        raise PageError(pages.error(exc.status_code, exc.error, exc.description)) from None
    if browser[1] or not pages.seal.csrf_ok(browser[0], form.get("csrf")):
        raise PageError(csrf_refused(pages))
    return await unsealed(request, form.get("ticket"), browser), form


async def ticket_flight(request: Request) -> Flight:
    """The flight a GET page (``?ticket=…``) continues."""
    pages, _ = services_of(request)
    return await unsealed(request, request.query_params.get("ticket"), pages.browser(request))


async def unsealed(request: Request, ticket: str | None, browser: tuple[str, bool]) -> Flight:
    """The flight a ticket carries, validated again; PageError if the ticket is expired or not this browser's."""
    pages, _ = services_of(request)
    payload = pages.seal.open(ticket, browser[0])
    if payload is None or not isinstance(payload.get("q"), list):
        raise PageError(expired(pages, browser))
    pairs = [(str(k), str(v)) for k, v in payload["q"]]
    signed_in = payload.get("sid") if isinstance(payload.get("sid"), str) else None
    return await parse_flight(request, pairs, browser, signed_in=signed_in, consented=payload.get("ok") is True)


def csrf_refused(pages: Pages) -> Response:
    return pages.error(
        403, "invalid_request", "This form has expired or did not come from this site. Reload the page and try again."
    )


def expired(pages: Pages, browser: tuple[str, bool]) -> Response:
    return pages.error(
        400,
        "invalid_request",
        "This sign-in request has expired or is not valid in this browser. Go back to the application and start again.",
        browser=browser,
    )


async def current_session(request: Request) -> BrowserSession | None:
    pages, services = services_of(request)
    cookie = request.cookies.get(pages.session_cookie)
    if not cookie or len(cookie) > 200:
        return None
    return await services.authorize.sessions.resume(cookie)


def with_browser(pages: Pages, response: Response, flight: Flight) -> Response:
    if flight.browser[1]:
        pages.set_cookie(response, pages.csrf_cookie, flight.browser[0])
    return response


def _redirect_error(services: Services, flight: Flight, error: str, description: str) -> Response:
    req = flight.request
    return redirect(authz.error_redirect(req.redirect_uri, error, description, req.state, services.settings.url))


def _needs_login(services: Services, flight: Flight, session: BrowserSession | None) -> bool:
    if session is None:
        return True
    if flight.signed_in == session.session_id:
        return False
    req = flight.request
    if "login" in req.prompt:
        return True
    # max_age=0 is prompt=login (OIDC Core §3.1.2.1).
    return req.max_age is not None and services.clock() - session.auth_time >= req.max_age


async def proceed(request: Request, flight: Flight, session: BrowserSession | None) -> Response:
    """The next step of ``flight``: the sign-in page, the consent page, or the client with a code."""
    pages, services = services_of(request)
    req = flight.request
    if _needs_login(services, flight, session):
        if "none" in req.prompt:
            return _redirect_error(services, flight, "login_required", "the user is not signed in")
        return with_browser(pages, redirect("/login?" + urlencode({"ticket": flight.ticket(pages)})), flight)
    assert session is not None
    auth = services.authorize
    current = await auth.clients.current(req.client.client_id)
    if current is None or current.disabled:
        return pages.error(400, "invalid_client", "Unknown client.", browser=flight.browser)
    # First-party clients skip consent, unless the client itself asks for it (prompt=consent).
    wants_consent = "consent" in req.prompt and not flight.consented
    covered = flight.consented or await auth.consents.covers(session.user_id, req.client.client_id, req.scope)
    if wants_consent or not (req.client.first_party or covered):
        if "none" in req.prompt:
            return _redirect_error(services, flight, "consent_required", "the user has not approved this client")
        ticket = flight.ticket(pages, sid=session.session_id)
        return with_browser(pages, redirect("/consent?" + urlencode({"ticket": ticket})), flight)
    code = await auth.codes.issue(req, session, req.scope, req.audience)
    return with_browser(pages, redirect(authz.code_redirect(req, code, services.settings.url)), flight)


def remote(request: Request, services: Services) -> tuple[str, str]:
    return client_ip(request, services), request.headers.get("user-agent", "")[:256]
