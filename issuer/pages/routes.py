"""The pages' routes (paths shared with discovery: authorization_endpoint, end_session_endpoint).
They answer HTML and redirects to browsers, so /openapi.json (the JSON API) leaves them out."""

from __future__ import annotations

from starlette.routing import Route

from issuer.pages.logout import logout
from issuer.pages.render import static
from issuer.pages.signin import authorize, consent, consent_page, login, login_page
from issuer.pages.signup import signup, signup_page


def page_routes() -> list[Route]:
    return [
        Route("/oauth2/authorize", authorize, methods=["GET", "POST"], include_in_schema=False),
        Route("/login", login_page, methods=["GET"], include_in_schema=False),
        Route("/login", login, methods=["POST"], include_in_schema=False),
        Route("/consent", consent_page, methods=["GET"], include_in_schema=False),
        Route("/consent", consent, methods=["POST"], include_in_schema=False),
        Route("/oauth2/logout", logout, methods=["GET", "POST"], include_in_schema=False),
        Route("/signup", signup_page, methods=["GET"], include_in_schema=False),
        Route("/signup", signup, methods=["POST"], include_in_schema=False),
        Route("/static/{name}", static, methods=["GET"], include_in_schema=False),
    ]
