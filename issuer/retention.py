"""Retention: delete the rows nothing can need any more, in bounded batches, on one instance at a
time (the holder of a PostgreSQL advisory lock; on SQLite, of a lock file beside the database).

- A revoked ``jti`` is kept until its token has expired and no verifier's clock skew could still
  accept it.
- A refresh-token family is kept, with every token of it, until it ends (its absolute lifetime
  passes, or it is revoked and the retry grace is over): reuse detection must recognise a consumed
  token for as long as its family lives. A sealed successor is dropped once the grace is over.
- Audit entries are kept ``ISSUER_AUDIT_RETENTION_DAYS`` (0: forever).
- Browser sessions are kept until their absolute expiry; authorization codes a day past theirs (a
  replay of a code is recognised, and what its exchange issued revoked, while the row lives).

Every delete is found through an index (migration 0004) and limited to ``batch`` rows per
statement, at most ``max_batches`` statements per kind and sweep, so one sweep never holds the
database long; a backlog is worked off over the next sweeps.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from issuer.storage.base import AuditStore, CodeStore, RefreshStore, RevocationStore, SessionStore
from issuer.storage.database import Database
from issuer.tokens.validate import LEEWAY

log = logging.getLogger("issuer.retention")

LOCK = "issuer-retention"
DAY = 86400.0


@dataclass(frozen=True)
class RetentionPolicy:
    audit_days: int
    refresh_grace: int
    clock_skew: int
    batch: int = 1000
    max_batches: int = 50


@dataclass
class SweepReport:
    deleted: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.deleted.values())


class Retention:
    def __init__(
        self,
        db: Database,
        revocations: RevocationStore,
        refresh: RefreshStore,
        audit: AuditStore,
        policy: RetentionPolicy,
        clock: Callable[[], float],
        on_deleted: Callable[[str, int], None] | None = None,
        sessions: SessionStore | None = None,
        codes: CodeStore | None = None,
    ) -> None:
        self._sessions = sessions
        self._codes = codes
        self._db = db
        self._revocations = revocations
        self._refresh = refresh
        self._audit = audit
        self._policy = policy
        self._clock = clock
        self._on_deleted = on_deleted

    async def sweep(self) -> SweepReport | None:
        """One sweep if this instance takes the lock; None if another instance holds it."""
        async with self._db.advisory_lock(LOCK) as holder:
            if not holder:
                return None
            report = await self._sweep()
        if report.total:
            log.info("retention sweep", extra={"deleted": report.deleted})
        return report

    async def _sweep(self) -> SweepReport:
        p, now = self._policy, self._clock()
        steps: list[tuple[str, Callable[[float, int], Awaitable[int]], float]] = [
            # A verifier may accept a token up to its skew (ours: LEEWAY) past exp.
            ("revoked_tokens", self._revocations.purge_revoked, now - p.clock_skew - LEEWAY),
            ("sealed_successors", self._refresh.forget_successors, now - p.refresh_grace),
            ("expired_families", self._refresh.purge_expired, now),
            ("revoked_families", self._refresh.purge_revoked_families, now - p.refresh_grace),
        ]
        if self._sessions is not None:
            steps.append(("browser_sessions", self._sessions.purge_sessions, now))
        if self._codes is not None:
            steps.append(("authorization_codes", self._codes.purge_codes, now - DAY))
        if p.audit_days:
            steps.append(("audit_entries", self._audit.purge_audit, now - p.audit_days * DAY))
        report = SweepReport()
        for kind, step, before in steps:
            done = 0
            for _ in range(p.max_batches):
                changed = await step(before, p.batch)
                done += changed
                if changed < p.batch:
                    break
            report.deleted[kind] = done
            if done and self._on_deleted is not None:
                self._on_deleted(kind, done)
        return report
