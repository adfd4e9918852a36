"""Browser sign-in sessions as the user (account API) and an administrator (admin API, CLI) see and
end them. Ending one revokes the refresh-token families it started when
ISSUER_SESSION_LOGOUT_REVOKES_REFRESH is on (issuer.authorize.sessions), in the same transaction
as the audit entry."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from issuer.authorize.sessions import BrowserSessions
from issuer.models import BrowserSession
from issuer.operations.actor import Actor
from issuer.operations.audit import record
from issuer.storage import SqlStorage

__all__ = ["NoSuchSession", "SessionOps"]


class NoSuchSession(LookupError):
    """Unknown, already ended, or not the given user's."""


@dataclass(frozen=True)
class SessionOps:
    store: SqlStorage
    sessions: BrowserSessions
    clock: Callable[[], float]

    async def list_for_user(self, user_id: str) -> list[BrowserSession]:
        """The user's live sessions, newest first."""
        return await self.sessions.list_for_user(user_id)

    async def end(self, actor: Actor, user_id: str, session_id: str) -> None:
        """End one of ``user_id``'s live sessions. Raises NoSuchSession."""
        session = await self.sessions.get(session_id) if len(session_id) <= 64 else None
        if session is None or session.user_id != user_id or not self.sessions.is_live(session):
            raise NoSuchSession(session_id)
        reason = "ended by the user" if actor.kind == "user" and actor.id == user_id else "ended by an administrator"
        async with self.store.transaction() as tx:
            families = await self.sessions.end_in(tx, session_id, reason)
            if families is None:
                raise NoSuchSession(session_id)
            await record(tx, self.clock, actor, "sessions.end", user_id, session_id=session_id, families=families)

    async def sign_out(self, actor: Actor, session: BrowserSession, reason: str) -> bool:
        """End ``session`` from its browser: a logout (RP-initiated or on the page), or another
        user signing in on it. False if it had already ended (nothing recorded)."""
        async with self.store.transaction() as tx:
            families = await self.sessions.end_in(tx, session.session_id, reason)
            if families is None:
                return False
            detail = {"session_id": session.session_id, "reason": reason, "families": families}
            await record(tx, self.clock, actor, "sessions.sign_out", session.user_id, **detail)
        return True

    async def end_all(self, actor: Actor, user_id: str) -> list[str]:
        """End every session of the user; returns the ids ended."""
        async with self.store.transaction() as tx:
            ended, families = await self.sessions.end_all_in(tx, user_id, "ended by an administrator")
            await record(tx, self.clock, actor, "sessions.end_all", user_id, sessions=len(ended), families=families)
        return ended
