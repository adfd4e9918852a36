"""The README's browser sign-in walkthrough, run as written with a real headless Chromium doing
what the reader does in a browser: its shell blocks (the CLI, openssl PKCE, curl exchange,
userinfo, refresh, logout URL) in bash, and its authlib script with ``input()`` answered by the
browser. Only the issuer's and the application's addresses differ."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from issuer.services import Services
from tests.browser import RelyingParty, ThreadServer, browser_settings, launch_chromium
from tests.conftest import OPERATOR, cli_env
from tests.pages_helpers import add_user, query_of
from tests.servers import REPO_ROOT, child_env
from tests.test_browser_signin import sign_in

pytestmark = pytest.mark.timeout(120)

README_ISSUER, README_APP = "http://127.0.0.1:8000", "http://127.0.0.1:5000"


def _section() -> str:
    text = (REPO_ROOT / "README.md").read_text()
    start = text.index("## Walkthrough: browser sign-in")
    return text[start : text.index("\n## ", start + 1)]


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    yield from launch_chromium()


@pytest.fixture(scope="module")
def app() -> Iterator[RelyingParty]:
    server = RelyingParty()
    yield server
    server.close()


@pytest.fixture(scope="module")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadServer]:
    directory = tmp_path_factory.mktemp("readme-browser")
    server = ThreadServer(browser_settings(f"sqlite:///{directory / 'issuer.sqlite3'}", directory)).start()

    async def alice(services: Services) -> None:
        await add_user(services, "alice")

    server.run(alice)
    yield server
    server.stop()


def _here(text: str, issuer: ThreadServer, app: RelyingParty) -> str:
    for old, new in ((README_ISSUER, issuer.url), (README_APP, app.url)):
        text = text.replace(old, new).replace(quote(old, safe=""), quote(new, safe=""))
    return text


def _sign_in_and_allow(page: Any, url: str, app: RelyingParty) -> dict[str, str]:
    page.goto(url)
    if page.get_by_label("Password").count():
        sign_in(page, "alice")
    allow = page.get_by_role("button", name="Allow")
    for _ in range(100):  # the consent page (once per client and scopes), or straight back
        if page.url.startswith(app.url):
            return query_of(page.url)
        if allow.count():
            allow.click()
        page.wait_for_timeout(100)
    raise AssertionError(f"not back at the application: {page.url}")


def test_the_shell_walkthrough_signs_in_exchanges_refreshes_and_logs_out(
    issuer: ThreadServer, app: RelyingParty, chromium: Any, tmp_path: Path
) -> None:
    (tmp_path / ".venv").symlink_to(Path(sys.executable).parent.parent)
    env = child_env(cli_env(issuer.settings.database_url, issuer.settings.data_dir))
    state = ""

    def bash(block: str, *keep: str) -> str:
        nonlocal state
        declare = "echo\n" + "".join(f"declare -p {name}\n" for name in keep)
        script = f"set -e -o pipefail\n{state}\n{_here(block, issuer, app)}\n{declare}"
        run = subprocess.run(["bash", "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, (script, run.stdout, run.stderr)
        declared = [line for line in run.stdout.splitlines() if line.startswith("declare -")]
        state += "\n".join(declared) + "\n"
        return "\n".join(line for line in run.stdout.splitlines() if not line.startswith("declare -"))

    register, authorize, exchange, logout = re.findall(r"```sh\n(.*?)```", _section(), re.S)
    # alice exists already: the CLI would prompt for her password on a terminal
    register = "\n".join(line for line in register.splitlines() if "users create" not in line)
    bash(register, "CLIENT_ID", "CLIENT_SECRET")
    url = bash(authorize, "CODE_VERIFIER", "STATE", "NONCE").strip()

    page = chromium.new_context().new_page()
    back = _sign_in_and_allow(page, url, app)
    assert back["iss"] == issuer.url and f"STATE=\"{back['state']}\"" in state
    out = bash(exchange.replace("CODE=…", f"CODE={back['code']}"), "ID_TOKEN")
    assert '"id_token":' in out and '"preferred_username":"alice"' in out and '"email_verified":' in out
    assert out.count('"refresh_token":') == 2  # the exchange and the refresh

    page.goto(bash(logout).strip())
    page.wait_for_url(app.url + "/?*")
    assert query_of(page.url)["state"] == back["state"]
    page.context.close()


def test_the_authlib_script_signs_in_validates_the_id_token_and_refreshes(
    issuer: ThreadServer, app: RelyingParty, chromium: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def register(services: Services) -> tuple[str, str]:
        created, secret = await services.ops.clients.create(
            OPERATOR, "notes-web", ("authorization_code", "refresh_token"), ("notes:read",),
            ("https://api.example.com",), redirect_uris=(app.url + "/callback",),
        )
        assert secret is not None
        return created.client_id, secret

    client_id, secret = issuer.run(register)
    monkeypatch.setenv("CLIENT_ID", client_id)
    monkeypatch.setenv("CLIENT_SECRET", secret)
    [script] = re.findall(r"```python\n(.*?)```", _section(), re.S)
    page = chromium.new_context().new_page()
    printed: list[tuple[Any, ...]] = []

    def browser(prompt: str) -> str:
        _sign_in_and_allow(page, printed[-1][1], app)
        return str(page.url)

    names: dict[str, Any] = {"__name__": "__main__", "input": browser, "print": lambda *args: printed.append(args)}
    exec(compile(_here(script, issuer, app), "README.md", "exec"), names)  # noqa: S102 - the README's own code
    sub, info = printed[-1]
    assert info["sub"] == sub and info["preferred_username"] == "alice"
    assert names["tokens"]["id_token"] and names["tokens"]["refresh_token"]
    page.context.close()
