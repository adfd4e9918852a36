"""Everything an issuer process holds, opened once from Settings and closed once.

The app's lifespan and every CLI command open the same ``Services``; nothing connects or
reads the environment at import time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from issuer.accounts.passwords import Passwords
from issuer.accounts.users import RoleHierarchy, Users
from issuer.authorize import AuthorizeContext
from issuer.authorize.codes import AuthorizationCodes
from issuer.authorize.consent import Consents
from issuer.authorize.sessions import BrowserSessions, SessionPolicy
from issuer.cache.bus import Bus
from issuer.cache.limits import LocalRateLimiter, RateLimiter, RedisRateLimiter
from issuer.cache.redisconn import connect as connect_redis
from issuer.cache.redisconn import redis_errors
from issuer.cache.revocations import LocalRevocationCache, RedisRevocationCache, RevocationCache
from issuer.errors import ConfigurationError, ServiceUnavailable
from issuer.grants.base import GrantContext
from issuer.models import RefreshFamily
from issuer.oauth.clients import ClientRegistry
from issuer.observability.metrics import Metrics
from issuer.operations import AuditLog, ClientOps, ConsentOps, KeyOps, Operations, SessionOps, UserOps
from issuer.operations.audit import RefusalLog, revoke_for_reuse
from issuer.settings import Settings
from issuer.startup import check_production, connect_database, key_policy, resolve_keks
from issuer.storage import SqlStorage
from issuer.storage.migrate import migrate, pending_migrations
from issuer.tokens.access import AccessTokens
from issuer.tokens.id_tokens import IdTokens, UserClaims
from issuer.tokens.refresh import RefreshPolicy, RefreshTokens
from issuer.tokens.revoke import TokenContext
from issuer.tokens.validate import AccessTokenValidator, Revocations
from keys.envelope import Envelope, EnvelopeError
from keys.keyring import Keyring
from keys.manager import KeyManager
from keys.secrets import load_or_create

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger("issuer")

Clock = Callable[[], float]


@dataclass
class Services:
    settings: Settings
    clock: Clock
    store: SqlStorage
    envelope: Envelope
    keyring: Keyring
    keys: KeyManager[SqlStorage]
    clients: ClientRegistry
    access_tokens: AccessTokens
    signing_pool: ThreadPoolExecutor | None
    users: Users
    refresh_tokens: RefreshTokens
    revocations: Revocations
    validator: AccessTokenValidator
    limiter: RateLimiter
    metrics: Metrics
    bus: Bus
    ops: Operations
    refusals: RefusalLog
    grants: GrantContext
    token_context: TokenContext
    authorize: AuthorizeContext
    redis: Redis | None = None

    _scopes: tuple[float, list[str]] = (float("-inf"), [])

    async def close(self) -> None:
        if self.signing_pool is not None:
            self.signing_pool.shutdown(wait=False)
        self.users.passwords.close()
        if self.redis is not None:
            await self.redis.aclose()
        await self.store.db.close()

    async def on_notification(self, topic: str) -> None:
        """Another instance changed something: pick it up now rather than at the next poll."""
        if topic in ("keys", "*"):
            await self.keyring.refresh()
        if topic.startswith("client:"):
            self.clients.invalidate(topic.removeprefix("client:"))
        elif topic.startswith("user:"):
            self.users.states.invalidate(topic.removeprefix("user:"))
        elif topic == "*":
            self.clients.invalidate()
            self.users.states.invalidate()

    async def scopes_supported(self) -> list[str]:
        """Every scope some client may request, recomputed at most once a minute."""
        at, scopes = self._scopes
        if self.clock() - at > 60:
            try:
                scopes = await self.store.all_scopes()
            except ServiceUnavailable:
                # Discovery stays up through a database outage (verifiers need jwks_uri, not
                # scopes): serve the last list known (empty only if none was ever read).
                return scopes
            self._scopes = (self.clock(), scopes)
        return scopes

    async def readiness(self) -> dict[str, str]:
        """Each dependency's state. Only the database gates readiness: Redis is an accelerator
        (limits fall back per process, revocations live in the database), so an unreachable Redis
        is reported as "degraded" and must not take every instance out of service at once."""
        checks = {}
        try:
            await self.store.db.ping()
            checks["database"] = "ok"
        except Exception:  # noqa: BLE001 - any failure means not ready
            checks["database"] = "unreachable"
        if self.redis is not None:
            try:
                await self.redis.ping()
                checks["redis"] = "ok"
            except redis_errors():
                checks["redis"] = "degraded"
        return checks


async def open_services(
    settings: Settings, *, clock: Clock = time.time, run_migrations: bool | None = None
) -> Services:
    check_production(settings)
    envelope = resolve_keks(settings)
    db = await connect_database(settings)
    try:
        if run_migrations if run_migrations is not None else settings.is_sqlite:
            await migrate(db)
        else:
            missing = await pending_migrations(db)
            if missing:
                raise ConfigurationError(f"the database needs migrations {missing}: run `issuer migrate`")
        store = SqlStorage(db)
        try:
            pepper = await load_or_create(store, envelope, "client-secret-pepper", clock())
        except EnvelopeError as exc:
            raise ConfigurationError(
                f"cannot decrypt stored secrets ({exc}); is the right ISSUER_KEY_ENCRYPTION_KEYS set?"
            ) from None
        metrics = Metrics(client_labels=settings.metrics_client_labels)
        redis = connect_redis(settings.redis_url) if settings.redis_url else None
        limiter: RateLimiter
        revocation_cache: RevocationCache
        if redis is not None:
            limiter = RedisRateLimiter(redis, settings.redis_prefix, clock)
            revocation_cache = RedisRevocationCache(redis, settings.redis_prefix, store, clock)
        else:
            limiter = LocalRateLimiter(clock)
            revocation_cache = LocalRevocationCache(store, clock)
        revocations = Revocations(store, revocation_cache, clock, overlap=settings.clock_skew + 5.0)
        passwords = Passwords(
            settings.argon2_time_cost,
            settings.argon2_memory_kib,
            settings.argon2_parallelism,
            settings.hash_threads,
            queue=settings.password_hash_queue,
            bcrypt_max_cost=settings.bcrypt_max_cost,
        )

        async def reuse_detected(family: RefreshFamily, generation: int) -> None:
            await revoke_for_reuse(store, clock, family, generation)
            metrics.refresh_reuse.inc()

        refresh_tokens = RefreshTokens(
            store,
            envelope,
            RefreshPolicy(
                settings.refresh_token_idle_ttl, settings.refresh_token_absolute_ttl, settings.refresh_reuse_grace
            ),
            clock,
            on_reuse=reuse_detected,
        )
        policy = key_policy(settings)
        threads = settings.sign_threads
        signing_pool = ThreadPoolExecutor(threads, thread_name_prefix="sign") if threads else None
        keyring = Keyring(store, envelope, policy, clock, signing_pool)
        bus = Bus(redis, settings.redis_prefix)

        async def keys_changed() -> None:
            await keyring.refresh()
            await bus.publish("keys")

        async def client_changed(client_id: str) -> None:
            await bus.publish("client:" + client_id)

        async def user_changed(user_id: str) -> None:
            await bus.publish("user:" + user_id)

        manager = KeyManager(store, envelope, policy, settings.signing_alg, clock, on_change=keys_changed)
        clients = ClientRegistry(store, pepper, clock, on_change=client_changed)
        access_tokens = AccessTokens(keyring, settings.url, settings.access_token_ttl, clock)
        validator = AccessTokenValidator(keyring, settings.url, revocations, clock)
        roles = RoleHierarchy(settings.roles, settings.admin_role)
        users = Users(store, passwords, roles, clock, user_changed)
        claims = UserClaims(roles, settings.id_token_roles)
        id_tokens = IdTokens(keyring, settings.url, settings.id_token_ttl, claims, clock)
        sessions = BrowserSessions(
            store,
            users.states,
            SessionPolicy(
                settings.session_idle_ttl, settings.session_absolute_ttl, settings.session_logout_revokes_refresh
            ),
            clock,
        )
        codes = AuthorizationCodes(store, refresh_tokens, revocations, clock)
        consents = Consents(store)
        return Services(
            settings=settings,
            clock=clock,
            store=store,
            envelope=envelope,
            keyring=keyring,
            keys=manager,
            clients=clients,
            access_tokens=access_tokens,
            signing_pool=signing_pool,
            users=users,
            refresh_tokens=refresh_tokens,
            revocations=revocations,
            validator=validator,
            limiter=limiter,
            metrics=metrics,
            bus=bus,
            ops=Operations(
                clients=ClientOps(store, clients, clock),
                users=UserOps(store, users, clock),
                keys=KeyOps(manager, envelope, metrics),
                audit=AuditLog(store),
                sessions=SessionOps(store, sessions, clock),
                consents=ConsentOps(store, clock),
            ),
            refusals=RefusalLog(store, clock),
            grants=GrantContext(
                issuer=settings.url,
                access_tokens=access_tokens,
                refresh_tokens=refresh_tokens,
                users=users,
                limiter=limiter,
                metrics=metrics,
                id_tokens=id_tokens,
                codes=codes,
                sessions=sessions,
                consents=consents,
                login_limit_per_user=settings.rate_limit_login_per_user,
                login_limit_per_ip=settings.rate_limit_login_per_ip,
            ),
            token_context=TokenContext(
                issuer=settings.url,
                validator=validator,
                revocations=revocations,
                refresh_tokens=refresh_tokens,
                clients=clients,
                user_states=users.states,
                clock=clock,
            ),
            authorize=AuthorizeContext(
                issuer=settings.url,
                settings=settings,
                sessions=sessions,
                consents=consents,
                codes=codes,
                clients=clients,
                users=users,
                id_tokens=id_tokens,
                keyring=keyring,
            ),
            redis=redis,
        )
    except BaseException:
        await db.close()
        raise
