"""The pages' routes (paths shared with discovery: authorization_endpoint, end_session_endpoint).
They answer HTML and redirects to browsers, so /openapi.json (the JSON API) leaves them out."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from issuer.errors import ServiceUnavailable
from issuer.pages.flow import PageError
from issuer.pages.logout import logout
from issuer.pages.render import Pages, static
from issuer.pages.signin import authorize, consent, consent_page, login, login_page
from issuer.pages.signup import signup, signup_page

Handler = Callable[[Request], Awaitable[Response]]


def _html_errors(handler: Handler) -> Handler:
    """A page that stops early (PageError) answers its response; an outage answers a page, not
    JSON, to a person in a browser."""

    async def page(request: Request) -> Response:
        try:
            return await handler(request)
        except PageError as exc:
            return exc.response
        except ServiceUnavailable as exc:
            pages: Pages = request.state.pages
            response = pages.error(
                503, "temporarily_unavailable", "The service is unavailable for now. Try again in a moment."
            )
            response.headers["Retry-After"] = str(exc.retry_after)
            return response

    page.__name__ = handler.__name__
    return page


def page_routes() -> list[Route]:
    return [
        Route("/oauth2/authorize", _html_errors(authorize), methods=["GET", "POST"], include_in_schema=False),
        Route("/login", _html_errors(login_page), methods=["GET"], include_in_schema=False),
        Route("/login", _html_errors(login), methods=["POST"], include_in_schema=False),
        Route("/consent", _html_errors(consent_page), methods=["GET"], include_in_schema=False),
        Route("/consent", _html_errors(consent), methods=["POST"], include_in_schema=False),
        Route("/oauth2/logout", _html_errors(logout), methods=["GET", "POST"], include_in_schema=False),
        Route("/signup", _html_errors(signup_page), methods=["GET"], include_in_schema=False),
        Route("/signup", _html_errors(signup), methods=["POST"], include_in_schema=False),
        Route("/static/{name}", static, methods=["GET"], include_in_schema=False),
    ]
