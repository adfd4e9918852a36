"""HTTP-layer limits of ``issuer serve`` (a real server process, raw sockets).

Slow request heads and bodies are cut off at their deadlines, an oversized head gets 431 (or
the connection closed) without the process growing, connections beyond the per-worker cap get
503 at once, a client that hangs up mid-body is logged as 499 (no 5xx, no traceback), and a
transfer coding other than plain chunked is refused.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from keys.envelope import new_kek
from tests.attacks import huge_headers, rss_mib, trickle
from tests.servers import IssuerServer

pytestmark = pytest.mark.slow


class ServeCommand(IssuerServer):
    """``issuer serve``, the deployed entry point, which carries the limits."""

    def command(self, port: int) -> list[str]:
        return [sys.executable, "-m", "issuer.cli", "serve", "--host", self.host, "--port", str(port)]


def serve(tmp: Path, **env: str) -> ServeCommand:
    base = {
        "ISSUER_DATABASE_URL": f"sqlite:///{tmp / 'issuer.sqlite3'}",
        "ISSUER_KEY_ENCRYPTION_KEYS": new_kek(),
        "ISSUER_SIGNING_ALG": "ES256",
        "ISSUER_LOG_LEVEL": "INFO",
        "ISSUER_HEADER_TIMEOUT": "1",
        "ISSUER_BODY_TIMEOUT": "1",
        **env,
    }
    return ServeCommand(base)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeCommand]:
    with serve(tmp_path_factory.mktemp("limits")) as running:
        yield running


def log_lines(server: IssuerServer) -> list[dict[str, Any]]:
    assert server.log_path is not None
    lines = []
    for line in server.log_path.read_text(errors="replace").splitlines():
        try:
            lines.append(json.loads(line))
        except ValueError:
            lines.append({"level": "raw", "msg": line})
    return lines


def port_of(server: IssuerServer) -> int:
    assert server.port is not None
    return server.port


def still_serves(server: IssuerServer) -> None:
    assert httpx.get(server.url + "/healthz", timeout=5).status_code == 200


def test_a_trickled_request_head_is_cut_off_at_the_deadline(server: ServeCommand) -> None:
    opened, still_open = asyncio.run(trickle("127.0.0.1", port_of(server), connections=100, wait=2.5, interval=0.2))
    assert opened == 100 and still_open == 0
    closed = [e for e in log_lines(server) if e.get("msg") == "connection closed"]
    assert any(e["reason"] == "request head not received within 1s" and e["level"] == "info" for e in closed)
    still_serves(server)


def test_a_trickled_body_is_cut_off_at_the_deadline(server: ServeCommand) -> None:
    opened, still_open = asyncio.run(
        trickle("127.0.0.1", port_of(server), connections=100, wait=2.5, body=True, interval=0.2)
    )
    assert opened == 100 and still_open == 0
    closed = [e for e in log_lines(server) if e.get("msg") == "connection closed"]
    assert any(e["reason"] == "request body not received within 1s" for e in closed)
    # the application saw the hang-up as a client disconnect, not as a server error
    assert not [e for e in log_lines(server) if e["level"] in ("error", "critical", "raw")]
    still_serves(server)


def test_an_oversized_request_head_gets_431(server: ServeCommand) -> None:
    with socket.create_connection(("127.0.0.1", port_of(server)), timeout=5) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (1 << 20) + b"\r\n\r\n")
        answer = sock.recv(100)
    assert answer.startswith(b"HTTP/1.1 431 "), answer
    still_serves(server)


@pytest.mark.parametrize(
    "head",
    [
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 17_000 + b"\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
        + b"".join(b"X-%d: %s\r\n" % (i, b"b" * 100) for i in range(200))
        + b"\r\n",
        b"GET /" + b"c" * 20_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    ],
    ids=["one-big-header", "many-headers", "long-request-line"],
)
def test_a_complete_head_just_over_the_limit_in_one_write_gets_431(server: ServeCommand, head: bytes) -> None:
    # The whole head in one segment: the parser completes it before any raw-byte count could.
    with socket.create_connection(("127.0.0.1", port_of(server)), timeout=5) as sock:
        sock.sendall(head)
        answer = sock.recv(100)
    assert answer.startswith(b"HTTP/1.1 431 "), answer
    still_serves(server)


def test_a_head_just_under_the_limit_is_served(server: ServeCommand) -> None:
    with socket.create_connection(("127.0.0.1", port_of(server)), timeout=5) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 15_000 + b"\r\nConnection: close\r\n\r\n")
        answer = sock.recv(100)
    assert answer.startswith(b"HTTP/1.1 200 "), answer


def test_huge_unterminated_headers_do_not_grow_the_process(server: ServeCommand) -> None:
    assert server.process is not None
    pid = server.process.pid
    idle = rss_mib(pid)
    # 10 connections x up to 50 MB each, bounded to 5 s
    peak, answers = asyncio.run(huge_headers("127.0.0.1", port_of(server), pid, megabytes=50, seconds=5))
    assert peak <= 1.5 * idle, (idle, peak)
    assert all(a == b"" or a.startswith(b"HTTP/1.1 431 ") for a in answers), answers
    still_serves(server)


def test_connections_beyond_the_cap_get_503_at_once(tmp_path: Path) -> None:
    with serve(tmp_path, ISSUER_MAX_CONNECTIONS="5", ISSUER_HEADER_TIMEOUT="30") as capped:
        held = [socket.create_connection(("127.0.0.1", port_of(capped)), timeout=5) for _ in range(5)]
        try:
            for sock in held:
                sock.sendall(b"GET /healthz HTTP/1.1\r\n")  # a head in progress keeps each open
            time.sleep(0.2)
            with socket.create_connection(("127.0.0.1", port_of(capped)), timeout=5) as extra:
                extra.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                answer = extra.recv(200)
            assert answer.startswith(b"HTTP/1.1 503 "), answer
            assert b"retry-after: 1" in answer.lower()
        finally:
            for sock in held:
                sock.close()
        time.sleep(0.3)
        still_serves(capped)
        refused = [e for e in log_lines(capped) if e.get("msg") == "connection refused"]
        assert [e["reason"] for e in refused] == ["too many connections"]


def test_a_client_hanging_up_mid_body_is_no_server_error(server: ServeCommand) -> None:
    for _ in range(20):
        with socket.create_connection(("127.0.0.1", port_of(server)), timeout=5) as sock:
            sock.sendall(
                b"POST /oauth2/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                b"Content-Length: 1000\r\n\r\ngrant_type=client_credentials&"
            )
            time.sleep(0.01)
    time.sleep(0.5)
    lines = log_lines(server)
    assert not [e for e in lines if e["level"] in ("error", "critical", "raw")], lines[-5:]
    hung_up = [e for e in lines if e.get("msg") == "request" and e.get("outcome") == "client disconnected"]
    assert len(hung_up) >= 20 and {e["status"] for e in hung_up} == {499}
    assert all(e["level"] == "info" for e in hung_up)
    metrics = httpx.get(server.url + "/metrics", timeout=5).text
    statuses = set(re.findall(r'issuer_http_request_duration_seconds_count\{[^}]*status="(\d+)"', metrics))
    # (the server is shared with the other tests here: the transfer-coding test's 501 may be counted)
    assert "499" in statuses and not any(s.startswith("5") and s != "501" for s in statuses), statuses


# We answer 501 (RFC 9112 §6.1); the parser itself already refuses codings that do not end in chunked.
@pytest.mark.parametrize(
    ("coding", "status"), [(b"gzip, chunked", 501), (b"chunked, chunked", 400), (b"identity", 400)]
)
def test_a_transfer_coding_other_than_chunked_is_refused(server: ServeCommand, coding: bytes, status: int) -> None:
    with socket.create_connection(("127.0.0.1", port_of(server)), timeout=5) as sock:
        sock.sendall(
            b"POST /oauth2/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            b"Transfer-Encoding: " + coding + b"\r\n\r\n5\r\nabcde\r\n0\r\n\r\n"
        )
        answer = sock.recv(1000)
    assert answer.startswith(b"HTTP/1.1 %d " % status), answer
    # a plain chunked body is still fine
    with socket.create_connection(("127.0.0.1", port_of(server)), timeout=5) as sock:
        sock.sendall(
            b"POST /oauth2/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n13\r\ngrant_type=password\r\n0\r\n\r\n"
        )
        answer = sock.recv(1000)
    assert answer.startswith(b"HTTP/1.1 401 "), answer  # no client credentials: a normal OAuth error


def _responses(raw: bytes) -> list[tuple[bytes, bytes]]:
    """(status line, body) of each HTTP/1.1 response in ``raw``, all with Content-Length."""
    found = []
    while raw:
        head, _, rest = raw.partition(b"\r\n\r\n")
        length = int(re.search(rb"(?i)\r\ncontent-length: (\d+)", head).group(1))  # type: ignore[union-attr]
        found.append((head.split(b"\r\n")[0], rest[:length]))
        raw = rest[length:]
    return found


def test_a_response_leaves_in_one_write(server: ServeCommand) -> None:
    """The head is held until the body (issuer.http.server._Exchange): the first read has both."""
    with socket.create_connection(("127.0.0.1", port_of(server)), timeout=5) as sock:
        for _ in range(5):
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            first = sock.recv(65536)
            assert _responses(first) == [(b"HTTP/1.1 200 OK", b'{"status":"ok"}')], first


def test_pipelined_requests_are_answered_in_order(server: ServeCommand) -> None:
    requests = (b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
                b"GET /.well-known/jwks.json HTTP/1.1\r\nHost: x\r\n\r\n"
                b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"
                b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    with socket.create_connection(("127.0.0.1", port_of(server)), timeout=5) as sock:
        sock.sendall(requests)
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
    answers = _responses(raw)
    assert [status for status, _ in answers] == [b"HTTP/1.1 200 OK", b"HTTP/1.1 200 OK", b"HTTP/1.1 404 Not Found",
                                                 b"HTTP/1.1 200 OK"]
    assert json.loads(answers[1][1])["keys"] and answers[3][1] == b'{"status":"ok"}'
