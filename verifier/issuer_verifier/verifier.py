"""``Verifier``: discovery (RFC 8414), the JWKS cache, and the access-token checks, with an async
(``verify``) and a sync (``verify_sync``) entry point over one sans-I/O core.

The core is a generator that yields the HTTP requests it needs and receives the answers; the async
and sync drivers only perform them (``fetch``: an overall deadline and a size cap per request).
Concurrent misses wait for one fetch instead of making their own; once the keys expire, tokens whose
``kid`` is cached are verified with them while one background refresh runs (stale-while-revalidate).
Async and sync callers each have their own lock: a process using both may make one extra fetch.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Callable, Coroutine, Generator, Iterable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jws import JWSRegistry

from issuer_verifier.errors import InvalidToken, IssuerUnavailable
from issuer_verifier.fetch import METADATA_LIMIT, Answer, Request, get_async, get_sync
from issuer_verifier.keyset import KeySet, Reason
from issuer_verifier.token import (
    REQUIRED_CLAIMS,
    AccessToken,
    ClaimRules,
    Header,
    check_claims,
    parse_claims,
    read_header,
)

DEFAULT_ALGORITHMS = ("RS256", "ES256")


_Exchange = Generator[Request, Answer | Exception, None]


def metadata_url(issuer: str) -> str:
    """RFC 8414 §3.1: the well-known segment goes between the host and the issuer's path."""
    parts = urlsplit(issuer)
    path = "/.well-known/oauth-authorization-server" + parts.path.rstrip("/")
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


