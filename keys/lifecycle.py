"""The signing-key schedule as a pure state machine: pending → active → retired → removed, plus revoked.

A pending key is published but never signs. It may become active only after it has been
published for the JWKS ``max-age`` + clock skew + one keyring refresh, so every well-behaved
cache has it first. A retired key stays published until the longest-lived token it signed
has expired. Nothing here does I/O: plans are ``Transition`` values a ``KeyStore`` applies
atomically (compare-and-swap on each key's state).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class KeyState(StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    RETIRED = "retired"
    REVOKED = "revoked"


@dataclass(frozen=True)
class SigningKey:
    kid: str
    alg: str
    state: KeyState
    public_jwk: dict[str, str]
    private_ciphertext: bytes = field(repr=False)
    created_at: float
    activated_at: float | None = None
    retired_at: float | None = None
    revoked_at: float | None = None
    remove_after: float | None = None

    @property
    def published(self) -> bool:
        return self.state is not KeyState.REVOKED


@dataclass(frozen=True)
class StateChange:
    kid: str
    from_state: KeyState
    to_state: KeyState
    at: float
    remove_after: float | None = None


@dataclass(frozen=True)
class Transition:
    changes: tuple[StateChange, ...] = ()
    inserts: tuple[SigningKey, ...] = ()
    deletes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Policy:
    jwks_max_age: int
    clock_skew: int
    refresh_interval: float
    token_ttl: int
    rotation_interval: int = 0

    @property
    def min_publish(self) -> float:
        """How long a pending key must be published before it may sign."""
        return self.jwks_max_age + self.clock_skew + self.refresh_interval


class NotYetSafe(Exception):
    def __init__(self, safe_at: float) -> None:
        super().__init__(f"the pending key may activate at {safe_at:.0f}")
        self.safe_at = safe_at


class NoSuchKey(Exception):
    pass


def by_state(keys: list[SigningKey], state: KeyState) -> list[SigningKey]:
    return [k for k in keys if k.state is state]


def active_key(keys: list[SigningKey]) -> SigningKey | None:
    return next(iter(by_state(keys, KeyState.ACTIVE)), None)


def pending_key(keys: list[SigningKey]) -> SigningKey | None:
    return next(iter(by_state(keys, KeyState.PENDING)), None)


def safe_activation_at(pending: SigningKey, policy: Policy) -> float:
    return pending.created_at + policy.min_publish


def next_scheduled_rotation(keys: list[SigningKey], policy: Policy) -> float | None:
    active = active_key(keys)
    if not policy.rotation_interval or active is None:
        return None
    due = (active.activated_at or active.created_at) + policy.rotation_interval
    pending = pending_key(keys)
    return max(due, safe_activation_at(pending, policy)) if pending else due


def _retire(key: SigningKey, now: float, policy: Policy) -> StateChange:
    return StateChange(
        key.kid, KeyState.ACTIVE, KeyState.RETIRED, now, remove_after=now + policy.token_ttl + policy.clock_skew
    )


def plan_initial(keys: list[SigningKey], fresh: list[SigningKey]) -> Transition:
    """First start: an active key and a pending next key. ``fresh`` are new pending keys to use."""
    inserts: list[SigningKey] = []
    supply = iter(fresh)
    if active_key(keys) is None:
        first = next(supply)
        inserts.append(_as_active(first, first.created_at))
    if pending_key(keys) is None:
        inserts.append(next(supply))
    return Transition(inserts=tuple(inserts))


def _as_active(key: SigningKey, now: float) -> SigningKey:
    return SigningKey(
        kid=key.kid,
        alg=key.alg,
        state=KeyState.ACTIVE,
        public_jwk=key.public_jwk,
        private_ciphertext=key.private_ciphertext,
        created_at=key.created_at,
        activated_at=now,
    )


def plan_rotation(
    keys: list[SigningKey], new_pending: SigningKey, now: float, policy: Policy, *, force: bool = False
) -> Transition:
    """Pending becomes active, active becomes retired, ``new_pending`` is published."""
    pending = pending_key(keys)
    active = active_key(keys)
    changes: list[StateChange] = []
    if pending is None:
        # Only an interrupted revocation leaves no pending key; the new key must then sign at once.
        if not force:
            raise NotYetSafe(now + policy.min_publish)
        if active is not None:
            changes.append(_retire(active, now, policy))
        return Transition(changes=tuple(changes), inserts=(_as_active(new_pending, now),))
    if not force and now < safe_activation_at(pending, policy):
        raise NotYetSafe(safe_activation_at(pending, policy))
    if active is not None:
        changes.append(_retire(active, now, policy))
    changes.append(StateChange(pending.kid, KeyState.PENDING, KeyState.ACTIVE, now))
    return Transition(changes=tuple(changes), inserts=(new_pending,))


def plan_revocation(
    keys: list[SigningKey], kid: str, new_pending: SigningKey, now: float, policy: Policy
) -> Transition:
    """Unpublish ``kid`` at once. Revoking the active key promotes the pending key (already in
    most caches) to sign immediately; revoking the pending key replaces it."""
    target = next((k for k in keys if k.kid == kid), None)
    if target is None or target.state is KeyState.REVOKED:
        raise NoSuchKey(kid)
    revoke = StateChange(kid, target.state, KeyState.REVOKED, now)
    if target.state is KeyState.RETIRED:
        return Transition(changes=(revoke,))
    if target.state is KeyState.PENDING:
        return Transition(changes=(revoke,), inserts=(new_pending,))
    pending = pending_key(keys)
    if pending is None:
        return Transition(changes=(revoke,), inserts=(_as_active(new_pending, now),))
    promote = StateChange(pending.kid, KeyState.PENDING, KeyState.ACTIVE, now)
    return Transition(changes=(revoke, promote), inserts=(new_pending,))


def plan_cleanup(keys: list[SigningKey], now: float) -> Transition:
    """Retired keys whose last token has expired are removed."""
    expired = tuple(
        k.kid for k in by_state(keys, KeyState.RETIRED) if k.remove_after is not None and k.remove_after <= now
    )
    return Transition(deletes=expired)


def jwks_max_age(keys: list[SigningKey], now: float, policy: Policy) -> int:
    """The JWKS may be cached no longer than ``jwks_max_age`` nor past the next scheduled rotation."""
    max_age = policy.jwks_max_age
    rotation = next_scheduled_rotation(keys, policy)
    if rotation is not None:
        max_age = min(max_age, max(0, int(rotation - now)))
    return max_age
