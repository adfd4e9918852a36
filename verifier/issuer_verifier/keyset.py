"""The JWKS cache: HTTP caching rules (RFC 9111 max-age and validators, RFC 5861 stale-if-error)
plus a floor on refetches for unknown ``kid`` values. No I/O here: the verifier does the requests.

Ages count from when the request was sent (RFC 9111 §4.2.3), so a slow answer is never kept longer
than the issuer allowed. A 304 renews the copy with the new ``Cache-Control`` (§4.3.4).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Literal

from joserfc.jwk import ECKey, RSAKey

from issuer_verifier.errors import IssuerUnavailable

Reason = Literal["initial", "expired", "unknown_kid"]
PublicKey = RSAKey | ECKey

_DIRECTIVE = re.compile(r"([a-z-]+)\s*(?:=\s*\"?(\d+)\"?)?")
# A key type accepts exactly one algorithm: an RSA key never verifies ES256, nor an EC key RS256.
KEY_ALGORITHMS: dict[tuple[object, object], str] = {("RSA", None): "RS256", ("EC", "P-256"): "ES256"}


@dataclass(frozen=True)
class CacheControl:
    max_age: float | None = None
    stale_if_error: float = 0.0
    no_cache: bool = False

    @classmethod
    def parse(cls, value: str | None) -> CacheControl:
        directives: dict[str, str] = {}
        for part in (value or "").lower().split(","):
            match = _DIRECTIVE.fullmatch(part.strip())
            if match:
                directives.setdefault(match.group(1), match.group(2) or "")
        no_cache = "no-cache" in directives or "no-store" in directives
        max_age = directives.get("max-age")
        return cls(
            max_age=0.0 if no_cache else (float(max_age) if max_age else None),
            stale_if_error=float(directives.get("stale-if-error") or 0),
            no_cache=no_cache,
        )


@dataclass(frozen=True)
class VerificationKey:
    kid: str
    alg: str
    key: PublicKey


def _parse_jwks(body: bytes, algorithms: frozenset[str]) -> dict[str, VerificationKey]:
    """The usable keys of a JWK Set: a ``kid``, a type we allow, meant for signatures. Others are skipped."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise ValueError("the JWKS is not JSON") from exc
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("the JWKS has no 'keys' list")
    keys: dict[str, VerificationKey] = {}
    for jwk in document["keys"]:
        found = _parse_jwk(jwk, algorithms)
        if found is not None:
            keys[found.kid] = found
    return keys


def _parse_jwk(jwk: Any, algorithms: frozenset[str]) -> VerificationKey | None:
    if not isinstance(jwk, dict) or not isinstance(jwk.get("kid"), str) or jwk.get("use", "sig") != "sig":
        return None
    alg = KEY_ALGORITHMS.get((jwk.get("kty"), jwk.get("crv")))
    if alg is None or alg not in algorithms or jwk.get("alg", alg) != alg:
        return None
    public = {k: v for k, v in jwk.items() if k not in ("d", "p", "q", "dp", "dq", "qi", "oth")}
    try:
        key: PublicKey = RSAKey.import_key(public) if alg == "RS256" else ECKey.import_key(public)
    except Exception:  # noqa: BLE001 - a key we cannot import is skipped, whatever the reason
        return None
    return VerificationKey(jwk["kid"], alg, key)


