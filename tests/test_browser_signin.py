"""Real headless Chromium through the hosted pages, with authlib's OAuth2Session as the client:
login → code → tokens, ID token validation, userinfo, refresh, SSO, prompt, consent, logout,
CSRF, no user enumeration, the error page, keyboard-only sign-in; screenshots of every page.

One issuer per backend and one browser for the session; each test gets a fresh browser context
(its own cookies). PostgreSQL runs the main flow only."""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session

from issuer.services import Services
from tests.browser import (
    RelyingParty,
    ThreadServer,
    browser_settings,
    launch_chromium,
    pg_database_off_loop,
    screenshot,
)
from tests.conftest import OPERATOR, unavailable
from tests.pages_helpers import PASSWORD, add_user, query_of

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    yield from launch_chromium()


@pytest.fixture(scope="session")
def rp() -> Iterator[RelyingParty]:
    server = RelyingParty()
    yield server
    server.close()


@pytest.fixture(scope="session")
def sqlite_issuer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadServer]:
    directory = tmp_path_factory.mktemp("browser-sqlite")
    server = ThreadServer(browser_settings(f"sqlite:///{directory / 'issuer.sqlite3'}", directory)).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres_issuer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadServer]:
    directory = tmp_path_factory.mktemp("browser-postgres")
    with pg_database_off_loop() as url:
        server = ThreadServer(browser_settings(url, directory)).start()
        yield server
        server.stop()


@pytest.fixture(params=["sqlite", "postgres"])
def any_issuer(request: pytest.FixtureRequest) -> ThreadServer:
    server: ThreadServer = request.getfixturevalue(f"{request.param}_issuer")
    return server


@pytest.fixture
def issuer(sqlite_issuer: ThreadServer) -> ThreadServer:
    return sqlite_issuer


@pytest.fixture
def page(chromium: Any) -> Iterator[Any]:
    context = chromium.new_context(viewport={"width": 1280, "height": 800})
    try:
        yield context.new_page()
    finally:
        context.close()


class App:
    """A relying party: a registered public client, its authlib session, and the redirects it got."""

    def __init__(
        self, server: ThreadServer, rp: RelyingParty, *, first_party: bool = True, scope: str = "openid profile email"
    ) -> None:
        self.server = server
        self.rp = rp
        self.callback, self.bye = rp.url + "/callback", rp.url + "/bye"

        async def register(services: Services) -> str:
            created, _ = await services.ops.clients.create(
                OPERATOR, f"Photo Gallery {secrets.token_hex(2)}", ("authorization_code", "refresh_token"),
                ("photos:read",), ("https://api.example.com",), public=True, redirect_uris=(self.callback,),
                post_logout_redirect_uris=(self.bye,), first_party=first_party,
            )
            return created.client_id

        self.client_id = server.run(register)
        self.oauth = OAuth2Session(
            self.client_id, redirect_uri=self.callback, scope=scope, code_challenge_method="S256",
            token_endpoint_auth_method="none",
        )
        self.landed = ""

    def authorization_url(self, **extra: str) -> tuple[str, str, str]:
        verifier, nonce = generate_token(48), generate_token(16)
        url, _ = self.oauth.create_authorization_url(
            self.server.url + "/oauth2/authorize", code_verifier=verifier, nonce=nonce, **extra
        )
        return url, verifier, nonce

    def open(self, page: Any, **extra: str) -> tuple[str, str]:
        """Start an authorization in ``page``; returns (verifier, nonce)."""
        url, verifier, nonce = self.authorization_url(**extra)
        page.goto(url)
        return verifier, nonce

    def tokens(self, verifier: str) -> dict[str, Any]:
        token: dict[str, Any] = self.oauth.fetch_token(
            self.server.url + "/oauth2/token", authorization_response=self.landed, code_verifier=verifier
        )
        return token

    def id_claims(self, id_token: str, nonce: str | None) -> dict[str, Any]:
        keys = jwt.PyJWKClient(self.server.url + "/.well-known/jwks.json")
        key = keys.get_signing_key_from_jwt(id_token)
        assert jwt.get_unverified_header(id_token)["typ"] == "JWT"
        claims: dict[str, Any] = jwt.decode(
            id_token, key.key, algorithms=["ES256"], audience=self.client_id, issuer=self.server.url,
        )
        if nonce is not None:
            assert claims["nonce"] == nonce
        return claims


def sign_in(page: Any, username: str, password: str = PASSWORD) -> None:
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def user(server: ThreadServer, name: str | None = None, *, disabled: bool = False) -> str:
    username = name or "user" + secrets.token_hex(4)

    async def create(services: Services) -> None:
        await add_user(services, username, disabled=disabled)

    server.run(create)
    return username


