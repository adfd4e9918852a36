"""The verifier's HTTP GETs: one overall deadline per request (connect, headers and the whole body,
however slowly the issuer drips it) and a cap on the decoded body (a gzip bomb stops at the cap).

We decode ``Content-Encoding`` ourselves (gzip, deflate; we ask for nothing else) with a bounded
``zlib`` output, so no more than the cap is ever inflated in memory. Every failure comes back as an
exception *value* for the caller's failure path, never raised.
"""

from __future__ import annotations

import asyncio
import time
import zlib
from dataclasses import dataclass, field

import httpx

METADATA_LIMIT = 64 * 1024
JWKS_LIMIT = 256 * 1024
ACCEPT_ENCODING = "gzip, deflate"


class FetchError(Exception):
    """The answer was refused: too large, too slow, or in an encoding we do not decode."""


@dataclass(frozen=True)
class Request:
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    limit: int = JWKS_LIMIT


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    sent_at: float


class _Body:
    """Decoded body bytes, refused past ``limit``."""

    def __init__(self, encoding: str, limit: int) -> None:
        encoding = encoding.strip().lower()
        if encoding in ("", "identity"):
            self._inflate = None
        elif encoding in ("gzip", "x-gzip", "deflate"):
            self._inflate = zlib.decompressobj(16 + zlib.MAX_WBITS if "gzip" in encoding else zlib.MAX_WBITS)
        else:
            raise FetchError(f"unsupported Content-Encoding {encoding[:40]!r}")
        self.limit = limit
        self._parts: list[bytes] = []
        self._size = 0

    def feed(self, raw: bytes) -> None:
        if self._inflate is None:
            self._add(raw)
            return
        while raw:
            self._add(self._inflate.decompress(raw, self.limit - self._size + 1))
            raw = self._inflate.unconsumed_tail

    def _add(self, data: bytes) -> None:
        self._size += len(data)
        if self._size > self.limit:
            raise FetchError(f"the answer is larger than {self.limit} bytes")
        self._parts.append(data)

    def value(self) -> bytes:
        if self._inflate is not None:
            self._add(self._inflate.flush())
        return b"".join(self._parts)


def _started(request: Request, response: httpx.Response) -> _Body:
    if response.is_stream_consumed:  # already in memory (a mock transport's answer): only the cap applies
        body = _Body("", request.limit)
        body.feed(response.content)
        return body
    length = response.headers.get("content-length", "")
    if length.isdigit() and int(length) > request.limit and not response.headers.get("content-encoding"):
        raise FetchError(f"the answer is larger than {request.limit} bytes")
    return _Body(response.headers.get("content-encoding", ""), request.limit)


async def get_async(http: httpx.AsyncClient, request: Request, sent_at: float, deadline: float) -> Answer | Exception:
    """GET within ``deadline`` seconds overall."""
    headers = {**request.headers, "Accept-Encoding": ACCEPT_ENCODING}
    try:
        async with asyncio.timeout(deadline):
            async with http.stream("GET", request.url, headers=headers, timeout=deadline) as response:
                body = _started(request, response)
                if not response.is_stream_consumed:
                    async for chunk in response.aiter_raw():
                        body.feed(chunk)
                return Answer(response.status_code, dict(response.headers), body.value(), sent_at)
    except TimeoutError:
        return FetchError(f"no complete answer within {deadline:g} s")
    except Exception as exc:  # noqa: BLE001 - every failure goes to the caller's failure path
        return exc


def get_sync(http: httpx.Client, request: Request, sent_at: float, deadline: float) -> Answer | Exception:
    """GET within about ``deadline`` seconds overall: checked between chunks, and no single read
    waits longer than ``deadline`` (so at worst twice ``deadline``, however slow the drip)."""
    headers = {**request.headers, "Accept-Encoding": ACCEPT_ENCODING}
    end = time.monotonic() + deadline
    try:
        with http.stream("GET", request.url, headers=headers, timeout=deadline) as response:
            body = _started(request, response)
            if not response.is_stream_consumed:
                for chunk in response.iter_raw():
                    body.feed(chunk)
                    if time.monotonic() > end:
                        raise FetchError(f"no complete answer within {deadline:g} s")
            return Answer(response.status_code, dict(response.headers), body.value(), sent_at)
    except Exception as exc:  # noqa: BLE001 - every failure goes to the caller's failure path
        return exc
