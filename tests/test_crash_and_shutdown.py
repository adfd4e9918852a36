"""Stopping and crashing real issuer processes.

SIGTERM is a graceful stop: the requests already being served complete normally, no new
connection is accepted, and the process exits with status 0. SIGKILL is a crash: whatever it
interrupted, the key schedule in the database stays consistent (one active key, one pending
key) and a restarted issuer serves at once.
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
import signal
import sqlite3
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import asyncpg
import httpx
import jwt
import pytest

from issuer.accounts.users import NewUser
from issuer.services import open_services
from issuer.settings import Settings
from keys.envelope import new_kek
from tests.conftest import OPERATOR, run_cli, sqlite_file_url
from tests.servers import IssuerServer

pytestmark = pytest.mark.slow

API = "https://api.example.com"
ISSUER = "https://issuer.example.com"
PASSWORD = "a sufficiently long passphrase"


class ServeCommand(IssuerServer):
    """The issuer as deployed: ``issuer serve`` (the image's entry point), not bare uvicorn."""

    def command(self, port: int) -> list[str]:
        return [sys.executable, "-m", "issuer.cli", "serve", "--host", self.host, "--port", str(port)]


@dataclass
class Setup:
    env: dict[str, str]
    service: tuple[str, str]
    app: tuple[str, str]
    admin: tuple[str, str]


async def provision(database: str, **env: str) -> Setup:
    kek = new_kek()
    settings = Settings(_env_file=None, database_url=database, key_encryption_keys=kek)
    services = await open_services(settings, run_migrations=True)
    try:
        service, service_secret = await services.ops.clients.create(
            OPERATOR, "svc", ("client_credentials",), ("read",), (API,)
        )
        app, app_secret = await services.ops.clients.create(OPERATOR, "app", ("password",), ("read",), (API,))
        admin, admin_secret = await services.ops.clients.create(
            OPERATOR, "operator", ("client_credentials",), ("issuer:admin",), ()
        )
        await services.ops.users.create(OPERATOR, NewUser("shutdown-user", PASSWORD))
    finally:
        await services.close()
    assert service_secret and app_secret and admin_secret
    base = {
        "ISSUER_URL": ISSUER,
        "ISSUER_DATABASE_URL": database,
        "ISSUER_KEY_ENCRYPTION_KEYS": kek,
        "ISSUER_LOG_LEVEL": "INFO",
        **env,
    }
    return Setup(
        base, (service.client_id, service_secret), (app.client_id, app_secret), (admin.client_id, admin_secret)
    )


# -- graceful shutdown -----------------------------------------------------------------------

LOGINS = 40
TOKEN_REQUESTS = 40


def raw_request(server: IssuerServer, form: dict[str, str], creds: tuple[str, str]) -> bytes:
    body = urlencode(form).encode()
    auth = base64.b64encode(f"{creds[0]}:{creds[1]}".encode()).decode()
    head = (
        f"POST /oauth2/token HTTP/1.1\r\nHost: {server.host}:{server.port}\r\n"
        f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n"
        f"Authorization: Basic {auth}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


def parse_response(raw: bytes) -> tuple[int, dict[str, Any]]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body) if body else {}


async def wait_until_accepted(port: int, within: float = 20.0) -> None:
    """Until the listener on ``port`` has no connection waiting to be accepted (Linux: a listening
    socket's rx_queue in /proc/net/tcp is its accept backlog)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        waiting = 0
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                waiting += int(fields[4].split(":")[1], 16)
        if waiting == 0:
            return
        await asyncio.sleep(0.02)


async def test_sigterm_lets_in_flight_requests_finish(tmp_path: Path) -> None:
    setup = await provision(
        sqlite_file_url(tmp_path),
        # one user logs in many times at once: only the login rate limits would refuse that
        ISSUER_RATE_LIMIT_LOGIN_PER_USER="0",
        ISSUER_RATE_LIMIT_LOGIN_PER_IP="0",
        # argon2 at its default cost, on one thread: the logins queue up behind each other
        # (and leave a CPU to this test's client on a small machine)
        ISSUER_PASSWORD_HASH_THREADS="1",
        # ... and all of them may wait for it (the default queue would shed some with 503)
        ISSUER_PASSWORD_HASH_QUEUE=str(LOGINS),
    )
    server = ServeCommand(setup.env, log_path=tmp_path / "server.log").start()
    writers: list[asyncio.StreamWriter] = []
    try:
        assert server.process is not None and server.port is not None
        login = {"grant_type": "password", "username": "shutdown-user", "password": PASSWORD}
        requests = [raw_request(server, login, setup.app)] * LOGINS
        requests += [raw_request(server, {"grant_type": "client_credentials"}, setup.service)] * TOKEN_REQUESTS
        # every connection is open before any request is sent; then all requests go out at once
        streams = [await asyncio.open_connection(server.host, server.port) for _ in requests]
        writers = [w for _, w in streams]
        for (_, writer), request in zip(streams, requests, strict=True):
            writer.write(request)
        await asyncio.gather(*(w.drain() for w in writers))

        finished: list[float] = []

        async def answer(reader: asyncio.StreamReader) -> bytes:
            raw = await reader.read()  # Connection: close, so the answer ends at EOF
            finished.append(time.monotonic())
            return raw

        answers = [asyncio.create_task(answer(r)) for r, _ in streams]
        # SIGTERM closes the listener, which resets connections not yet accepted: wait until the
        # server has accepted every one (a busy machine may take longer than a moment), then let it read.
        await wait_until_accepted(server.port)
        await asyncio.sleep(0.05)
        server.process.send_signal(signal.SIGTERM)
        terminated_at = time.monotonic()

        # the listener closes at once: a new connection is refused while the others drain
        await asyncio.sleep(0.1)
        with pytest.raises(httpx.TransportError):
            async with httpx.AsyncClient(timeout=2) as fresh:
                await fresh.get(server.url + "/healthz")

        raws = await asyncio.wait_for(asyncio.gather(*answers), timeout=30)
        code = await asyncio.to_thread(server.process.wait, 30)
        log = server.log_tail(50000)
    finally:
        for writer in writers:
            writer.close()
        server.close()

    responses = [parse_response(raw) for raw in raws]
    assert [status for status, _ in responses] == [200] * len(requests), responses[:3]
    assert all(body["access_token"].count(".") == 2 for _, body in responses)
    assert all("refresh_token" not in body for _, body in responses[LOGINS:])
    in_flight = sum(1 for at in finished if at > terminated_at)
    assert in_flight >= LOGINS // 2, f"only {in_flight} requests were still in flight at SIGTERM"
    assert "Application shutdown complete" in log, log
    assert "Traceback" not in log, log
    # ended by its own graceful shutdown, not by the SIGKILL fallback of stop()
    assert code in (0, -signal.SIGTERM), code


def test_graceful_sigterm_exits_with_status_0(tmp_path: Path) -> None:
    """A supervisor (Kubernetes, systemd, docker) reads a non-zero status as a failed process;
    after a clean, complete shutdown the issuer must exit 0."""
    setup = asyncio.run(provision(sqlite_file_url(tmp_path)))
    server = ServeCommand(setup.env, log_path=tmp_path / "server.log").start()
    try:
        with httpx.Client(timeout=10) as http:
            response = http.post(
                server.url + "/oauth2/token", data={"grant_type": "client_credentials"}, auth=setup.service
            )
            assert response.status_code == 200
        code = server.stop(timeout=30)
        log = server.log_tail(20000)
    finally:
        server.close()
    assert "Application shutdown complete" in log, log
    assert code == 0, f"exit status {code} after a graceful shutdown"


# -- crash -----------------------------------------------------------------------------------


def key_states(database: str) -> list[str]:
    """The key states exactly as stored, without any issuer code in between."""
    if database.startswith("sqlite:"):
        conn = sqlite3.connect(database.removeprefix("sqlite:///"))
        try:
            return sorted(r[0] for r in conn.execute("SELECT state FROM signing_keys"))
        finally:
            conn.close()

    async def fetch() -> list[str]:
        conn = await asyncpg.connect(database)
        try:
            return sorted(r["state"] for r in await conn.fetch("SELECT state FROM signing_keys"))
        finally:
            await conn.close()

    return asyncio.run(fetch())


def admin_token(http: httpx.Client, server: IssuerServer, creds: tuple[str, str]) -> str:
    response = http.post(server.url + "/oauth2/token", data={"grant_type": "client_credentials"}, auth=creds)
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


async def _rotate_until_killed(server: IssuerServer, token: str, successes: list[float], workers: int) -> None:
    async with httpx.AsyncClient(timeout=5) as http:

        async def worker() -> None:
            for _ in range(10_000):
                try:
                    response = await http.post(
                        server.url + "/admin/keys/rotate",
                        params={"force": "true"},
                        headers={"Authorization": f"Bearer {token}"},
                    )
                except httpx.TransportError:
                    return
                assert response.status_code == 200, response.text
                successes.append(time.monotonic())

        await asyncio.gather(*(worker() for _ in range(workers)))


def test_sigkill_during_forced_rotations_leaves_a_consistent_schedule(own_database: str, tmp_path: Path) -> None:
    setup = asyncio.run(provision(own_database))
    workers = 3
    successes: list[float] = []
    server = IssuerServer(setup.env, log_path=tmp_path / "server.log").start()
    try:
        with httpx.Client(timeout=10) as http:
            token = admin_token(http, server, setup.admin)

        async def run() -> None:
            rotating = asyncio.create_task(_rotate_until_killed(server, token, successes, workers))
            deadline = time.monotonic() + 15
            while len(successes) < 5 and time.monotonic() < deadline and not rotating.done():
                await asyncio.sleep(0.02)
            assert len(successes) >= 5, server.log_tail()
            await asyncio.sleep(random.uniform(0.05, 0.4))  # land somewhere inside a rotation
            await asyncio.to_thread(server.kill)
            await asyncio.wait_for(rotating, timeout=10)

        asyncio.run(run())
    finally:
        server.close()

    # straight from the database: every rotation was all or nothing
    states = key_states(own_database)
    assert states.count("active") == 1 and states.count("pending") == 1, states
    committed = states.count("retired")
    assert len(successes) <= committed <= len(successes) + workers, (len(successes), states)
    assert set(states) <= {"active", "pending", "retired"}

    listed = run_cli(setup.env, "keys", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    rows: list[dict[str, Any]] = json.loads(listed.stdout)
    assert sorted(r["state"] for r in rows) == states
    active = next(r["kid"] for r in rows if r["state"] == "active")

    with IssuerServer(setup.env, log_path=tmp_path / "restarted.log") as restarted, httpx.Client(timeout=10) as http:
        headers = {"Authorization": f"Bearer {admin_token(http, restarted, setup.admin)}"}
        items = http.get(restarted.url + "/admin/keys", headers=headers).json()["items"]
        assert sorted(i["state"] for i in items) == states
        assert next(i["kid"] for i in items if i["state"] == "active") == active
        response = http.post(
            restarted.url + "/oauth2/token", data={"grant_type": "client_credentials"}, auth=setup.service
        )
        assert response.status_code == 200, response.text
        issued = response.json()["access_token"]
        assert jwt.get_unverified_header(issued)["kid"] == active
        jwks = http.get(restarted.url + "/.well-known/jwks.json").json()
        key = jwt.PyJWKSet.from_dict(jwks)[active]
        jwt.decode(issued, key.key, algorithms=["RS256"], audience=API, issuer=ISSUER)
        # every retired key is still published for the tokens it signed
        assert {k["kid"] for k in jwks["keys"]} == {i["kid"] for i in items}
        # and the schedule goes on: a further rotation works
        again = http.post(restarted.url + "/admin/keys/rotate", params={"force": "true"}, headers=headers)
        assert again.status_code == 200, again.text
