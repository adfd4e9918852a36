"""HTTP/1.1 for the ASGI app: the connection protocol ``issuer serve`` gives uvicorn.

uvicorn still runs the process (sockets, workers, signals, lifespan, graceful shutdown through
its ``ServerState``), but each connection is served here, with httptools' parser, for two reasons:

- **Limits uvicorn lacks.** uvicorn holds a connection that trickles its request head or body
  forever, and httptools buffers an unterminated header without bound. Here each connection gets
  a deadline for its request head and one for its body, a cap on the head's size (431), and each
  worker a cap on open connections (503 at once, before anything is read).
- **Cost.** uvicorn's httptools protocol, with those limits added as a subclass, executed about
  172,000 instructions per request in the server (callgrind, a trivial app, keep-alive
  connections): an ``asyncio.Event`` and three timers per request (keep-alive, head and body
  deadlines), a response head checked header by header, and a head and body written apart. This
  one executes about 115,000 (uvicorn's own, without the limits: 122,000): a connection has one
  deadline, kept as a number, whose one timer fires at most once per timeout period
  (``_wait_for``); a response head is checked with one search over all names and one over all
  values, and the header lines of a list of headers seen recently are reused (``_header_block``:
  about 3.5 µs of an ES256 token's 92 in-process); and the head is held until the first body
  message, so a whole answer leaves in one write (uvicorn writes them apart: two system calls and
  two TCP segments for a small JSON answer).
- **Answers leave once per turn of the event loop.** What the app sends is held by its connection
  and written when the loop has run every request that was ready (one ``call_soon`` per
  connection and turn; at once when it reaches 64 KiB, or before anything else the connection
  writes or its close). Under load, a turn answers tens of requests, and their writes then reach
  the kernel back to back: the client (a load balancer, a proxy, a load generator) is woken once
  for many answers instead of once for each. Waking a sleeping reader on another CPU was the
  largest kernel cost of a request here (about 18 µs of an ES256 token's 180 on a 2-core VM, in
  ``sock_def_readable``); batching cut a token's server CPU by a quarter and its p99 latency too
  (the README's Performance section). An idle server's answer leaves one turn later, after an
  ``epoll_wait`` that does not wait.

What the app sees is uvicorn's: the same scope, the same ``receive``/``send`` semantics (a body
read as it arrives, ``Expect: 100-continue``, keep-alive, pipelining in order, chunked answers
without a length, HEAD, flow control both ways), the same 400 and 500 answers, and the same
``uvicorn.error`` log lines. Where uvicorn's falls short it departs on purpose: trailers never
join the request's headers; an answer the client does not read is cut off after the body
deadline; a lost connection reaches the answer in progress, not only the last request parsed; a
request with ``Expect: 100-continue`` answered before its body was asked for closes the
connection; a malformed request pipelined behind an answer in progress gets no 400 ahead of it;
a response head is not written when the app fails before its first body message.
tests/test_http_server.py and tests/test_http_server_edges.py run it under uvicorn's server with
small apps, tests/test_http_server_writes.py against a recording transport (the held writes),
tests/test_http_limits.py in a real ``issuer serve`` process.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import urllib.parse
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httptools
from uvicorn.config import Config
from uvicorn.protocols.http.flow_control import HIGH_WATER_LIMIT, FlowControl
from uvicorn.protocols.http.httptools_impl import HEADER_RE, HEADER_VALUE_RE, STATUS_LINE
from uvicorn.server import ServerState

from issuer.settings import Settings

log = logging.getLogger("issuer.access")
errors = logging.getLogger("uvicorn.error")  # where uvicorn logs an app's exception and a bad request

# How long a refused connection may still read our 503 before we close it.
_REFUSE_LINGER = 1.0
# Held answers of one connection are written at once from this size on: a streamed answer keeps
# the transport's flow control (pause_writing) instead of piling up in memory within one turn.
WRITE_THROUGH = 64 * 1024


@dataclass(frozen=True)
class Limits:
    max_header_bytes: int
    header_timeout: float
    body_timeout: float
    max_connections: int

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(settings.max_header_bytes, settings.header_timeout, settings.body_timeout, settings.max_connections)


@functools.cache
def _process_limits() -> Limits:
    # Read once per worker process: uvicorn builds the protocol from a class name, and its
    # worker processes are spawned, so the environment is the one channel they share.
    return Limits.from_settings(Settings())


def _response(status: bytes, body: bytes, extra: bytes = b"") -> bytes:
    return (
        b"HTTP/1.1 " + status + b"\r\ncontent-type: text/plain; charset=utf-8\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\nconnection: close\r\n" + extra + b"\r\n" + body
    )


_TOO_LARGE = _response(b"431 Request Header Fields Too Large", b"request header fields too large")
_BUSY = _response(b"503 Service Unavailable", b"too many connections", b"retry-after: 1\r\n")


class _HeadTooLarge(Exception):
    pass


_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_SERVER_ERROR = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"21"), (b"connection", b"close")]


class _Exchange:
    """One request and its response: the ``receive`` and ``send`` the app is called with, and the
    task running it (uvicorn's RequestResponseCycle, same semantics, fewer objects)."""

    __slots__ = (
        "scope", "_conn", "_returned", "body", "more_body", "_ready", "_waiters", "disconnected", "keep_alive",
        "waiting_for_100_continue", "response_started", "response_complete", "_chunked", "_remaining", "_head",
    )

    def __init__(self, scope: dict[str, Any], conn: HttpProtocol, keep_alive: bool, expect_100_continue: bool) -> None:
        self.scope = scope
        self._conn = conn
        self._returned = False  # the app has returned: a late answer starts no pipelined request
        self.body = bytearray()
        self.more_body = True
        self._ready = False  # something for receive(): body, its end, the end of the exchange
        self._waiters: list[asyncio.Future[None]] = []  # every receive() waiting (usually one)
        self.disconnected = False
        self.keep_alive = keep_alive
        self.waiting_for_100_continue = expect_100_continue
        self.response_started = False
        self.response_complete = False
        self._chunked: bool | None = None
        self._remaining = 0
        self._head = b""  # the response head, held until the first body message: one write for both

    def wake(self) -> None:
        self._ready = True
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def run(self, app: Callable[..., Awaitable[None]]) -> None:
        try:
            result = await app(self.scope, self.receive, self.send)  # type: ignore[func-returns-value]
        except BaseException as exc:
            errors.error("Exception in ASGI application\n", exc_info=exc)
            if not self.response_started:
                await self._send_500()
            else:
                self._conn.shut()
        else:
            if result is not None:
                errors.error("ASGI callable should return None, but returned '%s'.", result)
                self._conn.shut()
            elif not self.response_started and not self.disconnected:
                errors.error("ASGI callable returned without starting response.")
                await self._send_500()
            elif not self.response_complete and not self.disconnected:
                errors.error("ASGI callable returned without completing response.")
                self._conn.shut()
        finally:
            self._returned = True

    async def _send_500(self) -> None:
        await self.send({"type": "http.response.start", "status": 500, "headers": _SERVER_ERROR})
        await self.send({"type": "http.response.body", "body": b"Internal Server Error", "more_body": False})

    async def receive(self) -> dict[str, Any]:
        conn = self._conn
        if self.waiting_for_100_continue and not conn.transport.is_closing():
            conn.write(_CONTINUE)
            self.waiting_for_100_continue = False
        if not self.disconnected and not self.response_complete:
            conn.flow.resume_reading()
            if not self._ready:
                # Each caller its own future, all woken (uvicorn's asyncio.Event): a second
                # concurrent receive() must not orphan the first, nor a cancelled one the others.
                waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                self._waiters.append(waiter)
                try:
                    await waiter
                finally:
                    self._waiters.remove(waiter)
            self._ready = False
        if self.disconnected or self.response_complete:
            return {"type": "http.disconnect"}
        message = {"type": "http.request", "body": bytes(self.body), "more_body": self.more_body}
        self.body = bytearray()
        return message

    async def send(self, message: dict[str, Any]) -> None:
        conn = self._conn
        if conn.flow.write_paused and not self.disconnected:
            await conn.flow.drain()
        if self.disconnected:
            return
        kind = message["type"]
        if not self.response_started:
            if kind != "http.response.start":
                raise RuntimeError(f"Expected ASGI message 'http.response.start', but got '{kind}'.")
            self.response_started = True
            if self.waiting_for_100_continue and self.more_body:
                # Answered before asking for the body: the client may now skip it (RFC 9110 §10.1.1),
                # and its next request would be read as that body. Close after this answer.
                self.keep_alive = False
            self.waiting_for_100_continue = False
            self._head = self._render_head(message["status"], [*conn.server_state.default_headers,
                                                               *message.get("headers", ())])
        elif not self.response_complete:
            if kind != "http.response.body":
                raise RuntimeError(f"Expected ASGI message 'http.response.body', but got '{kind}'.")
            body = message.get("body", b"")
            more_body = message.get("more_body", False)
            if self.scope["method"] == "HEAD":
                self._remaining = 0
                out = b""
            elif self._chunked:
                out = b"%x\r\n%b\r\n" % (len(body), body) if body else b""
                if not more_body:
                    out += b"0\r\n\r\n"
            else:
                if len(body) > self._remaining:
                    raise RuntimeError("Response content longer than Content-Length")
                self._remaining -= len(body)
                out = body
            if self._head:
                out, self._head = self._head + out, b""
            if out:
                conn.write(out)
            if not more_body:
                if self._remaining != 0:
                    raise RuntimeError("Response content shorter than Content-Length")
                self.response_complete = True
                self.wake()
                if not self.keep_alive:
                    conn.shut()
                if not self._returned:
                    conn.response_complete()
        else:
            raise RuntimeError(f"Unexpected ASGI message '{kind}' sent, after response already completed.")

    def _render_head(self, status: int, headers: list[tuple[bytes, bytes]]) -> bytes:
        block, length, chunked, close = _header_block(headers)
        if length is not None:
            self._remaining, self._chunked = length, False
        if chunked:
            self._remaining, self._chunked = 0, True
        if close:
            self.keep_alive = False
        content = [STATUS_LINE[status], block]
        if not self.keep_alive and not close:
            content.append(b"connection: close\r\n")
        if self._chunked is None and self.scope["method"] != "HEAD" and status not in (204, 304):
            self._chunked = True  # neither a length nor a transfer coding: chunked
            content.append(b"transfer-encoding: chunked\r\n")
        content.append(b"\r\n")
        return b"".join(content)


# The header blocks of recent answers, by their headers: most answers repeat one of a few lists
# (the same JSON, security and date headers; a length that varies little), and checking and
# rendering one costs a token about 3 µs. Emptied when full (the date header changes every second).
_BLOCKS: dict[tuple[tuple[bytes, bytes], ...], tuple[bytes, int | None, bool, bool]] = {}
_MAX_BLOCKS = 256


def _header_block(headers: list[tuple[bytes, bytes]]) -> tuple[bytes, int | None, bool, bool]:
    """The rendered header lines and what they say about framing: the first content-length, a
    chunked transfer coding, a ``connection: close``. RuntimeError for a bad name or value."""
    try:
        key = tuple(headers)
        found = _BLOCKS.get(key)
    except TypeError:  # headers given as lists (ASGI allows any iterable pair): not cached
        key, found = None, None
    if found is not None:
        return found
    # One search over all the names, one over all the values: the patterns match a single
    # character, so the joined bytes hold a bad one exactly when some header does.
    if HEADER_RE.search(b"".join([name for name, _ in headers])):
        raise RuntimeError("Invalid HTTP header name.")
    if HEADER_VALUE_RE.search(b"".join([value for _, value in headers])):
        raise RuntimeError("Invalid HTTP header value.")
    lines: list[bytes] = []
    length: int | None = None
    chunked = close = False
    for name, value in headers:
        name = name.lower()
        if name == b"content-length" and length is None and not chunked:
            length = int(value.decode())
        elif name == b"transfer-encoding" and value.lower() == b"chunked":
            chunked = True
        elif name == b"connection" and b"close" in [token.lower().strip() for token in value.split(b",")]:
            close = True
        lines += (name, b": ", value, b"\r\n")
    found = (b"".join(lines), length, chunked, close)
    if key is not None:
        if len(_BLOCKS) >= _MAX_BLOCKS:
            _BLOCKS.clear()
        _BLOCKS[key] = found
    return found


class HttpProtocol(asyncio.Protocol):
    """One HTTP/1.1 connection (see the module's docstring). uvicorn builds one per connection
    from its class name (``issuer serve`` passes ``http="issuer.http.server:HttpProtocol"``)."""

    limits: Limits | None = None  # tests may set this; otherwise read from the environment

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        if not config.loaded:
            config.load()
        self.app = config.loaded_app
        self.loop = _loop or asyncio.get_event_loop()
        self.server_state = server_state
        self.connections: set[Any] = server_state.connections
        self.tasks: set[asyncio.Task[None]] = server_state.tasks
        self.app_state = app_state
        self.root_path = config.root_path
        self.asgi = {"version": config.asgi_version, "spec_version": "2.3"}
        self.keep_alive_timeout = float(config.timeout_keep_alive)
        self._limits = self.limits or _process_limits()
        self.parser = httptools.HttpRequestParser(self)
        with contextlib.suppress(AttributeError):  # httptools < 0.6.3
            # Answer the first of pipelined requests even when the data after it cannot be parsed.
            self.parser.set_dangerous_leniencies(lenient_data_after_close=True)
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.flow: FlowControl = None  # type: ignore[assignment]
        self.client: tuple[str, int] | None = None
        self.server: tuple[str, int] | None = None
        self.scheme = "http"
        self.pipeline: deque[_Exchange] = deque()
        self.exchange: _Exchange | None = None  # the last request parsed
        self.answering: _Exchange | None = None  # the one being answered (an earlier one when pipelined)
        # The request being parsed
        self.scope: dict[str, Any] = {}
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.expect_100_continue = False
        self._in_head = True
        self._head_bytes = 0  # raw bytes of an unterminated head
        self._head_size = 0  # request line + headers as parsed, for heads that arrive whole
        self._refused = False
        # The one deadline: what it waits for ("" = none), when (loop time), and the timer
        self._waiting_for = ""
        self._due = 0.0
        self._timer: asyncio.TimerHandle | None = None
        # While the client does not read what we wrote: writes paused, or a close waiting for them
        self._stall: asyncio.TimerHandle | None = None
        # What is held for the end of this turn of the loop (see the module's docstring)
        self._out: list[bytes] = []
        self._out_size = 0
        self._flush_due = False

    # Connection

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self.transport = transport
        self.client = _peer(transport)
        if len(self.connections) >= self._limits.max_connections:
            # Not added to the server's connections: the graceful drain does not wait for it.
            self._linger("too many connections", _BUSY)
            return
        self.connections.add(self)
        self.flow = FlowControl(transport)
        sock = transport.get_extra_info("sockname")
        self.server = (str(sock[0]), int(sock[1])) if isinstance(sock, tuple) and len(sock) >= 2 else None
        if transport.get_extra_info("sslcontext"):
            self.scheme = "https"
        self._wait_for("request head", self._limits.header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self.connections.discard(self)
        self._waiting_for = ""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._stall is not None:
            self._stall.cancel()
            self._stall = None
        for exchange in (self.answering, self.exchange):
            if exchange is not None:
                if not exchange.response_complete:
                    exchange.disconnected = True
                exchange.wake()
        if self.flow is not None:
            self.flow.resume_writing()
        if exc is None:
            self.transport.close()
        self.parser = None  # type: ignore[assignment]

    def eof_received(self) -> None:
        # The client half-closed: the transport closes after this returns, as with uvicorn; an
        # answer held for the end of this turn leaves first.
        self.flush()

    def pause_writing(self) -> None:
        self.flow.pause_writing()
        self._watch_writes()

    def resume_writing(self) -> None:
        self.flow.resume_writing()
        if self._stall is not None and not self.transport.is_closing():
            self._stall.cancel()
            self._stall = None

    # A client that does not read: the transport's buffer stays full, the app waits in send() and
    # a close waits for the buffer; no request deadline applies, so this one does (uvicorn has none).

    def _watch_writes(self) -> None:
        if self._stall is None:
            self._stall = self.loop.call_later(self._limits.body_timeout, self._write_stalled)

    def _write_stalled(self) -> None:
        self._stall = None
        log.info("connection closed", extra={"reason": f"answer not read within {self._limits.body_timeout:g}s",
                                             "client": _host(self.client)})
        self.transport.abort()  # close() would wait for the buffer to drain

    # Writes: held until the end of this turn of the loop, in order, and flushed before a close

    def write(self, data: bytes) -> None:
        self._out.append(data)
        self._out_size += len(data)
        if self._out_size >= WRITE_THROUGH:
            self.flush()
        elif not self._flush_due:
            self._flush_due = True
            self.loop.call_soon(self._end_of_turn)

    def _end_of_turn(self) -> None:
        self._flush_due = False
        self.flush()

    def flush(self) -> None:
        if not self._out:
            return
        data = self._out[0] if len(self._out) == 1 else b"".join(self._out)
        self._out.clear()
        self._out_size = 0
        if not self.transport.is_closing():  # lost or aborted: nowhere to go (a close flushes first)
            self.transport.write(data)

    def shut(self) -> None:
        """Close; what is still buffered has the write deadline to leave, then the connection is aborted."""
        self.flush()
        self.transport.close()
        if self.transport.get_write_buffer_size():
            self._watch_writes()

    def shutdown(self) -> None:
        """uvicorn's graceful shutdown: close idle connections, finish the answer in flight."""
        if self.exchange is None or self.exchange.response_complete:
            self.shut()
        else:
            self.exchange.keep_alive = False

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # lingering so the client can read our answer; its bytes are dropped unparsed
        if self._in_head:
            if self._waiting_for != "request head":  # the first bytes of the next request
                self._wait_for("request head", self._limits.header_timeout)
            self._head_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # No protocol but HTTP/1.1 here: the request is answered, then the connection closed
            # (the parser reads nothing after an upgrade request).
            errors.warning("Unsupported upgrade request.")
            if self.exchange is not None and not self.exchange.response_complete:
                self.exchange.keep_alive = False
                self.exchange.more_body = False
                self.exchange.wake()
        except httptools.HttpParserError:
            exchange = self.exchange
            if self._head_size > self._limits.max_header_bytes:
                self._refuse_head()
            elif self._in_head and exchange is not None and not exchange.response_complete:
                # A request after one still being answered: a 400 now would come before that
                # answer and be read as its. The answer goes out, then the connection closes.
                errors.warning("Invalid HTTP request received.")
                exchange.keep_alive = False
                self._refused = True  # what follows is dropped unparsed
                self._wait_for("", 0.0)
            else:
                errors.warning("Invalid HTTP request received.")
                self._bad_request("Invalid HTTP request received.")
            return
        # A head still unterminated: httptools buffers it without calling back, so count raw bytes.
        if self._in_head and self._head_bytes > self._limits.max_header_bytes and not self.transport.is_closing():
            self._refuse_head()

    # Parser callbacks

    def on_message_begin(self) -> None:
        self.url = b""
        self.expect_100_continue = False
        self.headers = []
        self.scope = {
            "type": "http",
            "asgi": self.asgi,
            "http_version": "1.1",
            "server": self.server,
            "client": self.client,
            "scheme": self.scheme,
            "root_path": self.root_path,
            "headers": self.headers,
            "state": self.app_state.copy(),
        }

    def on_url(self, url: bytes) -> None:
        self._head_size += len(url)
        if self._head_size > self._limits.max_header_bytes:
            raise _HeadTooLarge  # stops the parser; data_received answers 431
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_size += len(name) + len(value) + 4
        if self._head_size > self._limits.max_header_bytes:
            raise _HeadTooLarge
        if not self._in_head:
            return  # a trailer of a chunked body (counted above): never one of the running request's headers
        name = name.lower()
        if name == b"expect" and value.lower() == b"100-continue":
            self.expect_100_continue = True
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._head_bytes = self._head_size = 0
        self._wait_for("request body", self._limits.body_timeout)
        parser, scope = self.parser, self.scope
        http_version = parser.get_http_version()
        scope["method"] = parser.get_method().decode("ascii")
        if http_version != "1.1":
            scope["http_version"] = http_version
        url = httptools.parse_url(self.url)
        path = url.path.decode("ascii")
        if "%" in path:
            path = urllib.parse.unquote(path)
        scope["path"] = self.root_path + path
        scope["raw_path"] = self.root_path.encode("ascii") + url.path
        scope["query_string"] = url.query or b""
        keep_alive = http_version != "1.0" and parser.should_keep_alive()
        exchange = _Exchange(scope, self, keep_alive, self.expect_100_continue)
        current, self.exchange = self.exchange, exchange
        if current is None or current.response_complete:
            self._start(exchange)
        else:  # pipelined: answered after the ones before it
            self.flow.pause_reading()
            self.pipeline.appendleft(exchange)
            # Reading is paused until the answer before it is out: its body is due from then on
            # (response_complete), not while the app before it works.
            self._wait_for("", 0.0)

    def on_body(self, body: bytes) -> None:
        exchange = self.exchange
        if exchange is None or exchange.response_complete:
            return
        exchange.body += body
        if len(exchange.body) > HIGH_WATER_LIMIT:
            self.flow.pause_reading()
        exchange.wake()

    def on_message_complete(self) -> None:
        self._in_head = True
        exchange = self.exchange
        if self._waiting_for == "request body":
            if exchange is not None and exchange.response_complete:
                # Answered before its body was in (a refusal): idle now, the answer is out.
                self._wait_for("keep-alive", self.keep_alive_timeout)
            else:
                self._wait_for("", 0.0)  # the app's turn: no deadline until the answer is out
        if exchange is None or exchange.response_complete:
            return
        exchange.more_body = False
        exchange.wake()

    # Exchanges

    def _start(self, exchange: _Exchange) -> None:
        self.answering = exchange
        task = self.loop.create_task(exchange.run(self.app))
        task.add_done_callback(self.tasks.discard)
        self.tasks.add(task)

    def response_complete(self) -> None:
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self.flow.resume_reading()
        if self.pipeline:
            self._start(self.pipeline.pop())
            if not self._in_head and self._waiting_for == "":  # a pipelined body still to come
                self._wait_for("request body", self._limits.body_timeout)
        elif self._in_head and self._waiting_for == "":
            self._wait_for("keep-alive", self.keep_alive_timeout)

    # The deadline: a number per connection; its one timer fires at most once per period.

    def _wait_for(self, what: str, seconds: float) -> None:
        self._waiting_for = what
        if not what:
            return
        self._due = due = self.loop.time() + seconds
        timer = self._timer
        if timer is None or timer.when() > due:
            if timer is not None:
                timer.cancel()
            self._timer = self.loop.call_at(due, self._check_deadline)

    def _check_deadline(self) -> None:
        self._timer = None
        what = self._waiting_for
        if not what or self.transport.is_closing():
            return
        if self.loop.time() < self._due:
            self._timer = self.loop.call_at(self._due, self._check_deadline)
        elif what == "keep-alive":
            self.shut()
        else:
            seconds = self._limits.header_timeout if what == "request head" else self._limits.body_timeout
            self._close(f"{what} not received within {seconds:g}s")

    # Refusals

    def _refuse_head(self) -> None:
        if self.exchange is None or self.exchange.response_complete:
            self._linger("request head too large", _TOO_LARGE)
        else:  # a pipelined head while an answer is still due: no room for ours
            self._close("request head too large")

    def _bad_request(self, message: str) -> None:
        content = [STATUS_LINE[400]]
        for name, value in self.server_state.default_headers:
            content += (name, b": ", value, b"\r\n")
        body = message.encode("ascii")
        content += (b"content-type: text/plain; charset=utf-8\r\ncontent-length: ",
                    str(len(body)).encode("ascii"), b"\r\nconnection: close\r\n\r\n", body)
        self.write(b"".join(content))
        self.shut()

    def _close(self, reason: str) -> None:
        self._wait_for("", 0.0)
        log.info("connection closed", extra={"reason": reason, "client": _host(self.client)})
        self.shut()

    def _linger(self, reason: str, response: bytes) -> None:
        """Answer, stop reading requests, and close a moment later: closing with unread input
        would reset the connection and lose the answer."""
        self._wait_for("", 0.0)
        self._refused = True
        log.info("connection refused", extra={"reason": reason, "client": _host(self.client)})
        self.write(response)
        self.flush()
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(_REFUSE_LINGER, self.shut)


def _peer(transport: asyncio.Transport) -> tuple[str, int] | None:
    peer = transport.get_extra_info("peername")
    return (str(peer[0]), int(peer[1])) if isinstance(peer, tuple) and len(peer) >= 2 else None


def _host(peer: object) -> str:
    return str(peer[0]) if isinstance(peer, tuple) and peer else "-"
