"""The pages' routes (paths shared with discovery: authorization_endpoint, end_session_endpoint)."""

from __future__ import annotations

from starlette.routing import Route

from issuer.pages.logout import logout
from issuer.pages.render import static
from issuer.pages.signin import authorize, consent, consent_page, login, login_page
from issuer.pages.signup import signup, signup_page


def page_routes() -> list[Route]:
    return [
        Route("/oauth2/authorize", authorize, methods=["GET", "POST"]),
        Route("/login", login_page, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/consent", consent_page, methods=["GET"]),
        Route("/consent", consent, methods=["POST"]),
        Route("/oauth2/logout", logout, methods=["GET", "POST"]),
        Route("/signup", signup_page, methods=["GET"]),
        Route("/signup", signup, methods=["POST"]),
        Route("/static/{name}", static, methods=["GET"]),
    ]
