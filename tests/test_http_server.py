"""issuer.http.server.HttpProtocol, the HTTP/1.1 protocol ``issuer serve`` gives uvicorn, against
small ASGI apps under uvicorn's own Server on a loopback port, over raw sockets.

What an app sees and what a client gets must be uvicorn's: keep-alive and its timeout, HTTP/1.0,
``Expect: 100-continue``, chunked bodies both ways, HEAD, a streamed answer larger than the
transport's buffer, 400 for a malformed request, 500 for an app that fails or answers nothing,
no header injection, an upgrade request answered and closed. The limits (deadlines, 431, 503) and pipelining are tested
against a real ``issuer serve`` process in tests/test_http_limits.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import uvicorn

from issuer.http.server import HttpProtocol, Limits
from tests.servers import free_port

App = Callable[[dict[str, Any], Callable[[], Awaitable[dict[str, Any]]], Callable[[dict[str, Any]], Awaitable[None]]],
               Awaitable[None]]


@contextlib.asynccontextmanager
async def serving(app: App, keep_alive: float = 5.0, **limits: float) -> AsyncIterator[int]:
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, http=HttpProtocol, lifespan="off", log_config=None,
                            access_log=False, timeout_keep_alive=keep_alive)  # type: ignore[arg-type]
    previous = HttpProtocol.limits
    HttpProtocol.limits = Limits(**{"max_header_bytes": 8192, "header_timeout": 10.0, "body_timeout": 10.0,
                                    "max_connections": 100, **limits})  # type: ignore[arg-type]
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        yield port
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
        HttpProtocol.limits = previous


async def connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port)


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[bytes, bytes], bytes]:
    """One response: status, headers (lower-case names) and the body (by length or chunks)."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    headers: dict[bytes, bytes] = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
    body = b""
    if headers.get(b"transfer-encoding") == b"chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                break
            body += chunk[:-2]
    elif b"content-length" in headers:
        body = await asyncio.wait_for(reader.readexactly(int(headers[b"content-length"])), 5)
    return status, headers, body


async def closed(reader: asyncio.StreamReader, within: float = 5.0) -> bool:
    return await asyncio.wait_for(reader.read(), within) == b""


async def echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers with the method, path, query and the whole request body."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    out = b"%s %s?%s %s" % (scope["method"].encode(), scope["path"].encode(), scope["query_string"], body)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(out)).encode())]})
    await send({"type": "http.response.body", "body": out})


async def test_keep_alive_serves_several_requests_then_closes_when_idle() -> None:
    async with serving(echo, keep_alive=0.3) as port:
        reader, writer = await connect(port)
        for n in range(3):
            writer.write(b"POST /x%d?q=%d HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc" % (n, n))
            status, headers, body = await read_response(reader)
            assert (status, body) == (200, b"POST /x%d?q=%d abc" % (n, n))
            assert b"date" in headers and b"connection" not in headers
        assert await closed(reader, within=3)  # idle past the keep-alive timeout
        writer.close()