class Verifier:
    """Verifies the issuer's access tokens for one API (``audience``: one URI or several).

    Build it once per process and share it: it holds the key cache. ``http``/``sync_http`` may be
    given (for proxies, custom TLS or tests); otherwise clients with ``timeout`` are made on first use.
    """

    def __init__(
        self,
        issuer: str,
        audience: str | Iterable[str],
        *,
        algorithms: Iterable[str] = DEFAULT_ALGORITHMS,
        leeway: float = 30.0,
        required_claims: Iterable[str] = REQUIRED_CLAIMS,
        refetch_floor: float = 30.0,
        default_max_age: float = 300.0,
        min_fresh: float = 1.0,
        error_backoff: float = 5.0,
        jwks_uri: str | None = None,
        timeout: float = 5.0,
        http: httpx.AsyncClient | None = None,
        sync_http: httpx.Client | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        allowed = frozenset(algorithms)
        if not allowed or not allowed <= set(DEFAULT_ALGORITHMS):
            raise ValueError(f"algorithms must be among {', '.join(DEFAULT_ALGORITHMS)}")
        audiences = frozenset([audience] if isinstance(audience, str) else audience)
        if not audiences:
            raise ValueError("audience: name at least one")
        self.issuer = issuer
        self.algorithms = allowed
        required = tuple(dict.fromkeys([*required_claims, "exp", "aud"]))  # never without exp and aud
        self.rules = ClaimRules(issuer, audiences, leeway, required)
        self.keyset = KeySet(
            allowed,
            refetch_floor=refetch_floor,
            default_max_age=default_max_age,
            min_fresh=min_fresh,
            error_backoff=error_backoff,
        )
        if jwks_uri is not None and _scheme(jwks_uri) not in self._schemes():
            raise ValueError(f"jwks_uri must be {' or '.join(self._schemes())} (the issuer is {issuer})")
        self.jwks_uri = jwks_uri
        self._registries = {alg: JWSRegistry(algorithms=[alg]) for alg in allowed}
        self._timeout = timeout
        self._http, self._sync_http = http, sync_http
        self._own_http = http is None
        self._own_sync_http = sync_http is None
        self._clock, self._monotonic = clock, monotonic
        self._async_lock: asyncio.Lock | None = None
        self._sync_lock = threading.Lock()
        self._background: asyncio.Task[None] | None = None
        self._thread: threading.Thread | None = None
        self._thread_guard = threading.Lock()

    # --- entry points -------------------------------------------------------------------------

    async def verify(self, token: str) -> AccessToken:
        """Verify ``token``; raises InvalidToken, or IssuerUnavailable when no keys can be had."""
        header = read_header(token, self.algorithms)
        arrived = self._monotonic()
        reason = self.keyset.due(header.kid, arrived)
        if reason == "expired" and self._serves_stale(header.kid, arrived):
            if self._background is None or self._background.done():
                self._background = asyncio.get_running_loop().create_task(
                    _quietly(self._refresh_async(header.kid, arrived))
                )
        elif reason is not None:
            await self._refresh_async(header.kid, arrived)
        return self._finish(header)

    def verify_sync(self, token: str) -> AccessToken:
        """The same as ``verify``, blocking (thread-safe)."""
        header = read_header(token, self.algorithms)
        arrived = self._monotonic()
        reason = self.keyset.due(header.kid, arrived)
        if reason == "expired" and self._serves_stale(header.kid, arrived):
            with self._thread_guard:
                if self._thread is None or not self._thread.is_alive():
                    self._thread = threading.Thread(
                        target=self._refresh_quietly_sync, args=(header.kid, arrived), daemon=True
                    )
                    self._thread.start()
        elif reason is not None:
            self._refresh_sync(header.kid, arrived)
        return self._finish(header)

    async def idle(self) -> None:
        """Wait for a background refresh in progress, if any (for tests and orderly shutdowns)."""
        if self._background is not None:
            await self._background
        thread = self._thread
        if thread is not None:
            await asyncio.to_thread(thread.join)

    async def aclose(self) -> None:
        if self._background is not None:
            self._background.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._background
        if self._own_http and self._http is not None:
            await self._http.aclose()
            self._http = None
        self.close()

    def close(self) -> None:
        if self._own_sync_http and self._sync_http is not None:
            self._sync_http.close()
            self._sync_http = None

    # --- core ---------------------------------------------------------------------------------

    def _serves_stale(self, kid: str, now: float) -> bool:
        """Expired keys still verify tokens of a cached ``kid`` while one refresh runs behind them."""
        return kid in self.keyset.keys and self.keyset.may_serve_stale(now)

    def _finish(self, header: Header) -> AccessToken:
        if not self.keyset.usable(self._monotonic()):
            raise IssuerUnavailable("the issuer's keys are not available (last fetch failed)")
        key = self.keyset.keys.get(header.kid)
        if key is None:
            raise InvalidToken(f"unknown kid {header.kid[:64]!r} (not in the issuer's JWKS)", reason="unknown_kid")
        if key.alg != header.alg:
            raise InvalidToken(f"kid {key.kid} is a {key.alg} key, the token says {header.alg}", reason="alg")
        try:
            valid = jws.validate_compact(header.signed, key.key, registry=self._registries[key.alg])
        except (JoseError, ValueError, TypeError) as exc:
            raise InvalidToken(f"bad signature (kid {key.kid})", reason="signature") from exc
        if not valid:
            raise InvalidToken(f"bad signature (kid {key.kid})", reason="signature")
        return check_claims(parse_claims(header.signed.payload), header.kid, self.rules, self._clock())

    def _refresh(self, reason: Reason) -> _Exchange:
        """Any failure (transport, deadline, size, status, parsing, whatever raises) is a failed
        fetch: backoff, stale keys within stale-if-error, IssuerUnavailable when nothing is left."""
        try:
            yield from self._exchange(reason)
        except IssuerUnavailable:
            raise
        except Exception as exc:  # noqa: BLE001
            self.keyset.failed(self._monotonic(), f"{type(exc).__name__}: {str(exc)[:200]}")

    def _exchange(self, reason: Reason) -> _Exchange:
        if self.jwks_uri is None:
            answer = yield Request(metadata_url(self.issuer), limit=METADATA_LIMIT)
            self.jwks_uri = self._jwks_uri_of(answer)
        answer = yield Request(self.jwks_uri, self.keyset.request_headers())
        if isinstance(answer, Exception):
            self.keyset.failed(self._monotonic(), f"{type(answer).__name__}: {str(answer)[:200]}")
        else:
            self.keyset.accept(reason, answer.status, answer.headers, answer.body, answer.sent_at)

    def _jwks_uri_of(self, answer: Answer | Exception) -> str:
        where = metadata_url(self.issuer)
        if isinstance(answer, Exception):
            return self._unavailable(f"cannot fetch {where}: {type(answer).__name__}: {str(answer)[:200]}")
        try:
            metadata = json.loads(answer.body) if answer.status == 200 else None
        except (ValueError, RecursionError):
            metadata = None
        if not isinstance(metadata, dict) or not isinstance(metadata.get("jwks_uri"), str):
            return self._unavailable(f"{where} answered {answer.status} without a jwks_uri")
        if metadata.get("issuer") != self.issuer:  # RFC 8414 §3.3
            return self._unavailable(f"{where} names issuer {str(metadata.get('issuer'))[:200]!r}, not {self.issuer!r}")
        jwks_uri: str = metadata["jwks_uri"]
        if _scheme(jwks_uri) not in self._schemes():
            allowed = " or ".join(self._schemes())
            return self._unavailable(f"{where}: jwks_uri {jwks_uri[:200]!r} is not an {allowed} URL")
        return jwks_uri

    def _schemes(self) -> tuple[str, ...]:
        """An https issuer's keys come over https only; a plain-http issuer (development) may use either."""
        return ("https",) if _scheme(self.issuer) == "https" else ("https", "http")

    def _unavailable(self, why: str) -> str:
        self.keyset.failed(self._monotonic(), why)  # raises: without a jwks_uri nothing is cached
        raise IssuerUnavailable(why)

    # --- drivers ------------------------------------------------------------------------------

    def _due_exchange(self, kid: str, arrived: float) -> _Exchange | None:
        """Under the lock: the fetch still needed once the one we may have queued behind is done."""
        reason = self.keyset.due(kid, self._monotonic(), since=arrived)
        return None if reason is None else self._refresh(reason)

    async def _refresh_async(self, kid: str, arrived: float) -> None:
        if self._async_lock is None:
            self._async_lock = asyncio.Lock()
        async with self._async_lock:
            exchange = self._due_exchange(kid, arrived)
            request = _step(exchange, None)
            while exchange is not None and request is not None:
                self._http = http = self._http or httpx.AsyncClient(timeout=self._timeout)
                request = _step(exchange, await get_async(http, request, self._monotonic(), self._timeout))

    def _refresh_sync(self, kid: str, arrived: float) -> None:
        with self._sync_lock:
            exchange = self._due_exchange(kid, arrived)
            reply: Answer | Exception | None = None
            while exchange is not None and (request := _step(exchange, reply)) is not None:
                self._sync_http = http = self._sync_http or httpx.Client(timeout=self._timeout)
                reply = get_sync(http, request, self._monotonic(), self._timeout)

    def _refresh_quietly_sync(self, kid: str, arrived: float) -> None:
        with contextlib.suppress(IssuerUnavailable):  # recorded in the keyset; verifications raise it
            self._refresh_sync(kid, arrived)


async def _quietly(refresh: Coroutine[Any, Any, None]) -> None:
    with contextlib.suppress(IssuerUnavailable):  # recorded in the keyset; verifications raise it
        await refresh


def _scheme(url: str) -> str:
    try:
        return urlsplit(url).scheme
    except ValueError:
        return ""


def _step(exchange: _Exchange | None, reply: Answer | Exception | None) -> Request | None:
    """The next request the exchange needs, given the answer to the last one (None: it is done)."""
    if exchange is None:
        return None
    try:
        return exchange.send(reply) if reply is not None else next(exchange)
    except StopIteration:
        return None
