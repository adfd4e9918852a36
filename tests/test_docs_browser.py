"""/docs in real headless Chromium: Swagger UI renders with nothing fetched from elsewhere and no
CSP violation, and "Authorize" signs in through the hosted pages with the development docs client
(authorization code + PKCE, public client), so "Try it out" calls /userinfo with the token.
Screenshots at 360 and 1280 px (tests/browser.py). About 5 s: a real browser loads Swagger UI's
1.5 MB bundle, signs in through a popup and makes a live call."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from issuer.services import Services
from tests.browser import SCREENS, WIDTHS, ThreadServer, browser_settings, launch_chromium
from tests.pages_helpers import add_user
from tests.test_browser_signin import sign_in

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    yield from launch_chromium()


@pytest.fixture(scope="module")
def docs_issuer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadServer]:
    directory = tmp_path_factory.mktemp("browser-docs")
    settings = browser_settings(f"sqlite:///{directory / 'issuer.sqlite3'}", directory, docs_client_id="issuer-docs")
    server = ThreadServer(settings).start()
    yield server
    server.stop()


def _watched_page(chromium: Any, server: ThreadServer) -> tuple[Any, list[str]]:
    """A page that may reach the issuer only (anything else is aborted, as offline), and the
    console errors, page errors and outside requests it saw."""
    context = chromium.new_context(viewport={"width": 1280, "height": 800})
    problems: list[str] = []

    def gate(route: Any) -> None:
        if route.request.url.startswith(server.url + "/"):
            route.continue_()
        else:
            problems.append("outside request: " + route.request.url)
            route.abort()

    def watch(page: Any) -> None:  # the docs page and the sign-in popup alike
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))

    context.route("**/*", gate)
    context.on("page", watch)
    return context.new_page(), problems


def _screens(page: Any, name: str, focus: Any = None) -> None:
    """What a reader sees first (the viewport, not the whole long page) at each width."""
    SCREENS.mkdir(parents=True, exist_ok=True)
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 800})
        if focus is not None:
            focus.scroll_into_view_if_needed()
        page.screenshot(path=str(SCREENS / f"{name}-{width}.png"))
    page.set_viewport_size({"width": 1280, "height": 800})


def test_docs_render_offline_and_authorize_signs_in_with_the_docs_client(
    chromium: Any, docs_issuer: ThreadServer
) -> None:
    server = docs_issuer

    async def alice(services: Services) -> str:
        return (await add_user(services, "docs-alice")).username

    username = server.run(alice)
    page, problems = _watched_page(chromium, server)
    page.goto(server.url + "/docs")
    page.locator(".opblock-tag").first.wait_for()
    assert page.locator(".opblock").count() > 20
    _screens(page, "docs")

    page.locator(".scheme-container button.authorize").click()
    scheme = page.locator(".modal-ux .auth-container").filter(has_text="authorizationCode")
    assert scheme.locator("input[id^=client_id]").input_value() == "issuer-docs"
    _screens(page, "docs-authorize", scheme)
    with page.expect_popup() as opened:
        scheme.locator("button.authorize").click()
    popup = opened.value
    sign_in(popup, username)  # first-party: no consent page
    popup.wait_for_event("close", timeout=15_000)
    scheme.locator("button", has_text="Logout").wait_for(timeout=10_000)  # Swagger UI holds a token
    assert "Authorized" in scheme.inner_text(), problems
    page.locator(".modal-ux .close-modal").click()

    userinfo = page.locator("#operations-account-userinfo")
    userinfo.locator(".opblock-summary").click()
    userinfo.get_by_role("button", name="Try it out").click()
    userinfo.get_by_role("button", name="Execute").click()
    answer = userinfo.locator(".live-responses-table .response .response-col_status").first
    answer.wait_for()
    assert answer.inner_text().strip().startswith("200"), answer.inner_text()
    assert f'"preferred_username": "{username}"' in userinfo.locator(".live-responses-table").inner_text()
    _screens(page, "docs-userinfo", userinfo.locator(".live-responses-table"))
    assert problems == []
