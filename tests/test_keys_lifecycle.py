"""keys.lifecycle as a pure state machine: plans are values, nothing does I/O."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest

from keys.lifecycle import (
    KeyState,
    NoSuchKey,
    NotYetSafe,
    Policy,
    SigningKey,
    StateChange,
    Transition,
    jwks_max_age,
    next_scheduled_rotation,
    plan_cleanup,
    plan_initial,
    plan_revocation,
    plan_rotation,
    safe_activation_at,
)

POLICY = Policy(jwks_max_age=300, clock_skew=60, refresh_interval=5.0, token_ttl=900)
MIN_PUBLISH = 300 + 60 + 5.0
T0 = 1_700_000_000.0
_kids = itertools.count(1)


def key(
    state: KeyState,
    created_at: float,
    *,
    activated_at: float | None = None,
    remove_after: float | None = None,
) -> SigningKey:
    kid = f"kid-{next(_kids)}"
    return SigningKey(
        kid=kid,
        alg="RS256",
        state=state,
        public_jwk={"kty": "RSA", "kid": kid},
        private_ciphertext=b"sealed-" + kid.encode(),
        created_at=created_at,
        activated_at=activated_at,
        remove_after=remove_after,
    )


def schedule() -> tuple[SigningKey, SigningKey]:
    active = key(KeyState.ACTIVE, T0, activated_at=T0)
    pending = key(KeyState.PENDING, T0)
    return active, pending


# -- plan_initial ---------------------------------------------------------------------------


def test_min_publish_is_max_age_plus_skew_plus_refresh() -> None:
    assert POLICY.min_publish == MIN_PUBLISH


def test_plan_initial_on_empty_store_inserts_active_and_pending() -> None:
    a, b = key(KeyState.PENDING, T0), key(KeyState.PENDING, T0 + 1)
    transition = plan_initial([], [a, b])
    assert transition.changes == () and transition.deletes == ()
    first, second = transition.inserts
    assert (first.kid, first.state, first.activated_at) == (a.kid, KeyState.ACTIVE, a.created_at)
    assert first.private_ciphertext == a.private_ciphertext and first.public_jwk == a.public_jwk
    assert second == b


def test_plan_initial_adds_only_the_missing_pending_key() -> None:
    active = key(KeyState.ACTIVE, T0, activated_at=T0)
    a, b = key(KeyState.PENDING, T0 + 1), key(KeyState.PENDING, T0 + 2)
    assert plan_initial([active], [a, b]) == Transition(inserts=(a,))


def test_plan_initial_adds_only_the_missing_active_key() -> None:
    pending = key(KeyState.PENDING, T0)
    a, b = key(KeyState.PENDING, T0 + 1), key(KeyState.PENDING, T0 + 2)
    [inserted] = plan_initial([pending], [a, b]).inserts
    assert inserted.kid == a.kid and inserted.state is KeyState.ACTIVE


def test_plan_initial_with_a_full_schedule_is_empty() -> None:
    assert plan_initial(list(schedule()), [key(KeyState.PENDING, T0), key(KeyState.PENDING, T0)]) == Transition()


# -- plan_rotation --------------------------------------------------------------------------


def test_rotation_before_the_pending_key_is_safely_published_is_refused() -> None:
    active, pending = schedule()
    new = key(KeyState.PENDING, T0 + 100)
    for now in (T0, T0 + 1, T0 + MIN_PUBLISH - 0.5):
        with pytest.raises(NotYetSafe) as caught:
            plan_rotation([active, pending], new, now, POLICY)
        assert caught.value.safe_at == T0 + MIN_PUBLISH == safe_activation_at(pending, POLICY)


def test_rotation_once_safe() -> None:
    active, pending = schedule()
    now = T0 + MIN_PUBLISH
    new = key(KeyState.PENDING, now)
    transition = plan_rotation([active, pending], new, now, POLICY)
    assert transition == Transition(
        changes=(
            StateChange(active.kid, KeyState.ACTIVE, KeyState.RETIRED, now, remove_after=now + 900 + 60),
            StateChange(pending.kid, KeyState.PENDING, KeyState.ACTIVE, now),
        ),
        inserts=(new,),
    )


def test_forced_rotation_ignores_the_publication_delay() -> None:
    active, pending = schedule()
    now = T0 + 1
    new = key(KeyState.PENDING, now)
    transition = plan_rotation([active, pending], new, now, POLICY, force=True)
    assert [(c.kid, c.from_state, c.to_state) for c in transition.changes] == [
        (active.kid, KeyState.ACTIVE, KeyState.RETIRED),
        (pending.kid, KeyState.PENDING, KeyState.ACTIVE),
    ]
    assert transition.inserts == (new,)


def test_rotation_without_pending_key_needs_force_and_then_activates_the_new_key() -> None:
    active = key(KeyState.ACTIVE, T0, activated_at=T0)
    now = T0 + 10_000
    new = key(KeyState.PENDING, now)
    with pytest.raises(NotYetSafe) as caught:
        plan_rotation([active], new, now, POLICY)
    assert caught.value.safe_at == now + MIN_PUBLISH
    transition = plan_rotation([active], new, now, POLICY, force=True)
    assert transition.changes == (
        StateChange(active.kid, KeyState.ACTIVE, KeyState.RETIRED, now, remove_after=now + 960),
    )
    [inserted] = transition.inserts
    assert (inserted.kid, inserted.state, inserted.activated_at) == (new.kid, KeyState.ACTIVE, now)


def test_rotation_with_only_a_pending_key_promotes_it() -> None:
    pending = key(KeyState.PENDING, T0)
    now = T0 + MIN_PUBLISH
    new = key(KeyState.PENDING, now)
    transition = plan_rotation([pending], new, now, POLICY)
    assert transition == Transition(
        changes=(StateChange(pending.kid, KeyState.PENDING, KeyState.ACTIVE, now),), inserts=(new,)
    )


# -- plan_revocation ------------------------------------------------------------------------


def test_revoking_the_active_key_promotes_the_pending_key() -> None:
    active, pending = schedule()
    now = T0 + 5
    new = key(KeyState.PENDING, now)
    transition = plan_revocation([active, pending], active.kid, new, now, POLICY)
    assert transition == Transition(
        changes=(
            StateChange(active.kid, KeyState.ACTIVE, KeyState.REVOKED, now),
            StateChange(pending.kid, KeyState.PENDING, KeyState.ACTIVE, now),
        ),
        inserts=(new,),
    )


def test_revoking_the_active_key_without_pending_activates_the_new_key() -> None:
    active = key(KeyState.ACTIVE, T0, activated_at=T0)
    new = key(KeyState.PENDING, T0 + 5)
    transition = plan_revocation([active], active.kid, new, T0 + 5, POLICY)
    assert transition.changes == (StateChange(active.kid, KeyState.ACTIVE, KeyState.REVOKED, T0 + 5),)
    [inserted] = transition.inserts
    assert (inserted.kid, inserted.state, inserted.activated_at) == (new.kid, KeyState.ACTIVE, T0 + 5)


def test_revoking_the_pending_key_replaces_it() -> None:
    active, pending = schedule()
    new = key(KeyState.PENDING, T0 + 5)
    transition = plan_revocation([active, pending], pending.kid, new, T0 + 5, POLICY)
    assert transition == Transition(
        changes=(StateChange(pending.kid, KeyState.PENDING, KeyState.REVOKED, T0 + 5),), inserts=(new,)
    )


def test_revoking_a_retired_key_only_unpublishes_it() -> None:
    active, pending = schedule()
    retired = key(KeyState.RETIRED, T0 - 5000, remove_after=T0 + 500)
    new = key(KeyState.PENDING, T0 + 5)
    transition = plan_revocation([retired, active, pending], retired.kid, new, T0 + 5, POLICY)
    assert transition == Transition(changes=(StateChange(retired.kid, KeyState.RETIRED, KeyState.REVOKED, T0 + 5),))


def test_revoking_an_unknown_or_revoked_key_raises() -> None:
    active, pending = schedule()
    revoked = key(KeyState.REVOKED, T0 - 100)
    new = key(KeyState.PENDING, T0 + 5)
    for kid in ("no-such-kid", revoked.kid):
        with pytest.raises(NoSuchKey):
            plan_revocation([revoked, active, pending], kid, new, T0 + 5, POLICY)


# -- plan_cleanup ---------------------------------------------------------------------------


def test_cleanup_removes_only_retired_keys_past_their_last_token() -> None:
    active, pending = schedule()
    done = key(KeyState.RETIRED, T0 - 9000, remove_after=T0 - 1)
    exactly = key(KeyState.RETIRED, T0 - 8000, remove_after=T0)
    still_needed = key(KeyState.RETIRED, T0 - 100, remove_after=T0 + 860)
    revoked = key(KeyState.REVOKED, T0 - 9000, remove_after=None)
    keys = [done, exactly, still_needed, revoked, active, pending]
    assert plan_cleanup(keys, T0) == Transition(deletes=(done.kid, exactly.kid))
    assert plan_cleanup(keys, T0 + 860) == Transition(deletes=(done.kid, exactly.kid, still_needed.kid))
    assert plan_cleanup([active, pending], T0 + 10**9) == Transition()


def test_a_retired_key_outlives_every_token_it_signed() -> None:
    active, pending = schedule()
    now = T0 + MIN_PUBLISH
    transition = plan_rotation([active, pending], key(KeyState.PENDING, now), now, POLICY)
    retire = transition.changes[0]
    last_token_expiry = now + POLICY.token_ttl
    assert retire.remove_after is not None and retire.remove_after >= last_token_expiry + POLICY.clock_skew
    retired = replace(active, state=KeyState.RETIRED, remove_after=retire.remove_after)
    assert plan_cleanup([retired], last_token_expiry) == Transition()
    assert plan_cleanup([retired], retire.remove_after) == Transition(deletes=(retired.kid,))


# -- JWKS max-age -------------------------------------------------------------------------


def test_max_age_without_scheduled_rotation_is_the_configured_maximum() -> None:
    assert jwks_max_age(list(schedule()), T0 + 50_000, POLICY) == 300
    assert next_scheduled_rotation(list(schedule()), POLICY) is None


def test_max_age_is_capped_by_the_next_scheduled_rotation() -> None:
    policy = Policy(jwks_max_age=300, clock_skew=60, refresh_interval=5.0, token_ttl=900, rotation_interval=3600)
    active, pending = schedule()
    keys = [active, pending]
    assert next_scheduled_rotation(keys, policy) == T0 + 3600
    assert jwks_max_age(keys, T0, policy) == 300
    assert jwks_max_age(keys, T0 + 3600 - 300, policy) == 300
    assert jwks_max_age(keys, T0 + 3600 - 120, policy) == 120
    assert jwks_max_age(keys, T0 + 3600, policy) == 0
    assert jwks_max_age(keys, T0 + 4000, policy) == 0


def test_scheduled_rotation_waits_for_a_recent_pending_key() -> None:
    policy = Policy(jwks_max_age=300, clock_skew=60, refresh_interval=5.0, token_ttl=900, rotation_interval=400)
    active = key(KeyState.ACTIVE, T0, activated_at=T0)
    pending = key(KeyState.PENDING, T0 + 200)
    assert next_scheduled_rotation([active, pending], policy) == T0 + 200 + MIN_PUBLISH
    assert jwks_max_age([active, pending], T0 + 400, policy) == int(T0 + 200 + MIN_PUBLISH - (T0 + 400))
    # without an active key nothing is scheduled
    assert next_scheduled_rotation([pending], policy) is None
