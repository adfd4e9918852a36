"""Client registry: server-generated secrets checked by peppered HMAC-SHA256, and a short-lived
in-memory cache so the token endpoint does not touch the database per request.

A server-generated 256-bit secret cannot be guessed, so it needs no slow hash; the pepper
(kept encrypted under the key-encryption keys) makes a stolen table useless on its own.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import replace

from issuer.errors import InvalidClient
from issuer.ids import new_id
from issuer.models import Client
from issuer.oauth.scopes import is_scope_token
from issuer.oauth.uris import uri_problem
from issuer.storage.base import ClientStore

GRANT_TYPES = ("authorization_code", "client_credentials", "password", "refresh_token")
MAX_CLIENT_ID = 256
"""A request naming a longer client id is answered as for an unknown client, without a lookup."""
MAX_REDIRECT_URIS = 20
# Known clients and unknown ids are bounded apart, so a flood of made-up client_ids (which
# anyone can send to the token endpoint) only ever evicts other made-up ids.
_CACHE_LIMIT = 10_000
_MISS_LIMIT = 1_000


def _consume(future: asyncio.Future[Client | None]) -> None:
    if not future.cancelled():
        future.exception()


class ClientValidationError(ValueError):
    pass


def redirect_uri_problem(value: str) -> str | None:
    """Why ``value`` cannot be registered as a (post-logout) redirect URI: the rule of
    issuer.oauth.uris, and no wildcard (redirect URIs are compared as exact strings)."""
    if "*" in value:
        return "must not contain a wildcard"
    return uri_problem(value)


def _check_uris(kind: str, uris: tuple[str, ...]) -> None:
    if len(uris) > MAX_REDIRECT_URIS:
        raise ClientValidationError(f"at most {MAX_REDIRECT_URIS} {kind}s")
    for uri in uris:
        problem = redirect_uri_problem(uri)
        if problem:
            raise ClientValidationError(f"{kind} {uri[:100]!r} {problem}")


def validate_client_fields(
    name: str,
    grant_types: tuple[str, ...],
    scopes: tuple[str, ...],
    audiences: tuple[str, ...],
    public: bool,
    redirect_uris: tuple[str, ...] = (),
    post_logout_redirect_uris: tuple[str, ...] = (),
) -> None:
    if not name or len(name) > 200 or not name.isprintable():
        raise ClientValidationError("name must be 1 to 200 printable characters")
    if not grant_types:
        raise ClientValidationError("at least one grant type is required")
    unknown = [g for g in grant_types if g not in GRANT_TYPES]
    if unknown:
        raise ClientValidationError(f"unsupported grant type(s): {', '.join(unknown)}")
    if public and "client_credentials" in grant_types:
        raise ClientValidationError("a public client cannot use client_credentials")
    bad_scopes = [s for s in scopes if not is_scope_token(s)]
    if bad_scopes:
        raise ClientValidationError(f"invalid scope token(s): {' '.join(bad_scopes)}")
    for audience in audiences:
        problem = uri_problem(audience)
        if problem:
            raise ClientValidationError(f"audience {audience[:100]!r} {problem}")
    _check_uris("redirect URI", redirect_uris)
    _check_uris("post-logout redirect URI", post_logout_redirect_uris)
    if "authorization_code" in grant_types and not redirect_uris:
        raise ClientValidationError("authorization_code requires at least one redirect URI")


def validate_client(client: Client) -> None:
    validate_client_fields(
        client.name,
        client.grant_types,
        client.scopes,
        client.audiences,
        client.is_public,
        client.redirect_uris,
        client.post_logout_redirect_uris,
    )


class ClientRegistry:
    def __init__(
        self,
        store: ClientStore,
        pepper: bytes,
        clock: Callable[[], float],
        cache_ttl: float = 5.0,
        on_change: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        self.on_change = on_change
        self._store = store
        # Keyed once; each secret is hashed on a copy (about 3× cheaper than hmac.digest).
        self._mac = hmac.new(pepper, digestmod=hashlib.sha256)
        self._clock = clock
        self._ttl = cache_ttl
        self._cache: dict[str, tuple[Client | None, float]] = {}
        self._misses: dict[str, tuple[Client | None, float]] = {}
        self._generation = 0
        self._loading: dict[str, asyncio.Future[Client | None]] = {}
        self._dummy = self.hash_secret(secrets.token_urlsafe(32))

    def hash_secret(self, secret: str) -> bytes:
        mac = self._mac.copy()
        mac.update(secret.encode())
        return mac.digest()

    # Changes are made by issuer.operations.clients (audited in the same transaction); the
    # registry builds the new values and drops its cache entry once they are committed.

    def new_client(
        self,
        name: str,
        grant_types: tuple[str, ...],
        scopes: tuple[str, ...],
        audiences: tuple[str, ...] = (),
        *,
        public: bool = False,
        redirect_uris: tuple[str, ...] = (),
        post_logout_redirect_uris: tuple[str, ...] = (),
        first_party: bool = False,
    ) -> tuple[Client, str | None]:
        """A validated new client and its secret (None for a public client), not yet stored."""
        grant_types, scopes, audiences, redirect_uris, post_logout_redirect_uris = (
            tuple(dict.fromkeys(v)) for v in (grant_types, scopes, audiences, redirect_uris, post_logout_redirect_uris)
        )
        secret = None if public else secrets.token_urlsafe(32)
        now = self._clock()
        client = Client(
            client_id=new_id(),
            name=name,
            secret_hash=None if secret is None else self.hash_secret(secret),
            grant_types=grant_types,
            scopes=scopes,
            audiences=audiences,
            created_at=now,
            updated_at=now,
            redirect_uris=redirect_uris,
            post_logout_redirect_uris=post_logout_redirect_uris,
            first_party=first_party,
        )
        validate_client(client)
        return client, secret

    def updated(self, client: Client, **changes: object) -> Client:
        updated = replace(client, **changes, updated_at=self._clock())  # type: ignore[arg-type]
        validate_client(updated)
        return updated

    def with_new_secret(self, client: Client) -> tuple[Client, str]:
        secret = secrets.token_urlsafe(32)
        return replace(client, secret_hash=self.hash_secret(secret), updated_at=self._clock()), secret

    async def get(self, client_id: str) -> Client | None:
        """Cached for ``cache_ttl``; an entry up to twice that old is served while one
        background read refreshes it, so expiry never stalls a burst of requests."""
        now = self._clock()
        hit = self._cache.get(client_id) or self._misses.get(client_id)
        if hit is not None:
            age = now - hit[1]
            if age < self._ttl:
                return hit[0]
            if age < 2 * self._ttl:
                if client_id not in self._loading:
                    self._start_load(client_id)
                return hit[0]
        loading = self._loading.get(client_id) or self._start_load(client_id)
        return await asyncio.shield(loading)

    async def current(self, client_id: str) -> Client | None:
        """Read from the store, past the cache: for the steps that hand a user's grant to a client
        (a code, after sign-in or consent), where a client disabled a moment ago must get nothing."""
        return await self._store.get_client(client_id)

    def _start_load(self, client_id: str) -> asyncio.Future[Client | None]:
        loading = self._loading[client_id] = asyncio.ensure_future(self._load(client_id))
        # A background refresh has no awaiter, and a shielded one may lose its awaiter to a
        # cancelled request: read the outcome here so a failed load (say, the database is down)
        # is never reported as "Task exception was never retrieved". The next get() retries.
        loading.add_done_callback(_consume)
        return loading

    async def _load(self, client_id: str) -> Client | None:
        generation = self._generation
        try:
            client = await self._store.get_client(client_id)
            # A change while we read may have invalidated what we read: answer it, keep it not.
            if generation == self._generation:
                entries, limit = (self._cache, _CACHE_LIMIT) if client is not None else (self._misses, _MISS_LIMIT)
                entries.pop(client_id, None)
                if len(entries) >= limit:
                    del entries[next(iter(entries))]  # the least recently loaded
                entries[client_id] = (client, self._clock())
            return client
        finally:
            self._loading.pop(client_id, None)

    async def changed(self, client_id: str) -> None:
        """A committed change: forget it here, and tell the other instances."""
        self.invalidate(client_id)
        if self.on_change is not None:
            await self.on_change(client_id)

    def invalidate(self, client_id: str | None = None) -> None:
        self._generation += 1
        if client_id is None:
            self._cache.clear()
            self._misses.clear()
        else:
            self._cache.pop(client_id, None)
            self._misses.pop(client_id, None)

    async def authenticate(self, client_id: str, secret: str | None) -> Client:
        """The same error for an unknown or disabled client, a wrong secret, or a missing one."""
        client = await self.get(client_id) if 0 < len(client_id) <= MAX_CLIENT_ID else None
        if client is not None and client.disabled:
            if secret is not None:
                hmac.compare_digest(self.hash_secret(secret), self._dummy)
            raise InvalidClient("client authentication failed")
        if client is None or client.secret_hash is None:
            if secret is not None:
                hmac.compare_digest(self.hash_secret(secret), self._dummy)
            if client is not None and secret is None:
                return client  # a public client identifies itself by client_id alone
            raise InvalidClient("client authentication failed")
        if secret is None or not hmac.compare_digest(self.hash_secret(secret), client.secret_hash):
            raise InvalidClient("client authentication failed")
        return client