class KeySet:
    """What we hold of the issuer's JWKS and when to ask again.

    ``refetch_floor``: an unknown ``kid`` refetches at most once per this many seconds; in between,
    tokens with unknown kids are refused without a request. ``default_max_age`` applies when the
    answer carries no ``max-age``; ``min_fresh`` is the least time an answer is used for, so a
    ``max-age=0`` or ``no-cache`` answer (ours says 0 in the last second before a scheduled rotation)
    means one revalidation per ``min_fresh``, not one per token; keep it below the issuer's
    publication delay of new keys (``max-age`` + clock skew). ``error_backoff``: after a failed
    fetch, wait this long before the next attempt (stale keys serve meanwhile, within ``stale-if-error``).
    """

    def __init__(
        self,
        algorithms: frozenset[str],
        *,
        refetch_floor: float = 30.0,
        default_max_age: float = 300.0,
        min_fresh: float = 1.0,
        error_backoff: float = 5.0,
    ) -> None:
        self.algorithms = algorithms
        self.refetch_floor = refetch_floor
        self.default_max_age = default_max_age
        self.min_fresh = min_fresh
        self.error_backoff = error_backoff
        self.keys: dict[str, VerificationKey] = {}
        self.etag: str | None = None
        self._loaded = False
        self._fresh_until = float("-inf")
        self._usable_until = float("-inf")  # fresh_until + stale-if-error
        self._last_unknown_kid_fetch = float("-inf")
        self._failed_at = float("-inf")
        self.last_sent_at = float("-inf")
        self.fetches: dict[str, int] = {"initial": 0, "expired": 0, "unknown_kid": 0}
        self.not_modified = 0
        self.errors = 0

    def due(self, kid: str, now: float, *, since: float | None = None) -> Reason | None:
        """Whether, and why, to fetch before looking ``kid`` up. ``since``: when the caller began
        waiting; an answer to a request sent after that is fresh enough for it, even at max-age 0
        (so callers queued behind one fetch do not each fetch again)."""
        if now - self._failed_at < self.error_backoff:
            return None
        if not self._loaded:
            return "initial"
        if now >= self._fresh_until and (since is None or self.last_sent_at < since):
            return "expired"
        if kid not in self.keys and now - self._last_unknown_kid_fetch >= self.refetch_floor:
            return "unknown_kid"
        return None

    def request_headers(self) -> dict[str, str]:
        return {"If-None-Match": self.etag} if self.etag else {}

    def accept(self, reason: Reason, status: int, headers: dict[str, str], body: bytes, sent_at: float) -> None:
        """Take an answer to a fetch made for ``reason`` at ``sent_at``. Raises IssuerUnavailable if
        it is not usable and nothing cached may stand in for it."""
        self.fetches[reason] += 1
        self.last_sent_at = sent_at
        if reason == "unknown_kid":
            self._last_unknown_kid_fetch = sent_at
        if status == 304 and self._loaded:
            self.not_modified += 1
        elif status == 200:
            try:
                self.keys = _parse_jwks(body, self.algorithms)
            except ValueError as exc:
                self.failed(sent_at, f"{exc}")
                return
            self.etag = headers.get("etag")
            self._loaded = True
        else:
            self.failed(sent_at, f"the JWKS answered HTTP {status}")
            return
        control = CacheControl.parse(headers.get("cache-control"))
        max_age = max(self.min_fresh, self.default_max_age if control.max_age is None else control.max_age)
        self._fresh_until = sent_at + max_age
        self._usable_until = self._fresh_until + control.stale_if_error
        self._failed_at = float("-inf")

    def failed(self, now: float, why: str) -> None:
        """A fetch failed: keep serving the cached keys within stale-if-error, else raise."""
        self.errors += 1
        self._failed_at = now
        if not self.usable(now):
            raise IssuerUnavailable(f"cannot fetch the issuer's keys ({why}) and no usable cached copy")

    def may_serve_stale(self, now: float) -> bool:
        """Expired keys may verify while one refresh runs behind them (stale-while-revalidate),
        within ``stale-if-error`` past ``max-age`` and until a fetch has failed past it."""
        return self.usable(now) and now < self._usable_until

    def usable(self, now: float) -> bool:
        """Loaded, and, while fetches fail, not past ``stale-if-error``. (An answer is always
        usable for the verifications that waited for it, even at ``max-age=0``.)"""
        return self._loaded and (self._failed_at == float("-inf") or now < self._usable_until)
