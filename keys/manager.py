"""Operations on the key schedule: first start, rotation, revocation, cleanup, re-wrapping.

Each operation reads the keys, plans a ``Transition`` with the pure lifecycle, and asks the
store to apply it atomically; a lost race is retried against the fresh state.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from keys.envelope import Envelope
from keys.generate import generate_key
from keys.keyring import private_key_aad
from keys.lifecycle import (
    KeyState,
    NotYetSafe,
    Policy,
    SigningKey,
    Transition,
    plan_cleanup,
    plan_initial,
    plan_revocation,
    plan_rotation,
)
from keys.store import KeyStore

__all__ = ["KeyManager", "NotYetSafe", "Record", "ScheduleBusy"]

_ATTEMPTS = 5

S = TypeVar("S", bound=KeyStore)
Record = Callable[[S, Transition], Awaitable[None]]
"""Called with the transaction-bound store right after a transition is applied, before commit:
what it writes (an audit entry) lands with the transition or not at all."""


class ScheduleBusy(Exception):
    """Concurrent changes (other instances rotating too) won every compare-and-swap we tried;
    nothing was changed by us, and retrying in a moment will see the new schedule."""


class KeyManager(Generic[S]):
    def __init__(
        self,
        store: S,
        envelope: Envelope,
        policy: Policy,
        alg: str,
        clock: Callable[[], float],
        on_change: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.store = store
        self.envelope = envelope
        self.policy = policy
        self.alg = alg
        self.clock = clock
        self._on_change = on_change
        # One change at a time per instance: concurrent requests here would only race each other
        # (each plan is made from the same keys, one wins, the others retry). Across instances the
        # compare-and-swap in apply_transition decides.
        self._changing = asyncio.Lock()

    async def new_pending(self) -> SigningKey:
        kid, public, der = await asyncio.to_thread(generate_key, self.alg)
        return SigningKey(
            kid=kid,
            alg=self.alg,
            state=KeyState.PENDING,
            public_jwk=public,
            private_ciphertext=self.envelope.encrypt(der, private_key_aad(kid)),
            created_at=self.clock(),
        )

    async def _commit(self, transition: Transition, record: Record[S] | None) -> bool:
        if record is None:
            return await self.store.apply_transition(transition)
        async with self.store.transaction() as tx:
            if not await tx.apply_transition(transition):
                return False
            await record(tx, transition)
        return True

    async def _apply(
        self, plan: Callable[[list[SigningKey], SigningKey], Transition], record: Record[S] | None = None
    ) -> Transition:
        fresh = await self.new_pending()  # generated outside any transaction: it takes a while
        async with self._changing:
            for _ in range(_ATTEMPTS):
                transition = plan(await self.store.list_keys(), fresh)
                if not (transition.changes or transition.inserts or transition.deletes):
                    return transition
                if await self._commit(transition, record):
                    if self._on_change is not None:
                        await self._on_change()
                    return transition
        raise ScheduleBusy("the key schedule kept changing under us; try again")

    async def ensure_initial(self, record: Record[S] | None = None) -> None:
        keys = await self.store.list_keys()
        if any(k.state is KeyState.ACTIVE for k in keys) and any(k.state is KeyState.PENDING for k in keys):
            return
        spare = await self.new_pending()
        await self._apply(lambda current, fresh: plan_initial(current, [fresh, spare]), record)

    async def rotate(self, *, force: bool = False, record: Record[S] | None = None) -> Transition:
        return await self._apply(
            lambda current, fresh: plan_rotation(current, fresh, self.clock(), self.policy, force=force), record
        )

    async def revoke(self, kid: str, record: Record[S] | None = None) -> Transition:
        return await self._apply(
            lambda current, fresh: plan_revocation(current, kid, fresh, self.clock(), self.policy), record
        )

    async def cleanup(self, record: Record[S] | None = None) -> list[str]:
        for _ in range(_ATTEMPTS):
            transition = plan_cleanup(await self.store.list_keys(), self.clock())
            if not transition.deletes:
                return []
            if await self._commit(transition, record):
                if self._on_change is not None:
                    await self._on_change()
                return list(transition.deletes)
        return []

    async def rewrap(self, store: S | None = None) -> int:
        """Re-encrypt every private key under the first key-encryption key; return how many changed.
        ``store``: a transaction-bound store to do it in (default: this manager's)."""
        store = self.store if store is None else store
        changed = 0
        for key in await store.list_keys():
            if self.envelope.is_current(key.private_ciphertext):
                continue
            new = self.envelope.rewrap(key.private_ciphertext, private_key_aad(key.kid))
            changed += await store.replace_ciphertext(key.kid, key.private_ciphertext, new)
        return changed