async def test_a_percent_encoded_path_is_decoded_and_raw_path_kept() -> None:
    seen: list[tuple[str, bytes]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append((scope["path"], scope["raw_path"]))
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async with serving(app) as port:
        reader, writer = await connect(port)
        writer.write(b"GET /a%20b/c HTTP/1.1\r\nHost: t\r\n\r\n")
        status, headers, body = await read_response(reader)
        assert (status, body) == (204, b"") and b"transfer-encoding" not in headers
        assert seen == [("/a b/c", b"/a%20b/c")]
        writer.close()


UPGRADE = (b"GET /ws HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")


@pytest.mark.parametrize(
    ("request_bytes", "status", "body", "connection"),
    [
        pytest.param(b"GET /old HTTP/1.0\r\n\r\n", 200, b"GET /old? ", b"close", id="HTTP/1.0"),
        pytest.param(b"GET / HTTP/1.1\r\nHost t\r\n\r\n", 400, b"Invalid HTTP request received.", b"close",
                     id="malformed"),
        # no protocol but HTTP/1.1 here: answered, then closed (nothing after it can be parsed)
        pytest.param(UPGRADE, 200, b"GET /ws? ", b"close", id="upgrade"),
    ],
)
async def test_answered_then_closed(request_bytes: bytes, status: int, body: bytes, connection: bytes | None) -> None:
    async with serving(echo) as port:
        reader, writer = await connect(port)
        writer.write(request_bytes)
        got_status, headers, got_body = await read_response(reader)
        assert (got_status, got_body, headers.get(b"connection")) == (status, body, connection)
        assert await closed(reader)
        writer.close()


async def test_expect_100_continue_is_answered_when_the_app_reads_the_body() -> None:
    async with serving(echo) as port:
        reader, writer = await connect(port)
        writer.write(b"POST /up HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
        assert await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5) == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(b"hello")
        status, _, body = await read_response(reader)
        assert (status, body) == (200, b"POST /up? hello")
        writer.close()


async def test_a_chunked_request_body_arrives_whole() -> None:
    async with serving(echo) as port:
        reader, writer = await connect(port)
        writer.write(b"POST /c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")
        await asyncio.sleep(0.05)
        writer.write(b"4\r\ndefg\r\n0\r\n\r\n")
        status, _, body = await read_response(reader)
        assert (status, body) == (200, b"POST /c? abcdefg")
        writer.close()


async def streamed(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """No content-length: a chunked answer of 64 parts of 16 KiB (1 MiB, more than the transport
    buffers), each part's bytes its index."""
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    for n in range(64):
        await send({"type": "http.response.body", "body": bytes([65 + n % 26]) * 16384, "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def test_a_streamed_answer_is_chunked_in_order_and_the_connection_reused() -> None:
    async with serving(streamed) as port:
        reader, writer = await connect(port)
        writer.write(b"GET /s HTTP/1.1\r\nHost: t\r\n\r\n")
        await asyncio.sleep(0.2)  # let the server fill its buffers while nothing is read
        status, headers, body = await read_response(reader)
        assert (status, headers[b"transfer-encoding"], len(body)) == (200, b"chunked", 64 * 16384)
        assert body == b"".join(bytes([65 + n % 26]) * 16384 for n in range(64))
        writer.write(b"GET /s HTTP/1.1\r\nHost: t\r\n\r\n")
        assert len((await read_response(reader))[2]) == 64 * 16384
        writer.close()


async def test_head_gets_the_headers_without_a_body() -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"5")]})
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else b"hello"})

    async with serving(app) as port:
        reader, writer = await connect(port)
        writer.write(b"HEAD / HTTP/1.1\r\nHost: t\r\n\r\nGET / HTTP/1.1\r\nHost: t\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"content-length: 5\r\n" in head
        status, _, body = await read_response(reader)  # the GET right after: no stray body between
        assert (status, body) == (200, b"hello")
        writer.close()


@pytest.mark.parametrize("failure", ["raises", "answers nothing"])
async def test_an_app_that_fails_before_answering_gets_500_and_a_log_line(
    failure: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if failure == "raises":
            raise ValueError("boom")

    with caplog.at_level(logging.ERROR, logger="uvicorn.error"):
        async with serving(app) as port:
            reader, writer = await connect(port)
            writer.write(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            status, headers, body = await read_response(reader)
            assert (status, body, headers[b"connection"]) == (500, b"Internal Server Error", b"close")
            assert await closed(reader)
            writer.close()
    expected = "Exception in ASGI application" if failure == "raises" else "returned without starting response"
    assert any(expected in record.getMessage() for record in caplog.records)


async def test_a_header_value_with_a_line_break_never_reaches_the_client() -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 302,
                    "headers": [(b"location", b"/ok\r\nset-cookie: injected=1"), (b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})

    async with serving(app) as port:
        reader, writer = await connect(port)
        writer.write(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        assert await asyncio.wait_for(reader.read(), 5) == b""  # closed, nothing written
        writer.close()


async def test_the_body_deadline_does_not_apply_while_the_app_works() -> None:
    async def slow(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await asyncio.sleep(0.6)  # longer than both deadlines
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})

    async with serving(slow, header_timeout=0.3, body_timeout=0.3) as port:
        reader, writer = await connect(port)
        for _ in range(2):
            writer.write(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n\r\nx")
            assert (await read_response(reader))[::2] == (200, b"ok")
        writer.close()

