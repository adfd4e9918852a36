"""issuer.http.server.HttpProtocol where it departs from uvicorn's httptools protocol on purpose
(found by a review against it): no connection is held without a deadline nor closed while it is
our turn, a trailer never reaches the scope, every ``receive()`` is woken, an answer the client
does not read is cut off, and pipelined requests cannot take each other's answers. Small ASGI
apps under uvicorn's own Server, raw sockets (helpers from tests/test_http_server.py)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Any

from tests.test_http_server import closed, connect, echo, read_response, serving


async def early_answer(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers at once without reading the request body (as a 413 or 404 refusal does)."""
    await send({"type": "http.response.start", "status": 413, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"no"})


async def test_an_answer_before_the_body_still_leaves_a_deadline_once_the_body_is_in() -> None:
    # The answer comes while the body is still due; once the body is in, the connection is idle and
    # must close at the keep-alive timeout, not stay open for ever.
    async with serving(early_answer, keep_alive=0.3, header_timeout=0.5, body_timeout=0.5) as port:
        reader, writer = await connect(port)
        writer.write(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc")
        assert (await read_response(reader))[::2] == (413, b"no")
        await asyncio.sleep(0.1)
        writer.write(b"defghij")  # the rest of the body: the request is complete, nothing else comes
        assert await closed(reader, within=3)
        writer.close()


async def test_a_pipelined_body_is_not_due_while_an_earlier_answer_is_being_worked_on() -> None:
    # Reading is paused while the first app works; the second request's body cannot be read, so
    # its deadline must not run out meanwhile.
    async def slow_then_echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["path"] == "/slow":
            await asyncio.sleep(0.8)  # longer than the body deadline
        await echo(scope, receive, send)

    async with serving(slow_then_echo, body_timeout=0.4) as port:
        reader, writer = await connect(port)
        writer.write(b"GET /slow HTTP/1.1\r\nHost: t\r\n\r\n"
                     b"POST /p HTTP/1.1\r\nHost: t\r\nContent-Length: 6\r\n\r\nabc")
        await asyncio.sleep(0.1)
        writer.write(b"def")
        assert (await read_response(reader))[::2] == (200, b"GET /slow? ")
        assert (await read_response(reader))[::2] == (200, b"POST /p? abcdef")
        writer.close()


async def test_trailers_of_a_chunked_body_do_not_become_request_headers() -> None:
    # uvicorn's httptools protocol appends them to the running request's scope["headers"] (its h11
    # protocol drops them): a header a proxy in front never saw as one, e.g. Authorization.
    seen: list[list[tuple[bytes, bytes]]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        while (await receive()).get("more_body"):
            pass
        seen.append(list(scope["headers"]))
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async with serving(app) as port:
        reader, writer = await connect(port)
        writer.write(b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"3\r\nabc\r\n0\r\nAuthorization: Basic YTpi\r\nX-Forwarded-For: 10.0.0.1\r\n\r\n")
        assert (await read_response(reader))[0] == 204
        writer.close()
    assert seen == [[(b"host", b"t"), (b"transfer-encoding", b"chunked")]]


async def test_two_concurrent_receives_both_see_the_disconnect() -> None:
    # uvicorn's asyncio.Event wakes every waiter; a second waiter must not orphan the first.
    results: list[dict[str, Any]] = []
    done = asyncio.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        while (await receive()).get("more_body"):
            pass
        got = await asyncio.wait_for(asyncio.gather(receive(), receive()), 3)
        results.extend(got)
        done.set()

    async with serving(app) as port:
        reader, writer = await connect(port)
        writer.write(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n\r\nx")
        await asyncio.sleep(0.2)
        writer.close()
        await asyncio.wait_for(done.wait(), 5)
    assert [message["type"] for message in results] == ["http.disconnect", "http.disconnect"]


async def test_an_answer_the_client_does_not_read_is_cut_off() -> None:
    # A client that never reads would otherwise hold the connection (and the app, waiting in
    # send for the transport to drain) for ever: no deadline applies during the app's turn.
    total = 256 * 65536  # 16 MiB: more than the kernel buffers on both sides of a loopback connection

    async def big(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % total)]})
        for _ in range(256):
            await send({"type": "http.response.body", "body": bytes(65536), "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    async with serving(big, header_timeout=0.5, body_timeout=0.5, keep_alive=30) as port:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small window: the server's writes pause
        sock.connect(("127.0.0.1", port))
        sock.sendall(b"GET /s HTTP/1.1\r\nHost: t\r\n\r\n")
        await asyncio.sleep(2.0)  # the client reads nothing for four times the body deadline
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        received, ended = 0, False
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(3):
                while True:
                    try:
                        chunk = await loop.sock_recv(sock, 65536)
                    except ConnectionResetError:
                        ended = True
                        break
                    if not chunk:
                        ended = True
                        break
                    received += len(chunk)
        sock.close()
    assert ended and received < total  # cut off, not the whole answer followed by an open connection


async def test_the_answer_in_progress_sees_the_disconnect_when_a_pipelined_request_waits() -> None:
    # uvicorn marks only the last parsed request disconnected; the one being answered kept waiting
    # in receive() (a task that never ends) or writing to a closed connection.
    seen: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["path"] == "/wait":
            while (await receive()).get("more_body"):
                pass
            message = await asyncio.wait_for(receive(), 3)  # the client goes away meanwhile
            seen.append(message["type"])
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"0")]})
            await send({"type": "http.response.body", "body": b""})
            seen.append("send returned")
            return
        await echo(scope, receive, send)

    async with serving(app) as port:
        reader, writer = await connect(port)
        writer.write(b"GET /wait HTTP/1.1\r\nHost: t\r\n\r\nGET /next HTTP/1.1\r\nHost: t\r\n\r\n")
        await asyncio.sleep(0.2)
        writer.close()
        for _ in range(50):
            if len(seen) == 2:
                break
            await asyncio.sleep(0.1)
    assert seen == ["http.disconnect", "send returned"]


