"""KeyStore contract: atomic, compare-and-swap transitions; at most one active and one pending key."""

from __future__ import annotations

import asyncio
import secrets

from issuer.storage import SqlStorage
from keys.lifecycle import KeyState, SigningKey, StateChange, Transition

T0 = 1_700_000_000.0


def key(state: KeyState, created_at: float, *, activated_at: float | None = None) -> SigningKey:
    kid = secrets.token_urlsafe(16)
    return SigningKey(
        kid=kid,
        alg="RS256",
        state=state,
        public_jwk={
            "kty": "RSA",
            "kid": kid,
            "use": "sig",
            "alg": "RS256",
            "n": secrets.token_urlsafe(32),
            "e": "AQAB",
        },
        private_ciphertext=secrets.token_bytes(64),
        created_at=created_at,
        activated_at=activated_at,
    )


async def initial(storage: SqlStorage) -> tuple[SigningKey, SigningKey]:
    active = key(KeyState.ACTIVE, T0, activated_at=T0)
    pending = key(KeyState.PENDING, T0 + 1)
    assert await storage.apply_transition(Transition(inserts=(active, pending))) is True
    return active, pending


def states(keys: list[SigningKey]) -> dict[str, KeyState]:
    return {k.kid: k.state for k in keys}


def rotation(active: SigningKey, pending: SigningKey, new: SigningKey, now: float) -> Transition:
    return Transition(
        changes=(
            StateChange(active.kid, KeyState.ACTIVE, KeyState.RETIRED, now, remove_after=now + 960),
            StateChange(pending.kid, KeyState.PENDING, KeyState.ACTIVE, now),
        ),
        inserts=(new,),
    )


async def test_inserted_keys_round_trip_in_creation_order(storage: SqlStorage) -> None:
    assert await storage.list_keys() == []
    active, pending = await initial(storage)
    assert await storage.list_keys() == [active, pending]


async def test_rotation_applies_every_change(storage: SqlStorage) -> None:
    active, pending = await initial(storage)
    new = key(KeyState.PENDING, T0 + 500)
    assert await storage.apply_transition(rotation(active, pending, new, T0 + 500)) is True
    keys = {k.kid: k for k in await storage.list_keys()}
    assert keys[active.kid].state is KeyState.RETIRED
    assert keys[active.kid].retired_at == T0 + 500
    assert keys[active.kid].remove_after == T0 + 500 + 960
    assert keys[pending.kid].state is KeyState.ACTIVE
    assert keys[pending.kid].activated_at == T0 + 500
    assert keys[new.kid] == new


async def test_lost_race_returns_false_and_changes_nothing(storage: SqlStorage) -> None:
    active, pending = await initial(storage)
    first = rotation(active, pending, key(KeyState.PENDING, T0 + 500), T0 + 500)
    second = rotation(active, pending, key(KeyState.PENDING, T0 + 501), T0 + 501)
    assert await storage.apply_transition(first) is True
    after_first = await storage.list_keys()
    # planned from the same, now stale, state: its compare-and-swap fails
    assert await storage.apply_transition(second) is False
    assert await storage.list_keys() == after_first


async def test_a_later_failing_change_rolls_back_earlier_ones(storage: SqlStorage) -> None:
    active, pending = await initial(storage)
    before = await storage.list_keys()
    transition = Transition(
        changes=(
            StateChange(active.kid, KeyState.ACTIVE, KeyState.RETIRED, T0 + 10, remove_after=T0 + 970),
            # wrong expected state: the pending key is not retired
            StateChange(pending.kid, KeyState.RETIRED, KeyState.REVOKED, T0 + 10),
        ),
        inserts=(key(KeyState.PENDING, T0 + 10),),
    )
    assert await storage.apply_transition(transition) is False
    assert await storage.list_keys() == before