def focused(page: Any, element_id: str) -> None:
    """Wait until ``element_id`` has the focus (fails after 5 s). Chromium applies autofocus a
    frame after "load"; a person sees the caret before typing."""
    page.wait_for_function(f"document.activeElement && document.activeElement.id === {element_id!r}", timeout=5_000)


def wait_landed(page: Any, app: App) -> dict[str, str]:
    """The query the client got back at its redirect URI."""
    page.wait_for_url(app.rp.url + "/**", timeout=10_000)
    app.landed = page.url
    return query_of(page.url)


def test_authlib_completes_the_code_flow_in_a_real_browser(
    any_issuer: ThreadServer, rp: RelyingParty, page: Any
) -> None:
    server = any_issuer
    app = App(server, rp)
    alice = user(server)
    verifier, nonce = app.open(page)
    focused(page, "username")
    sign_in(page, alice)
    assert "code" in wait_landed(page, app)
    token = app.tokens(verifier)
    claims = app.id_claims(token["id_token"], nonce)
    assert {"sub", "auth_time", "sid", "at_hash", "iat", "exp"} <= set(claims)
    assert claims["preferred_username"] == alice
    info = app.oauth.get(server.url + "/userinfo").json()
    assert info["sub"] == claims["sub"] and info["preferred_username"] == alice
    refreshed = app.oauth.refresh_token(server.url + "/oauth2/token")
    again = app.id_claims(refreshed["id_token"], None)
    assert (again["sub"], again["auth_time"], again["sid"]) == (claims["sub"], claims["auth_time"], claims["sid"])
    # SSO: a second authorization from this browser completes without the form.
    seen: list[str] = []
    page.on("request", lambda request: seen.append(request.url))
    verifier, nonce = app.open(page)
    assert "code" in wait_landed(page, app) and not any("/login" in url for url in seen)
    # RP-initiated logout with this session's ID token: straight back to the app, session ended.
    hint = app.tokens(verifier)["id_token"]
    page.goto(f"{server.url}/oauth2/logout?id_token_hint={hint}&post_logout_redirect_uri={app.bye}&state=bye1")
    assert page.url == app.bye + "?state=bye1"
    recent = server.run(lambda services: services.ops.audit.recent(limit=10))
    ended = [e for e in recent if e.action == "sessions.sign_out"]
    assert [(e.target, e.detail["session_id"], e.detail["reason"]) for e in ended] == [
        (claims["sub"], claims["sid"], "logout")
    ]
    app.open(page, prompt="none")
    assert wait_landed(page, app)["error"] == "login_required"


RP_NODE = Path(__file__).parent / "rp_node"


