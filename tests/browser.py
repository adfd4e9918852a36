"""Browser-test harness: the issuer served by uvicorn on a thread, headless Debian Chromium
driven by Playwright's Python package (never its downloaded browsers), and a screenshot helper.

Chromium comes from ``apt-get install chromium`` (.ci/run does it); where it is missing the
browser tests skip with that reason, except under CI=true, where they fail.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import uvicorn

from issuer.app import create_app
from issuer.services import Services, open_services
from issuer.settings import Settings
from tests.conftest import TEST_KEK, throwaway_pg_database, unavailable
from tests.servers import free_port

T = TypeVar("T")

CHROMIUM = os.environ.get("ISSUER_TEST_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
# Where the screenshots go: ISSUER_TEST_SCREENS, else <temp dir>/issuer-screens.
SCREENS = Path(
    os.environ.get("ISSUER_TEST_SCREENS")
    or os.path.join(tempfile.gettempdir(), "issuer-screens")
)
WIDTHS = (360, 1280)


class ThreadServer:
    """One issuer on 127.0.0.1:<free port>, in this process, on its own thread and event loop."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.port = int(settings.url.rsplit(":", 1)[1])
        config = uvicorn.Config(
            create_app(settings), host="127.0.0.1", port=self.port, log_level="warning", lifespan="on"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="issuer-browser-test", daemon=True)

    @property
    def url(self) -> str:
        return self.settings.url

    def start(self) -> ThreadServer:
        async def migrate() -> None:
            services = await open_services(self.settings, run_migrations=True)
            await services.close()

        off_loop(asyncio.run, migrate())
        self._thread.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self._server.started:
                return self
            if not self._thread.is_alive():
                raise RuntimeError("the issuer thread exited while starting")
            time.sleep(0.05)
        raise RuntimeError("the issuer did not start within 30 s")

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(15)

    def run(self, work: Callable[[Services], Awaitable[T]]) -> T:
        """``work(services)`` on services of its own over the same database (a CLI's view), on a
        thread of its own: Playwright's sync API holds an event loop on this one."""

        async def go() -> T:
            services = await open_services(self.settings)
            try:
                return await work(services)
            finally:
                await services.close()

        result: T = off_loop(asyncio.run, go())
        return result


def off_loop(function: Callable[..., T], *args: Any) -> T:
    """``function(*args)`` on a thread of its own: Playwright's sync API holds an event loop on
    the test's thread, where neither asyncio.run nor pytest-asyncio may start another."""
    with ThreadPoolExecutor(1) as pool:
        result: T = pool.submit(function, *args).result()
        return result


@contextmanager
def pg_database_off_loop() -> Iterator[str]:
    """tests.conftest.throwaway_pg_database, created and dropped off the test's thread."""
    database = throwaway_pg_database("issuer_browser")
    url = off_loop(database.__enter__)
    try:
        yield url
    finally:
        off_loop(database.__exit__, None, None, None)


class RelyingParty:
    """The client's side of the redirects: a plain HTTP server on 127.0.0.1 that answers every GET
    with 200 and remembers the URLs it was sent to."""

    def __init__(self) -> None:
        landed: list[str] = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the http.server protocol
                landed.append(f"http://{self.headers['Host']}{self.path}")
                body = b"back at the app"
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self.landed = landed
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def browser_settings(database_url: str, data_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "url": f"http://127.0.0.1:{free_port()}",
        "database_url": database_url,
        "data_dir": data_dir,
        "key_encryption_keys": TEST_KEK,
        "argon2_time_cost": 1,
        "argon2_memory_kib": 7168,
        "signing_alg": "ES256",
        "bcrypt_max_cost": 4,
        "register_refusal_pause": 0,
        "log_level": "WARNING",
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


def launch_chromium() -> Iterator[Any]:
    """A headless Chromium (contexts per test are cheap, browsers are not). Use it from a
    module-scoped fixture of a module without async tests: while it runs, Playwright's sync API
    holds an event loop on the test thread."""
    if not Path(CHROMIUM).exists():
        unavailable(f"no Chromium at {CHROMIUM}: apt-get install chromium (browser tests skipped)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:  # pragma: no cover - it is a test dependency
        unavailable(f"playwright is not installed: {exc}")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield browser
        finally:
            browser.close()


def screenshot(page: Any, name: str) -> list[Path]:
    """``page`` at each of WIDTHS (full page) into SCREENS/<name>-<width>.png."""
    SCREENS.mkdir(parents=True, exist_ok=True)
    paths = []
    original = page.viewport_size
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 800})
        path = SCREENS / f"{name}-{width}.png"
        page.screenshot(path=str(path), full_page=True)
        paths.append(path)
    if original:
        page.set_viewport_size(original)
    return paths


def get(url: str, **kwargs: Any) -> httpx.Response:
    with httpx.Client(timeout=10) as client:
        return client.get(url, **kwargs)


def skip_unless_chromium() -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM}")
