"""Operations on the key schedule: first start, rotation, revocation, cleanup, re-wrapping.

Each operation reads the keys, plans a ``Transition`` with the pure lifecycle, and asks the
store to apply it atomically; a lost race is retried against the fresh state.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

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

__all__ = ["KeyManager", "NotYetSafe", "ScheduleBusy"]

_ATTEMPTS = 5


class ScheduleBusy(Exception):
    """Concurrent changes (other instances rotating too) won every compare-and-swap we tried;
    nothing was changed by us, and retrying in a moment will see the new schedule."""


class KeyManager:
    def __init__(
        self,
        store: KeyStore,
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

    async def _apply(self, plan: Callable[[list[SigningKey], SigningKey], Transition]) -> Transition:
        fresh = await self.new_pending()
        async with self._changing:
            for _ in range(_ATTEMPTS):
                transition = plan(await self.store.list_keys(), fresh)
                if not (transition.changes or transition.inserts or transition.deletes):
                    return transition
                if await self.store.apply_transition(transition):
                    if self._on_change is not None:
                        await self._on_change()
                    return transition
        raise ScheduleBusy("the key schedule kept changing under us; try again")

    async def ensure_initial(self) -> None:
        keys = await self.store.list_keys()
        if any(k.state is KeyState.ACTIVE for k in keys) and any(k.state is KeyState.PENDING for k in keys):
            return
        spare = await self.new_pending()
        await self._apply(lambda current, fresh: plan_initial(current, [fresh, spare]))

    async def rotate(self, *, force: bool = False) -> Transition:
        return await self._apply(
            lambda current, fresh: plan_rotation(current, fresh, self.clock(), self.policy, force=force)
        )

    async def revoke(self, kid: str) -> Transition:
        return await self._apply(lambda current, fresh: plan_revocation(current, kid, fresh, self.clock(), self.policy))

    async def cleanup(self) -> list[str]:
        for _ in range(_ATTEMPTS):
            transition = plan_cleanup(await self.store.list_keys(), self.clock())
            if not transition.deletes:
                return []
            if await self.store.apply_transition(transition):
                if self._on_change is not None:
                    await self._on_change()
                return list(transition.deletes)
        return []

    async def rewrap(self) -> int:
        """Re-encrypt every private key under the first key-encryption key; return how many changed."""
        changed = 0
        for key in await self.store.list_keys():
            if self.envelope.is_current(key.private_ciphertext):
                continue
            new = self.envelope.rewrap(key.private_ciphertext, private_key_aad(key.kid))
            changed += await self.store.replace_ciphertext(key.kid, key.private_ciphertext, new)
        return changed
