"""``/oauth2/authorize`` (RFC 6749 §4.1.1, GET and POST), the sign-in page and the consent page."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode

from starlette.requests import Request
from starlette.responses import Response

from issuer.authorize import BrowserSession, error_redirect
from issuer.errors import OAuthError, PasswordsBusy, RateLimited
from issuer.grants.password import limit_login_attempts
from issuer.http.forms import read_form
from issuer.operations import Actor
from issuer.pages.flow import (
    Flight,
    current_session,
    parse_flight,
    posted_flight,
    proceed,
    remote,
    services_of,
    ticket_flight,
)
from issuer.pages.render import redirect
from issuer.pages.words import scope_words

WRONG = "The username or password is not right, or the account cannot sign in."


async def authorize(request: Request) -> Response:
    pages, services = services_of(request)
    browser = pages.browser(request)
    try:
        if request.method == "POST":
            pairs = (await read_form(request, services.settings.max_body_bytes)).pairs()
        else:
            pairs = parse_qsl(request.url.query, keep_blank_values=True, max_num_fields=64)
        flight = await parse_flight(request, pairs, browser)
    except OAuthError as exc:
        return pages.error(exc.status_code, exc.error, exc.description, browser=browser)
    except ValueError:
        return pages.error(400, "invalid_request", "the request has too many parameters", browser=browser)
    return await proceed(request, flight, await current_session(request))


def _login_form(request: Request, flight: Flight, status: int = 200, error: str = "", username: str = "") -> Response:
    pages, _ = services_of(request)
    return pages.render(
        "login.html",
        status,
        browser=flight.browser,
        title="Sign in",
        client_name=flight.request.client.name,
        ticket=flight.ticket(pages),
        username=username,
        error=error,
        redirects_to=[flight.request.redirect_uri],
    )


async def login_page(request: Request) -> Response:
    flight = await ticket_flight(request)
    return _login_form(request, flight, username=flight.request.login_hint or "")


async def login(request: Request) -> Response:
    pages, services = services_of(request)
    flight, form = await posted_flight(request)
    username, password = form.get("username") or "", form.get("password") or ""
    ip, agent = remote(request, services)
    try:
        await limit_login_attempts(services.grants, username, ip)
        user = await services.users.login(username, password)
    except RateLimited as exc:
        message = f"Too many sign-in attempts. Wait {exc.retry_after} seconds and try again."
        response = _login_form(request, flight, 429, message, username)
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    except PasswordsBusy as exc:
        response = _login_form(request, flight, 503, "The service is busy. Try again in a moment.", username)
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    if user is None:
        services.metrics.login_failures.inc()
        return _login_form(request, flight, 401, WRONG, username)
    session, cookie = await signed_in(request, user.user_id, ip, agent)
    response = await proceed(request, Flight(flight.request, flight.pairs, flight.browser, session.session_id), session)
    pages.set_cookie(response, pages.session_cookie, cookie, services.settings.session_absolute_ttl)
    return response


async def signed_in(request: Request, user_id: str, ip: str, agent: str) -> tuple[BrowserSession, str]:
    """The browser's session for ``user_id`` with a new auth_time and a new cookie value: its
    current one when it was already this user's (prompt=login, max_age), else a new one (the
    other user's ends)."""
    pages, services = services_of(request)
    sessions = services.authorize.sessions
    previous = await current_session(request)
    if previous is not None:
        if previous.user_id == user_id:
            return await sessions.reauthenticated(previous)
        await services.ops.sessions.sign_out(Actor.user(user_id, ip), previous, "another user signed in")
    return await sessions.start(user_id, ip, agent)


async def consent_page(request: Request) -> Response:
    pages, services = services_of(request)
    flight = await ticket_flight(request)
    session = await current_session(request)
    if session is None or session.session_id != flight.signed_in:
        return await proceed(request, Flight(flight.request, flight.pairs, flight.browser), session)
    user = await services.users.store.get_user(session.user_id)
    client = flight.request.client
    return pages.render(
        "consent.html",
        browser=flight.browser,
        title="Allow access?",
        client_name=client.name,
        scopes=scope_words(flight.request.scope, "refresh_token" in client.grant_types),
        username=user.username if user else "",
        ticket=flight.ticket(pages),
        redirects_to=[flight.request.redirect_uri],
    )


async def consent(request: Request) -> Response:
    _, services = services_of(request)
    flight, form = await posted_flight(request)
    session = await current_session(request)
    req = flight.request
    if session is None or session.session_id != flight.signed_in:
        # Signed out (or in as someone else) since the page was shown: start over.
        return await proceed(request, Flight(req, flight.pairs, flight.browser), session)
    if form.get("decision") != "allow":
        issuer = services.settings.url
        return redirect(error_redirect(req.redirect_uri, "access_denied", "the user declined", req.state, issuer))
    actor = Actor.user(session.user_id, remote(request, services)[0])
    await services.ops.consents.grant(actor, session.user_id, req.client.client_id, req.scope)
    return await proceed(request, Flight(req, flight.pairs, flight.browser, flight.signed_in, True), session)


def login_url(ticket: str) -> str:
    return "/login?" + urlencode({"ticket": ticket})
