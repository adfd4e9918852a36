"""The HTTP/1.1 connection limits uvicorn lacks, as a subclass of its httptools protocol.

uvicorn holds a connection that trickles its request head or body forever, and httptools
buffers an unterminated header without bound. Here each connection gets a deadline for its
request head and one for its body, a cap on the head's size (431), and each worker a cap on
open connections (503 at once, before anything is read). ``issuer serve`` selects this class.
It hooks uvicorn's parser callbacks (``on_headers_complete``, ``on_message_complete``) and its
``connections`` set; tests/test_http_limits.py exercises each limit against a real process, so an
uvicorn upgrade that moves them fails there.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from dataclasses import dataclass
from typing import Any

import httptools
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from issuer.settings import Settings

log = logging.getLogger("issuer.access")

# How long a refused connection may still read our 503 before we close it.
_REFUSE_LINGER = 1.0


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


# Pending bytes that are written at once: uvicorn pauses a response's further sends while the
# transport's buffer is full, so a large or streamed answer must reach the transport as it goes.
_WRITE_AT_ONCE = 64 * 1024


class _BatchedWrites:
    """The connection's transport as its request cycles see it: uvicorn writes a response's head
    and its body separately, two system calls and two TCP segments for a small JSON answer. Here
    the writes of one loop iteration are joined and written once, by a callback at the start of
    the next (before any further input is read); ``flush`` writes them at once, and ``close``
    writes them before closing. Everything else is the transport's."""

    __slots__ = ("_transport", "_loop", "_pending", "_size")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []
        self._size = 0

    def write(self, data: bytes) -> None:
        if not self._pending:
            self._loop.call_soon(self.flush)
        self._pending.append(data)
        self._size += len(data)
        if self._size >= _WRITE_AT_ONCE:
            self.flush()  # a big answer goes to the transport now, under its flow control

    def flush(self) -> None:
        if self._pending:
            data, self._pending, self._size = b"".join(self._pending), [], 0
            if not self._transport.is_closing():
                self._transport.write(data)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    limits: Limits | None = None  # tests may set this; otherwise read from the environment

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._limits = self.limits or _process_limits()
        self._in_head = True
        self._head_bytes = 0
        self._head_size = 0  # request line + headers as parsed, for heads that arrive whole
        self._deadline: asyncio.TimerHandle | None = None
        self._refused = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if len(self.connections) >= self._limits.max_connections:
            # Not added to the server's connections: the graceful drain does not wait for it.
            self.transport = transport
            self.client = _peer(transport)
            self._linger("too many connections", _BUSY)
            return
        super().connection_made(transport)
        self._writes = _BatchedWrites(transport, self.loop)
        self._arm("request head", self._limits.header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # lingering so the client can read our answer; its bytes are dropped unparsed
        self._writes.flush()  # answers already given go out before anything this input causes
        if self._in_head:
            if self._deadline is None:  # the first bytes of the next request on a kept-alive connection
                self._arm("request head", self._limits.header_timeout)
            self._head_bytes += len(data)
        # uvicorn's data_received, with one more outcome: a head over the limit (see _count_head).
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
        except httptools.HttpParserError:
            if self._head_size > self._limits.max_header_bytes:
                self._refuse_head()
            else:
                self.logger.warning("Invalid HTTP request received.")
                self.send_400_response("Invalid HTTP request received.")
            return
        # A head still unterminated: httptools buffers it without calling back, so count raw bytes.
        if self._in_head and self._head_bytes > self._limits.max_header_bytes and not self.transport.is_closing():
            self._refuse_head()

    def _refuse_head(self) -> None:
        if self.cycle is None or self.cycle.response_complete:
            self._linger("request head too large", _TOO_LARGE)
        else:  # a pipelined head while an answer is still due: no room for ours
            self._close("request head too large")

    def _count_head(self, size: int) -> None:
        self._head_size += size
        if self._head_size > self._limits.max_header_bytes:
            raise _HeadTooLarge  # stops the parser; data_received answers 431

    def on_url(self, url: bytes) -> None:
        self._count_head(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_head(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._head_bytes = 0
        self._head_size = 0
        self._disarm()
        self._arm("request body", self._limits.body_timeout)
        super().on_headers_complete()
        if self.cycle is not None:
            self.cycle.transport = self._writes  # type: ignore[assignment]

    def shutdown(self) -> None:
        if hasattr(self, "_writes"):
            self._writes.flush()
        super().shutdown()

    def eof_received(self) -> None:
        if hasattr(self, "_writes"):
            self._writes.flush()  # the client half-closed: the transport closes after this returns
        super().eof_received()

    def timeout_keep_alive_handler(self) -> None:
        self._writes.flush()
        super().timeout_keep_alive_handler()

    def on_message_complete(self) -> None:
        self._disarm()
        self._in_head = True
        super().on_message_complete()

    def _arm(self, what: str, seconds: float) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._expired, what, seconds)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self, what: str, seconds: float) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self._close(f"{what} not received within {seconds:g}s")

    def _close(self, reason: str) -> None:
        self._disarm()
        log.info("connection closed", extra={"reason": reason, "client": _host(self.client)})
        if hasattr(self, "_writes"):
            self._writes.flush()
        self.transport.close()

    def _linger(self, reason: str, response: bytes) -> None:
        """Answer, stop reading requests, and close a moment later: closing with unread input
        would reset the connection and lose the answer."""
        self._disarm()
        self._refused = True
        log.info("connection refused", extra={"reason": reason, "client": _host(self.client)})
        self.transport.write(response)
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(_REFUSE_LINGER, self.transport.close)


def _peer(transport: asyncio.Transport) -> tuple[str, int] | None:
    peer = transport.get_extra_info("peername")
    return (str(peer[0]), int(peer[1])) if isinstance(peer, tuple) and len(peer) >= 2 else None


def _host(peer: object) -> str:
    return str(peer[0]) if isinstance(peer, tuple) and peer else "-"
