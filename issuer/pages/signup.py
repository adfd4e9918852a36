"""``/signup``: the registration page, when open registration is on. The same rules, limits
and audit as ``POST /register``; afterwards the new user is signed in and the sign-in that led
here (if any) goes on."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from issuer.accounts.policy import PASSWORD_MAX, PASSWORD_MIN
from issuer.accounts.users import USERNAME_RULE, Conflict, UserInputError, parse_registration
from issuer.errors import OAuthError, PasswordsBusy, ProblemError
from issuer.http.forms import read_form
from issuer.http.users import limit_registrations
from issuer.pages.flow import Flight, csrf_refused, proceed, remote, services_of, unsealed
from issuer.pages.render import Pages, sentence
from issuer.pages.signin import signed_in

_FIELDS = (
    ("username", "Username", "text", "username", 64, True, USERNAME_RULE[0].upper() + USERNAME_RULE[1:] + "."),
    ("email", "Email", "email", "email", 254, False, "Used only to reach you about your account."),
    ("password", "Password", "password", "new-password", PASSWORD_MAX, True, f"At least {PASSWORD_MIN} characters."),
)


def _form(
    pages: Pages,
    browser: tuple[str, bool],
    ticket: str,
    status: int = 200,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    error: str = "",
    flight: Flight | None = None,
) -> Response:
    values, errors = values or {}, errors or {}
    first_bad = next((name for name, *_ in _FIELDS if name in errors), "username")
    fields: list[dict[str, Any]] = [
        {
            "name": name, "label": label, "type": kind, "autocomplete": autocomplete, "maxlength": maxlength,
            "required": required, "hint": hint, "error": sentence(errors.get(name, "")),
            "value": values.get(name, "") if name != "password" else "", "focus": name == first_bad,
        }
        for name, label, kind, autocomplete, maxlength, required, hint in _FIELDS
    ]
    if errors and not error:
        error = "Check the fields marked below."
    login = "/login?" + urlencode({"ticket": ticket}) if ticket else ""
    return pages.render(
        "signup.html", status, browser=browser, title="Create an account", fields=fields, ticket=ticket,
        error=error, login_url=login, redirects_to=[flight.request.redirect_uri] if flight else [],
    )


async def _flight(request: Request, browser: tuple[str, bool], ticket: str) -> Flight | None:
    """The sign-in this registration interrupts, if any (one that expired meanwhile is an error)."""
    return await unsealed(request, ticket, browser) if ticket else None


async def signup_page(request: Request) -> Response:
    pages, services = services_of(request)
    browser = pages.browser(request)
    if not services.settings.open_registration:
        return pages.error(404, "not_found", "Registration is closed. Ask an administrator for an account.")
    ticket = request.query_params.get("ticket", "")
    flight = await _flight(request, browser, ticket)
    return _form(pages, browser, ticket if flight else "", flight=flight)


async def signup(request: Request) -> Response:
    pages, services = services_of(request)
    browser = pages.browser(request)
    if not services.settings.open_registration:
        return pages.error(404, "not_found", "Registration is closed. Ask an administrator for an account.")
    try:
        form = await read_form(request, services.settings.max_body_bytes)
    except OAuthError as exc:
        return pages.error(exc.status_code, exc.error, exc.description)
    if browser[1] or not pages.seal.csrf_ok(browser[0], form.get("csrf")):
        return csrf_refused(pages)
    ticket = form.get("ticket") or ""
    values = {name: form.get(name) or "" for name in ("username", "email", "password")}
    flight = await _flight(request, browser, ticket)
    return await _register(request, pages, browser, flight, ticket, values)


async def _register(
    request: Request, pages: Pages, browser: tuple[str, bool], flight: Flight | None, ticket: str,
    values: dict[str, str],
) -> Response:
    _, services = services_of(request)
    ip, agent = remote(request, services)
    try:
        await limit_registrations(services, ip)
        services.users.admit_registration()
        fields: dict[str, object] = {k: v for k, v in values.items() if v or k != "email"}
        user = await services.ops.users.register(parse_registration(fields), ip)
    except UserInputError as exc:
        return _form(pages, browser, ticket, 422, values, exc.errors, flight=flight)
    except Conflict:
        taken = {"username": "That username is already taken."}
        return _form(pages, browser, ticket, 409, values, taken, flight=flight)
    except (ProblemError, PasswordsBusy) as exc:
        await asyncio.sleep(services.settings.register_refusal_pause)
        retry = exc.headers.get("Retry-After", "a few")
        busy = f"Too busy right now. Try again in {retry} seconds."
        return _form(pages, browser, ticket, exc.status, values, error=busy, flight=flight)
    session, cookie = await signed_in(request, user.user_id, ip, agent)
    if flight is not None:
        response = await proceed(request, Flight(flight.request, flight.pairs, browser, session.session_id), session)
    else:
        response = pages.render(
            "message.html", 201, title="Account created",
            message=f"Your account {user.username} is ready, and you are signed in.",
            note="Go back to the application you want to use and sign in there.",
        )
    pages.set_cookie(response, pages.session_cookie, cookie, services.settings.session_absolute_ttl)
    return response
