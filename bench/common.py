"""Small shared utilities: loopback HTTP, processes, JWT segments, constants."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
PYTHON = sys.executable
WARMUP_SECONDS = 2.0
SCOPES = ("read:orders", "write:orders")
AUDIENCE = "https://api.example.com"
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
CC_BODY = urllib.parse.urlencode({"grant_type": "client_credentials", "scope": " ".join(SCOPES)})


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never route loopback via a proxy


def http(
    method: str, url: str, body: str | None = None, headers: dict[str, str] | None = None, timeout: float = 5.0
) -> tuple[int, bytes]:
    assert urllib.parse.urlsplit(url).hostname == HOST, "benchmark traffic goes to 127.0.0.1 only"
    data = body.encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with _NO_PROXY.open(req, timeout=timeout) as resp:
            return int(resp.status), bytes(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def response_header(url: str, name: str) -> str | None:
    """One header of a GET answered 200 (e.g. the JWKS ETag)."""
    assert urllib.parse.urlsplit(url).hostname == HOST
    with _NO_PROXY.open(urllib.request.Request(url), timeout=5.0) as resp:
        resp.read()
        value = resp.headers.get(name)
        return None if value is None else str(value)


def form_post(url: str, body: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    status, raw = http("POST", url, body, {**FORM, **(headers or {})}, timeout=30.0)
    try:
        return status, dict(json.loads(raw))
    except ValueError:
        return status, {"raw": raw[:300].decode("latin-1")}


def basic_auth(client_id: str, secret: str) -> str:
    """RFC 6749 §2.3.1: form-urlencode id and secret, then base64 "id:secret"."""
    raw = f"{urllib.parse.quote_plus(client_id)}:{urllib.parse.quote_plus(secret)}"
    return "Basic " + base64.b64encode(raw.encode()).decode()


def password_body(client_id: str, username: str, password: str) -> str:
    return urllib.parse.urlencode(
        {"grant_type": "password", "username": username, "password": password, "client_id": client_id,
         "scope": " ".join(SCOPES)}
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def port_in_use(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((HOST, port)) == 0


def taskset(cpu: int | str | None) -> list[str]:
    """The prefix that pins a command from its first instruction: a cpu (0) or a list ("0,1")."""
    return ["taskset", "-c", str(cpu)] if cpu is not None and shutil.which("taskset") else []


def stop_process(proc: subprocess.Popen[Any] | None, name: str, grace: float = 10.0) -> None:
    """SIGTERM the process group we created (start_new_session), then SIGKILL after `grace` s."""
    if proc is None or proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            log(f"{name} (pid {proc.pid}) ignored {sig.name}")


def wait_http_ok(
    url: str, proc: subprocess.Popen[Any], timeout: float, name: str, logfile: Path | None
) -> None:
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / 0.1) + 1):
        if proc.poll() is not None:
            tail = logfile.read_text()[-3000:] if logfile and logfile.exists() else ""
            raise RuntimeError(f"{name} exited with {proc.returncode} before becoming healthy:\n{tail}")
        with contextlib.suppress(OSError):
            status, _ = http("GET", url, timeout=1.0)
            if status == 200:
                return
        if time.monotonic() > deadline:
            break
        time.sleep(0.1)
    raise RuntimeError(f"{name} did not answer 200 on {url} within {timeout:.0f}s")


def jwt_segment(token: str, index: int) -> dict[str, Any]:
    """Header (0) or claims (1) of a compact JWS, unverified."""
    seg = token.split(".")[index]
    return dict(json.loads(base64.urlsafe_b64decode(seg + "=" * (-len(seg) % 4))))


@contextlib.contextmanager
def patched_environ(env: dict[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def pg_execute(url: str, *statements: str) -> list[Any]:
    """Each statement's rows (asyncpg Records), on one short-lived connection."""
    import asyncpg

    async def run() -> list[Any]:
        conn = await asyncpg.connect(url, timeout=10)
        try:
            return [await conn.fetch(sql) for sql in statements]
        finally:
            await conn.close()

    return asyncio.run(run())
