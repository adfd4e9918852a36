"""Scheduled rotation: with ISSUER_KEY_ROTATION_INTERVAL set, exactly one instance (the holder
of a PostgreSQL advisory lock) rotates when the active key is due, and removes retired keys
once the longest-lived token they signed has expired."""

from __future__ import annotations

import logging

from issuer.services import Services
from keys.lifecycle import NotYetSafe, next_scheduled_rotation, plan_cleanup

log = logging.getLogger("issuer.keys")

LOCK = "issuer-key-schedule"


async def run_schedule_once(services: Services) -> str | None:
    """One tick; returns what was done ("rotated", "cleaned") or None."""
    async with services.store.db.advisory_lock(LOCK) as holder:
        if not holder:
            return None
        keys = await services.store.list_keys()
        done = None
        due = next_scheduled_rotation(keys, services.keys.policy)
        if due is not None and due <= services.clock():
            try:
                await services.keys.rotate()
                services.metrics.key_rotations.labels("scheduled").inc()
                log.info("signing key rotated on schedule")
                done = "rotated"
            except NotYetSafe:
                pass
        if plan_cleanup(keys, services.clock()).deletes:
            removed = await services.keys.cleanup()
            if removed:
                log.info("removed retired signing keys", extra={"kids": removed})
                done = done or "cleaned"
        return done
