"""``Verifier``: discovery (RFC 8414), the JWKS cache, and the access-token checks, with an async
(``verify``) and a sync (``verify_sync``) entry point over one sans-I/O core.

The core is a generator that yields the HTTP requests it needs and receives the answers; the async
and sync drivers only perform them. Concurrent misses wait for one fetch instead of making their own.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

import httpx
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jws import JWSRegistry

from issuer_verifier.errors import InvalidToken, IssuerUnavailable
from issuer_verifier.keyset import KeySet, Reason, VerificationKey
from issuer_verifier.token import REQUIRED_CLAIMS, AccessToken, ClaimRules, Header, check_claims, read_header

DEFAULT_ALGORITHMS = ("RS256", "ES256")


@dataclass(frozen=True)
class _Request:
    url: str
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    sent_at: float


_Exchange = Generator[_Request, _Answer | Exception, None]


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
        self.rules = ClaimRules(issuer, audiences, leeway, tuple(required_claims))
        self.keyset = KeySet(
            allowed,
            refetch_floor=refetch_floor,
            default_max_age=default_max_age,
            min_fresh=min_fresh,
            error_backoff=error_backoff,
        )
        self.jwks_uri = jwks_uri
        self._registries = {alg: JWSRegistry(algorithms=[alg]) for alg in allowed}
        self._timeout = timeout
        self._http, self._sync_http = http, sync_http
        self._own_http = http is None
        self._own_sync_http = sync_http is None
        self._clock, self._monotonic = clock, monotonic
        self._async_lock: asyncio.Lock | None = None
        self._sync_lock = threading.Lock()

    # --- entry points -------------------------------------------------------------------------

    async def verify(self, token: str) -> AccessToken:
        """Verify ``token``; raises InvalidToken, or IssuerUnavailable when no keys can be had."""
        header = read_header(token, self.algorithms)
        arrived = self._monotonic()
        if self.keyset.due(header.kid, arrived) is not None:
            if self._async_lock is None:
                self._async_lock = asyncio.Lock()
            async with self._async_lock:
                reason = self.keyset.due(header.kid, self._monotonic(), since=arrived)
                if reason is not None:
                    await self._drive_async(self._refresh(reason))
        return self._finish(header)

    def verify_sync(self, token: str) -> AccessToken:
        """The same as ``verify``, blocking (thread-safe)."""
        header = read_header(token, self.algorithms)
        arrived = self._monotonic()
        if self.keyset.due(header.kid, arrived) is not None:
            with self._sync_lock:
                reason = self.keyset.due(header.kid, self._monotonic(), since=arrived)
                if reason is not None:
                    self._drive_sync(self._refresh(reason))
        return self._finish(header)

    async def aclose(self) -> None:
        if self._own_http and self._http is not None:
            await self._http.aclose()
            self._http = None
        self.close()

    def close(self) -> None:
        if self._own_sync_http and self._sync_http is not None:
            self._sync_http.close()
            self._sync_http = None

    # --- core ---------------------------------------------------------------------------------

    def _finish(self, header: Header) -> AccessToken:
        if not self.keyset.usable(self._monotonic()):
            raise IssuerUnavailable("the issuer's keys are not available (last fetch failed)")
        key = self.keyset.keys.get(header.kid)
        if key is None:
            raise InvalidToken(f"unknown kid {header.kid[:64]!r} (not in the issuer's JWKS)", reason="unknown_kid")
        claims = self._signed_claims(header, key)
        return check_claims(claims, header.kid, self.rules, self._clock())

    def _signed_claims(self, header: Header, key: VerificationKey) -> object:
        if key.alg != header.alg:
            raise InvalidToken(f"kid {key.kid} is a {key.alg} key, the token says {header.alg}", reason="alg")
        try:
            if jws.validate_compact(header.signed, key.key, registry=self._registries[key.alg]):
                return json.loads(header.signed.payload)
        except (JoseError, ValueError, TypeError) as exc:
            raise InvalidToken(f"bad signature or payload (kid {key.kid})", reason="signature") from exc
        raise InvalidToken(f"bad signature (kid {key.kid})", reason="signature")

    def _refresh(self, reason: Reason) -> _Exchange:
        if self.jwks_uri is None:
            answer = yield _Request(metadata_url(self.issuer))
            self.jwks_uri = self._jwks_uri_of(answer)
        answer = yield _Request(self.jwks_uri, self.keyset.request_headers())
        if isinstance(answer, Exception):
            self.keyset.failed(self._monotonic(), f"{type(answer).__name__}: {answer}")
        else:
            self.keyset.accept(reason, answer.status, answer.headers, answer.body, answer.sent_at)

    def _jwks_uri_of(self, answer: _Answer | Exception) -> str:
        where = metadata_url(self.issuer)
        if isinstance(answer, Exception):
            return self._unavailable(f"cannot fetch {where}: {type(answer).__name__}")
        try:
            metadata = json.loads(answer.body) if answer.status == 200 else None
        except ValueError:
            metadata = None
        if not isinstance(metadata, dict) or not isinstance(metadata.get("jwks_uri"), str):
            return self._unavailable(f"{where} answered {answer.status} without a jwks_uri")
        if metadata.get("issuer") != self.issuer:  # RFC 8414 §3.3
            return self._unavailable(f"{where} names issuer {metadata.get('issuer')!r}, not {self.issuer!r}")
        jwks_uri: str = metadata["jwks_uri"]
        if urlsplit(jwks_uri).scheme not in ("https", "http"):
            return self._unavailable(f"{where}: jwks_uri {jwks_uri!r} is not an http(s) URL")
        return jwks_uri

    def _unavailable(self, why: str) -> str:
        self.keyset.failed(self._monotonic(), why)  # raises: without a jwks_uri nothing is cached
        raise IssuerUnavailable(why)

    # --- drivers ------------------------------------------------------------------------------

    async def _drive_async(self, exchange: _Exchange) -> None:
        http = self._http = self._http or httpx.AsyncClient(timeout=self._timeout)
        request = _step(exchange, None)
        while request is not None:
            request = _step(exchange, await _get_async(http, request, self._monotonic()))

    def _drive_sync(self, exchange: _Exchange) -> None:
        http = self._sync_http = self._sync_http or httpx.Client(timeout=self._timeout)
        request = _step(exchange, None)
        while request is not None:
            request = _step(exchange, _get_sync(http, request, self._monotonic()))


async def _get_async(http: httpx.AsyncClient, request: _Request, sent_at: float) -> _Answer | Exception:
    try:
        return _answer(await http.get(request.url, headers=request.headers), sent_at)
    except httpx.HTTPError as exc:
        return exc


def _get_sync(http: httpx.Client, request: _Request, sent_at: float) -> _Answer | Exception:
    try:
        return _answer(http.get(request.url, headers=request.headers), sent_at)
    except httpx.HTTPError as exc:
        return exc


def _step(exchange: _Exchange, reply: _Answer | Exception | None) -> _Request | None:
    """The next request the exchange needs, given the answer to the last one (None: it is done)."""
    try:
        return exchange.send(reply) if reply is not None else next(exchange)
    except StopIteration:
        return None


def _answer(response: httpx.Response, sent_at: float) -> _Answer:
    return _Answer(response.status_code, dict(response.headers), response.content, sent_at)
