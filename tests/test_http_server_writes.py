"""issuer.http.server: answers are held until the end of the event loop's turn, then written in
order, once per connection; at once from WRITE_THROUGH bytes on (flow control), and before a
close or a client's EOF. Against a recording transport, so the order of events is exact."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import uvicorn
from uvicorn.server import ServerState

from issuer.http.server import WRITE_THROUGH, HttpProtocol, Limits

GET = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"


class Recording(asyncio.Transport):
    def __init__(self, events: list[tuple[str, Any]], name: str) -> None:
        super().__init__()
        self.events, self.name, self.closing = events, name, False
        self.written = b""

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += bytes(data)
        self.events.append(("write", self.name))

    def close(self) -> None:
        self.closing = True
        self.events.append(("close", self.name))

    def is_closing(self) -> bool:
        return self.closing

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 40000), "sockname": ("127.0.0.1", 80)}.get(name, default)

    def get_write_buffer_size(self) -> int:
        return 0

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def connection(app: Any, events: list[tuple[str, Any]], name: str) -> tuple[HttpProtocol, Recording]:
    config = uvicorn.Config(app, lifespan="off", log_config=None, access_log=False)
    protocol = HttpProtocol(config, ServerState(), {}, _loop=asyncio.get_running_loop())
    protocol._limits = Limits(max_header_bytes=8192, header_timeout=10, body_timeout=10, max_connections=10)
    transport = Recording(events, name)
    protocol.connection_made(transport)
    return protocol, transport


def answering(events: list[tuple[str, Any]], chunks: int = 1, size: int = 5) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        headers = [(b"content-length", str(chunks * size).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for n in range(chunks):
            await send({"type": "http.response.body", "body": b"x" * size, "more_body": n < chunks - 1})
        events.append(("answered", scope["client"]))

    return app


async def turns(n: int = 5) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


async def test_answers_of_one_turn_are_written_after_it_in_order() -> None:
    events: list[tuple[str, Any]] = []
    app = answering(events)
    (one, t1), (two, t2) = connection(app, events, "one"), connection(app, events, "two")
    one.data_received(GET)
    two.data_received(GET)
    await turns()
    assert [kind for kind, _ in events] == ["answered", "answered", "write", "write"]
    assert [name for kind, name in events if kind == "write"] == ["one", "two"]
    for transport in (t1, t2):
        assert transport.written.startswith(b"HTTP/1.1 200 OK\r\n") and transport.written.endswith(b"\r\n\r\nxxxxx")
        assert transport.written.count(b"HTTP/1.1") == 1  # head and body in one write


async def test_a_large_answer_is_written_through_while_the_app_sends() -> None:
    events: list[tuple[str, Any]] = []
    size = WRITE_THROUGH // 2 + 1
    protocol, transport = connection(answering(events, chunks=3, size=size), events, "big")
    protocol.data_received(GET)
    await turns()
    kinds = [kind for kind, _ in events]
    assert kinds.index("write") < kinds.index("answered")  # not held until the app is done
    assert transport.written.endswith(b"x" * (3 * size))


async def test_a_close_writes_what_is_held_first() -> None:
    events: list[tuple[str, Any]] = []
    protocol, transport = connection(answering(events), events, "c")
    protocol.data_received(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    await turns()
    assert [kind for kind, _ in events] == ["write", "close", "answered"]  # closed in its last send
    assert transport.written.endswith(b"xxxxx")


async def test_a_client_eof_writes_what_is_held_first() -> None:
    events: list[tuple[str, Any]] = []
    protocol, transport = connection(answering(events), events, "e")
    protocol.data_received(GET)
    await asyncio.sleep(0)  # the app answers in this turn; its answer is held
    assert [kind for kind, _ in events] == ["answered"]
    protocol.eof_received()
    assert [kind for kind, _ in events] == ["answered", "write"]
    await turns()
    assert transport.written.count(b"HTTP/1.1 200") == 1  # written once


async def test_nothing_is_written_to_a_lost_connection() -> None:
    events: list[tuple[str, Any]] = []
    protocol, transport = connection(answering(events), events, "l")
    protocol.data_received(GET)
    await asyncio.sleep(0)
    transport.closing = True  # lost meanwhile (connection_lost follows)
    protocol.connection_lost(None)
    await turns()
    assert transport.written == b""


async def test_repeated_header_lists_are_rendered_once_and_framed_each_time() -> None:
    # Header blocks are cached by their headers (issuer.http.server._header_block): the same list
    # gives the same bytes, framing still follows each answer's own headers, a bad header is never
    # cached, and the cache stays bounded.
    from issuer.http import server

    events: list[tuple[str, Any]] = []
    protocol, transport = connection(answering(events), events, "r")
    protocol.data_received(GET + GET)
    await turns()
    heads = [part for part in transport.written.split(b"xxxxx") if part]
    assert len(heads) == 2 and heads[0] == heads[1] and b"content-length: 5\r\n" in heads[0]

    block = server._header_block([(b"content-length", b"7"), (b"connection", b"keep-alive, close")])
    assert block == (b"content-length: 7\r\nconnection: keep-alive, close\r\n", 7, False, True)
    chunked = [(b"transfer-encoding", b"chunked"), (b"content-length", b"3")]
    assert server._header_block(chunked)[1:] == (None, True, False)
    for _ in range(2):
        with pytest.raises(RuntimeError, match="header value"):
            server._header_block([(b"x-ok", b"1"), (b"x-bad", b"a\r\nset-cookie: b")])
        with pytest.raises(RuntimeError, match="header name"):
            server._header_block([(b"x bad", b"1")])
    assert server._header_block([[b"x-list", b"1"]]) == (b"x-list: 1\r\n", None, False, False)  # type: ignore[list-item]
    for n in range(server._MAX_BLOCKS + 10):
        server._header_block([(b"content-length", str(n).encode())])
    assert len(server._BLOCKS) <= server._MAX_BLOCKS
