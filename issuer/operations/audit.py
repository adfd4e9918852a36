"""Writing and reading the audit log. ``record`` is called inside an operation's transaction."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from issuer.models import AuditEntry, RefreshFamily
from issuer.operations.actor import Actor
from issuer.storage.base import AuditStore

Clock = Callable[[], float]

if TYPE_CHECKING:
    from issuer.storage import SqlStorage as SqlStorageLike


async def record(store: AuditStore, clock: Clock, actor: Actor, action: str, target: str, **detail: object) -> None:
    await store.append_audit(clock(), str(actor), action, target, detail, actor.remote_addr)


@dataclass(frozen=True)
class AuditLog:
    """Reading the log (writes happen only inside operations, through ``record``)."""

    store: AuditStore

    async def recent(self, *, limit: int, before: int = 0) -> list[AuditEntry]:
        """Newest first; ``before`` an entry id to page back from."""
        return await self.store.list_audit(limit=limit, before=before)


async def revoke_for_reuse(store: SqlStorageLike, clock: Clock, family: RefreshFamily, generation: int) -> None:
    """RFC 9700 §4.14: a consumed refresh token came back. Revoke its family and say so in the
    audit log, in one transaction; the actor is the client that presented it."""
    async with store.transaction() as tx:
        await tx.revoke_family(family.family_id, clock(), "refresh token reuse")
        await record(
            tx,
            clock,
            Actor.client(family.client_id),
            "refresh.reuse_detected",
            family.family_id,
            user_id=family.user_id,
            generation=generation,
        )


def audit_view(entry: AuditEntry) -> dict[str, object]:
    return {
        "id": entry.id,
        "at": int(entry.at),
        "actor": entry.actor,
        "action": entry.action,
        "target": entry.target,
        "detail": entry.detail,
        "remote_addr": entry.remote_addr,
    }


class RefusalLog:
    """Audits refused admin calls by tokens that verified (a signature of ours, so not garbage
    anyone can send), at most once per (principal, reason) per ``window`` seconds in this process:
    a misconfigured job retrying in a loop leaves one row a minute, not one per request."""

    def __init__(self, store: AuditStore, clock: Clock, window: float = 60.0, limit: int = 10_000) -> None:
        self._store = store
        self._clock = clock
        self._window = window
        self._limit = limit
        self._last: dict[tuple[str, str], float] = {}

    async def refused(self, actor: Actor, path: str, reason: str) -> None:
        now = self._clock()
        key = (str(actor), reason)
        last = self._last.get(key)
        if last is not None and now - last < self._window:
            return
        if len(self._last) >= self._limit:
            self._last = {k: t for k, t in self._last.items() if now - t < self._window}
            if len(self._last) >= self._limit:
                return
        self._last[key] = now
        await record(self._store, self._clock, actor, "admin.refused", path, reason=reason)