async def test_an_answer_before_a_body_never_asked_for_closes_the_connection() -> None:
    # Expect: 100-continue, answered without reading: the client may skip its body (RFC 9110
    # §10.1.1), and then its next request would be read as that body. Say so and close.
    async with serving(early_answer) as port:
        reader, writer = await connect(port)
        writer.write(b"POST / HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 40\r\n\r\n")
        status, headers, body = await read_response(reader)
        assert (status, body, headers.get(b"connection")) == (413, b"no", b"close")
        assert await closed(reader, within=2)
        writer.close()


async def test_an_expected_body_that_was_asked_for_keeps_the_connection() -> None:
    async with serving(echo) as port:
        reader, writer = await connect(port)
        for _ in range(2):
            writer.write(b"POST /e HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n")
            assert await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5) == b"HTTP/1.1 100 Continue\r\n\r\n"
            writer.write(b"hi")
            status, headers, body = await read_response(reader)
            assert (status, body, headers.get(b"connection")) == (200, b"POST /e? hi", None)
        writer.close()


async def test_a_malformed_pipelined_request_does_not_take_the_answer_before_it() -> None:
    # uvicorn writes its 400 at once, ahead of the answer still being worked on, which is lost:
    # the client reads "400" as the answer to its valid first request.
    async def slow(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await asyncio.sleep(0.3)
        await echo(scope, receive, send)

    async with serving(slow) as port:
        reader, writer = await connect(port)
        writer.write(b"GET /first HTTP/1.1\r\nHost: t\r\n\r\nGET / HTTP/1.1\r\nHost t\r\n\r\n")
        status, headers, body = await read_response(reader)
        assert (status, body, headers.get(b"connection")) == (200, b"GET /first? ", b"close")
        assert await closed(reader)
        writer.close()