async def test_concurrent_rotations_exactly_one_wins(storage: SqlStorage) -> None:
    active, pending = await initial(storage)
    candidates = [rotation(active, pending, key(KeyState.PENDING, T0 + 600 + n), T0 + 600) for n in range(5)]
    results = await asyncio.gather(*(storage.apply_transition(t) for t in candidates))
    assert sorted(results) == [False, False, False, False, True]
    keys = await storage.list_keys()
    winner = candidates[results.index(True)].inserts[0]
    assert states(keys) == {
        active.kid: KeyState.RETIRED,
        pending.kid: KeyState.ACTIVE,
        winner.kid: KeyState.PENDING,
    }


async def test_second_active_key_is_refused(storage: SqlStorage) -> None:
    await initial(storage)
    before = await storage.list_keys()
    assert (
        await storage.apply_transition(Transition(inserts=(key(KeyState.ACTIVE, T0 + 5, activated_at=T0 + 5),)))
        is False
    )
    assert await storage.list_keys() == before


async def test_second_pending_key_is_refused(storage: SqlStorage) -> None:
    await initial(storage)
    before = await storage.list_keys()
    assert await storage.apply_transition(Transition(inserts=(key(KeyState.PENDING, T0 + 5),))) is False
    assert await storage.list_keys() == before


async def test_promoting_pending_while_an_active_key_remains_is_refused(storage: SqlStorage) -> None:
    _, pending = await initial(storage)
    before = await storage.list_keys()
    promote = Transition(changes=(StateChange(pending.kid, KeyState.PENDING, KeyState.ACTIVE, T0 + 5),))
    assert await storage.apply_transition(promote) is False
    assert await storage.list_keys() == before


async def test_two_inserts_of_the_same_state_in_one_transition_are_refused(storage: SqlStorage) -> None:
    transition = Transition(inserts=(key(KeyState.PENDING, T0), key(KeyState.PENDING, T0 + 1)))
    assert await storage.apply_transition(transition) is False
    assert await storage.list_keys() == []


async def test_revoke_and_cleanup(storage: SqlStorage) -> None:
    active, pending = await initial(storage)
    new = key(KeyState.PENDING, T0 + 500)
    assert await storage.apply_transition(rotation(active, pending, new, T0 + 500))
    # deleting a key that is not retired fails, and nothing else in that transition happens
    bad = Transition(
        changes=(StateChange(new.kid, KeyState.PENDING, KeyState.REVOKED, T0 + 600),),
        deletes=(pending.kid,),
    )
    assert await storage.apply_transition(bad) is False
    assert states(await storage.list_keys())[new.kid] is KeyState.PENDING
    # retired keys are deleted; a second delete of the same kid loses
    assert await storage.apply_transition(Transition(deletes=(active.kid,))) is True
    assert active.kid not in states(await storage.list_keys())
    assert await storage.apply_transition(Transition(deletes=(active.kid,))) is False
    # revoking the pending key frees the pending slot for a replacement
    replacement = key(KeyState.PENDING, T0 + 700)
    revoke = Transition(
        changes=(StateChange(new.kid, KeyState.PENDING, KeyState.REVOKED, T0 + 700),), inserts=(replacement,)
    )
    assert await storage.apply_transition(revoke) is True
    keys = {k.kid: k for k in await storage.list_keys()}
    assert keys[new.kid].state is KeyState.REVOKED
    assert keys[new.kid].revoked_at == T0 + 700
    assert keys[replacement.kid].state is KeyState.PENDING


async def test_empty_transition_succeeds_and_changes_nothing(storage: SqlStorage) -> None:
    await initial(storage)
    before = await storage.list_keys()
    assert await storage.apply_transition(Transition()) is True
    assert await storage.list_keys() == before


async def test_replace_ciphertext_is_compare_and_swap(storage: SqlStorage) -> None:
    active, _ = await initial(storage)
    assert await storage.replace_ciphertext(active.kid, b"stale", b"new") is False
    assert await storage.replace_ciphertext(active.kid, active.private_ciphertext, b"new") is True
    stored = {k.kid: k for k in await storage.list_keys()}[active.kid]
    assert stored.private_ciphertext == b"new"
    assert await storage.replace_ciphertext(active.kid, active.private_ciphertext, b"newer") is False
    assert await storage.replace_ciphertext("no-such-kid", b"new", b"x") is False
