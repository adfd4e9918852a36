"""Authorization codes (RFC 6749 §4.1.2, RFC 7636): 256 random bits, stored only as a SHA-256
hash, valid for at most 60 seconds, bound to the client, redirect URI, PKCE challenge, nonce,
scope, audience, session, user and auth_time. Single use by compare-and-swap; a second use is
``invalid_grant`` and revokes what the first exchange issued (its refresh family and its access
token's ``jti``), even when the two race."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
from collections.abc import Callable

from issuer.authorize.request import AuthorizationRequest
from issuer.errors import InvalidGrant
from issuer.models import AuthorizationCode, BrowserSession
from issuer.storage.base import CodeStore
from issuer.tokens.refresh import RefreshTokens
from issuer.tokens.validate import Revocations

log = logging.getLogger("issuer.authorize")

CODE_TTL = 60
_VERIFIER_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def hash_code(code: str) -> bytes:
    return hashlib.sha256(code.encode()).digest()


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def verifier_problem(verifier: str) -> str | None:
    if not 43 <= len(verifier) <= 128 or not set(verifier) <= _VERIFIER_CHARS:
        return "code_verifier must be 43 to 128 characters of [A-Za-z0-9-._~]"
    return None


class AuthorizationCodes:
    def __init__(
        self,
        store: CodeStore,
        refresh_tokens: RefreshTokens,
        revocations: Revocations,
        clock: Callable[[], float],
        ttl: int = CODE_TTL,
    ) -> None:
        self._store = store
        self._refresh = refresh_tokens
        self._revocations = revocations
        self._clock = clock
        self._ttl = min(ttl, CODE_TTL)

    async def issue(
        self,
        request: AuthorizationRequest,
        session: BrowserSession,
        scope: tuple[str, ...] | None = None,
        audience: tuple[str, ...] | None = None,
    ) -> str:
        """A new code for ``request``, signed in by ``session``; ``scope`` and ``audience`` default
        to the request's (pass what the user actually allowed if it is less)."""
        now = self._clock()
        code = secrets.token_urlsafe(32)
        await self._store.create_code(
            AuthorizationCode(
                code_hash=hash_code(code),
                client_id=request.client.client_id,
                user_id=session.user_id,
                session_id=session.session_id,
                redirect_uri=request.redirect_uri,
                code_challenge=request.code_challenge,
                nonce=request.nonce,
                scope=" ".join(request.scope if scope is None else scope),
                audience=" ".join(request.audience if audience is None else audience),
                auth_time=session.auth_time,
                issued_at=now,
                expires_at=now + self._ttl,
            )
        )
        return code

    async def redeem(self, code: str, client_id: str, redirect_uri: str, verifier: str) -> AuthorizationCode:
        """Consume the code for ``client_id``; every failure is ``invalid_grant`` (RFC 6749 §5.2)."""
        problem = verifier_problem(verifier)
        if problem:
            raise InvalidGrant(problem)
        found = await self._store.consume_code(hash_code(code), self._clock()) if len(code) <= 256 else None
        if found is None:
            raise InvalidGrant("authorization code is invalid")
        stored, won = found
        if not won:
            await self._revoke_issued(stored)
            log.warning("authorization code replayed", extra={"client_id": stored.client_id})
            raise InvalidGrant("authorization code was already used")
        # Checked after consuming: a code presented with a wrong binding is spent all the same.
        if not hmac.compare_digest(stored.client_id, client_id):
            raise InvalidGrant("authorization code is invalid")
        if self._clock() >= stored.expires_at:
            raise InvalidGrant("authorization code expired")
        if not hmac.compare_digest(stored.redirect_uri, redirect_uri):
            raise InvalidGrant("redirect_uri does not match the authorization request")
        if not hmac.compare_digest(s256(verifier), stored.code_challenge):
            raise InvalidGrant("code_verifier does not match the code_challenge")
        return stored

    async def issued(self, code: AuthorizationCode, family_id: str | None, jti: str, expires_at: float) -> None:
        """Record what the exchange of ``code`` issued. If a replay came in meanwhile, revoke it
        at once and refuse (the client gets ``invalid_grant``, as the replayer did)."""
        replayed = await self._store.record_code_tokens(code.code_hash, family_id, jti, expires_at)
        if replayed:
            await self._revoke_issued(code, family_id, jti, expires_at)
            raise InvalidGrant("authorization code was already used")

    async def _revoke_issued(
        self,
        code: AuthorizationCode,
        family_id: str | None = None,
        jti: str | None = None,
        expires_at: float | None = None,
    ) -> None:
        family_id = family_id or code.family_id
        jti, expires_at = jti or code.access_jti, expires_at or code.access_expires_at
        if family_id is not None:
            await self._refresh.revoke_family(family_id, "authorization code replayed")
        if jti is not None and expires_at is not None:
            await self._revocations.revoke(jti, expires_at)
