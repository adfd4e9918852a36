"""Signing-key changes: rotate, revoke, re-wrap under the first key-encryption key, and the
scheduled tick. With ISSUER_KEY_ROTATION_INTERVAL set, exactly one instance (the holder of a
PostgreSQL advisory lock) rotates when the active key is due, and removes retired keys once
the longest-lived token they signed has expired."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from issuer.observability.metrics import Metrics
from issuer.operations.actor import SCHEDULER, Actor
from issuer.operations.audit import record
from issuer.storage import SqlStorage
from keys.envelope import Envelope
from keys.info import describe_keys
from keys.lifecycle import KeyState, NotYetSafe, Transition, next_scheduled_rotation, plan_cleanup
from keys.manager import KeyManager, Record
from keys.secrets import rewrap_all

log = logging.getLogger("issuer.keys")

LOCK = "issuer-key-schedule"


def _activated(transition: Transition) -> str:
    return ",".join(c.kid for c in transition.changes if c.to_state is KeyState.ACTIVE)


@dataclass(frozen=True)
class KeyOps:
    manager: KeyManager[SqlStorage]
    envelope: Envelope
    metrics: Metrics

    @property
    def store(self) -> SqlStorage:
        return self.manager.store

    def _audit(
        self, actor: Actor, action: str, target: str | Callable[[Transition], str] = _activated, **detail: object
    ) -> Record[SqlStorage]:
        async def write(tx: SqlStorage, transition: Transition) -> None:
            name = target(transition) if callable(target) else target
            await record(tx, self.manager.clock, actor, action, name, **detail)

        return write

    async def schedule(self) -> list[dict[str, Any]]:
        return describe_keys(await self.store.list_keys(), self.manager.policy, self.manager.clock())

    async def ensure_initial(self, actor: Actor) -> None:
        """First start (or after every key was revoked): an active and a pending key, audited
        as ``keys.initial`` only when something was created."""
        await self.manager.ensure_initial(
            record=self._audit(actor, "keys.initial", lambda t: ",".join(k.kid for k in t.inserts))
        )

    async def rotate(self, actor: Actor, *, force: bool = False) -> Transition:
        """Raises NotYetSafe (unless forced), ScheduleBusy."""
        transition = await self.manager.rotate(force=force, record=self._audit(actor, "keys.rotate", force=force))
        self.metrics.key_rotations.labels("forced" if force else "manual").inc()
        return transition

    async def revoke(self, actor: Actor, kid: str) -> Transition:
        """Raises NoSuchKey, ScheduleBusy."""
        transition = await self.manager.revoke(kid, record=self._audit(actor, "keys.revoke", kid))
        self.metrics.key_rotations.labels("revoked").inc()
        return transition

    async def rewrap(self, actor: Actor) -> tuple[int, int]:
        """Re-encrypt signing keys and server secrets under the first key-encryption key, in one
        transaction; returns how many of each changed."""
        async with self.store.transaction() as tx:
            keys = await self.manager.rewrap(tx)
            secrets = await rewrap_all(tx, self.envelope)
            await record(tx, self.manager.clock, actor, "keys.rewrap", "", keys=keys, secrets=secrets)
        return keys, secrets

    async def run_schedule_once(self) -> str | None:
        """One scheduler tick; returns what was done ("rotated", "cleaned") or None."""
        clock = self.manager.clock
        async with self.store.db.advisory_lock(LOCK) as holder:
            if not holder:
                return None
            keys = await self.store.list_keys()
            done = None
            due = next_scheduled_rotation(keys, self.manager.policy)
            if due is not None and due <= clock():
                try:
                    await self.manager.rotate(record=self._audit(SCHEDULER, "keys.rotate", scheduled=True))
                    self.metrics.key_rotations.labels("scheduled").inc()
                    log.info("signing key rotated on schedule")
                    done = "rotated"
                except NotYetSafe:
                    pass
            if plan_cleanup(keys, clock()).deletes:
                removed = await self.manager.cleanup(
                    record=self._audit(SCHEDULER, "keys.cleanup", lambda t: ",".join(t.deletes))
                )
                if removed:
                    log.info("removed retired signing keys", extra={"kids": removed})
                    done = done or "cleaned"
            return done