def openid_client(mode: str, **args: str) -> dict[str, Any]:
    """Run tests/rp_node/rp.mjs (openid-client under Node.js); .ci/run installs it with npm."""
    node = shutil.which("node")
    if node is None or not (RP_NODE / "node_modules" / "openid-client").is_dir():
        unavailable("openid-client is not installed: `npm ci --prefix tests/rp_node` (needs Node.js)")
    assert node is not None
    done = subprocess.run([node, "rp.mjs", mode, json.dumps(args)], cwd=RP_NODE, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr[-3000:]
    answer: dict[str, Any] = json.loads(done.stdout)
    return answer


def test_openid_client_completes_the_code_flow_in_a_real_browser(
    any_issuer: ThreadServer, rp: RelyingParty, page: Any
) -> None:
    """openid-client (Node.js) does discovery, PKCE, state, nonce, the RFC 9207 iss check, ID-token
    validation, userinfo and refresh its own way; Chromium signs in between its two halves."""
    server = any_issuer
    app = App(server, rp)
    alice = user(server)
    common = {"issuer": server.url, "client_id": app.client_id, "redirect_uri": app.callback, "alg": "ES256"}
    started = openid_client("start", **common)
    page.goto(started["url"])
    focused(page, "username")
    sign_in(page, alice)
    wait_landed(page, app)
    done = openid_client("finish", **common, callback=app.landed, verifier=started["verifier"],
                         state=started["state"], nonce=started["nonce"])
    claims, info, refreshed = done["claims"], done["userinfo"], done["refreshed"]
    assert claims["iss"] == server.url and claims["aud"] == app.client_id and claims["nonce"] == started["nonce"]
    assert claims["preferred_username"] == alice and info["sub"] == claims["sub"] == refreshed["sub"]
    assert refreshed["sid"] == claims["sid"] and refreshed["auth_time"] == claims["auth_time"]


def test_prompt_login_shows_the_form_again(issuer: ThreadServer, rp: RelyingParty, page: Any) -> None:
    app = App(issuer, rp)
    alice = user(issuer)
    app.open(page)
    sign_in(page, alice)
    wait_landed(page, app)
    verifier, nonce = app.open(page, prompt="login")
    page.get_by_label("Password").wait_for()
    assert page.get_by_label("Username").input_value() == ""
    sign_in(page, alice)
    assert "code" in wait_landed(page, app)


def test_consent_decline_accept_and_remembered(issuer: ThreadServer, rp: RelyingParty, page: Any) -> None:
    app = App(issuer, rp, first_party=False)
    alice = user(issuer)
    app.open(page)
    sign_in(page, alice)
    page.get_by_role("heading", name="Allow access?").wait_for()
    assert page.get_by_text("See your email address").is_visible()
    page.get_by_role("button", name="Deny").click()
    assert wait_landed(page, app)["error"] == "access_denied"
    verifier, _ = app.open(page)
    page.get_by_role("button", name="Allow").click()
    assert "code" in wait_landed(page, app)
    app.open(page, prompt="none")
    assert "code" in wait_landed(page, app)


def test_wrong_password_unknown_user_and_disabled_account_say_the_same(
    issuer: ThreadServer, rp: RelyingParty, page: Any
) -> None:
    app = App(issuer, rp)
    alice, dora = user(issuer), user(issuer, disabled=True)
    app.open(page)
    messages = []
    for name, password in ((alice, "not-the-password"), ("nobody-" + secrets.token_hex(3), PASSWORD), (dora, PASSWORD)):
        sign_in(page, name, password)
        alert = page.get_by_role("alert")
        messages.append(alert.inner_text())
        assert page.get_by_label("Password").get_attribute("aria-invalid") == "true"
        focused(page, "password")
    assert len(set(messages)) == 1 and "not right" in messages[0]


def test_a_forged_csrf_token_is_refused(issuer: ThreadServer, rp: RelyingParty, page: Any) -> None:
    app = App(issuer, rp)
    alice = user(issuer)
    app.open(page)
    page.evaluate("document.querySelector('input[name=csrf]').value = 'forged'")
    sign_in(page, alice)
    assert page.get_by_role("alert").inner_text().startswith("This form has expired")
    assert page.url.startswith(issuer.url)


def test_an_unregistered_redirect_uri_stays_on_the_issuer(issuer: ThreadServer, rp: RelyingParty, page: Any) -> None:
    app = App(issuer, rp)
    url, _, _ = app.authorization_url()
    landed = len(rp.landed)
    response = page.goto(url.replace("%2Fcallback", "%2Felsewhere"))
    assert response.status == 400 and page.url.startswith(issuer.url) and len(rp.landed) == landed
    assert "redirect" in page.get_by_role("alert").inner_text().lower()


def test_keyboard_only_sign_in(issuer: ThreadServer, rp: RelyingParty, page: Any) -> None:
    app = App(issuer, rp)
    alice = user(issuer)
    app.open(page)
    focused(page, "username")
    page.keyboard.type(alice)
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Sign in"
    page.keyboard.press("Enter")
    assert "code" in wait_landed(page, app)


def test_screenshots_of_every_page(issuer: ThreadServer, rp: RelyingParty, page: Any) -> None:
    app = App(issuer, rp, first_party=False)
    alice = user(issuer)
    shots: list[Path] = []
    app.open(page)
    shots += screenshot(page, "login")
    sign_in(page, alice, "wrong-password")
    shots += screenshot(page, "login-error")
    sign_in(page, alice)
    page.get_by_role("heading", name="Allow access?").wait_for()
    shots += screenshot(page, "consent")
    page.get_by_role("button", name="Allow").click()
    wait_landed(page, app)
    page.goto(f"{issuer.url}/oauth2/logout?client_id={app.client_id}")
    shots += screenshot(page, "logout")
    page.get_by_role("button", name="Sign out").click()
    page.get_by_role("status").wait_for()
    shots += screenshot(page, "signed-out")
    page.goto(f"{issuer.url}/oauth2/authorize?client_id=unknown")
    shots += screenshot(page, "error")
    app.open(page)
    page.get_by_role("link", name="Create an account").click()
    shots += screenshot(page, "signup")
    page.get_by_label("Username").fill("x")
    page.get_by_label("Password").fill("short")
    page.get_by_role("button", name="Create account").click()
    shots += screenshot(page, "signup-error")
    for path in shots:
        assert path.stat().st_size > 1000
    # Nothing is wider than the narrowest screen.
    page.set_viewport_size({"width": 360, "height": 800})
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
