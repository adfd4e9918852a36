"""Browser sign-in sessions: the cookie value is 256 random bits, stored only as its SHA-256 hash;
the database row is the truth (idle and absolute expiry, ended_at). ``session_id`` is public: it is
the ID token's ``sid`` and what the account and admin APIs name."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace

from issuer.accounts.users import UserStates
from issuer.ids import new_id
from issuer.models import BrowserSession
from issuer.storage import SqlStorage

__all__ = ["BrowserSession", "BrowserSessions", "SessionPolicy"]

# last_seen_at is written at most this often per session (idle expiry is measured in hours).
TOUCH_INTERVAL = 60.0
_MAX_COOKIE = 128


def hash_cookie(value: str) -> bytes:
    return hashlib.sha256(value.encode()).digest()


@dataclass(frozen=True)
class SessionPolicy:
    idle_ttl: int
    absolute_ttl: int
    logout_revokes_refresh: bool


class BrowserSessions:
    def __init__(
        self, store: SqlStorage, user_states: UserStates, policy: SessionPolicy, clock: Callable[[], float]
    ) -> None:
        self._store = store
        self._users = user_states
        self.policy = policy
        self._clock = clock

    async def start(self, user_id: str, remote_addr: str, user_agent: str) -> tuple[BrowserSession, str]:
        """A new session for a user who has just authenticated, and the cookie value that resumes it."""
        now = self._clock()
        cookie = secrets.token_urlsafe(32)
        session = BrowserSession(
            session_id=new_id(),
            user_id=user_id,
            auth_time=now,
            created_at=now,
            last_seen_at=now,
            expires_at=now + self.policy.absolute_ttl,
            remote_addr=remote_addr[:64],
            user_agent=user_agent[:256],
        )
        await self._store.create_session(session, hash_cookie(cookie))
        return session, cookie

    def is_live(self, session: BrowserSession) -> bool:
        now = self._clock()
        return (
            session.ended_at is None
            and now < session.expires_at
            and now < session.last_seen_at + self.policy.idle_ttl
        )

    async def resume(self, cookie_value: str) -> BrowserSession | None:
        """The live session the cookie names: None if unknown, ended, idle- or absolute-expired,
        or if its user is disabled or gone."""
        if not 0 < len(cookie_value) <= _MAX_COOKIE:
            return None
        session = await self._store.find_session(hash_cookie(cookie_value))
        if session is None or not self.is_live(session):
            return None
        state = await self._users.get(session.user_id)
        if state is None or state.disabled:
            return None
        now = self._clock()
        if now - session.last_seen_at >= TOUCH_INTERVAL:
            await self._store.touch_session(session.session_id, now)
            session = replace(session, last_seen_at=now)
        return session

    async def get(self, session_id: str) -> BrowserSession | None:
        return await self._store.get_session(session_id)

    async def reauthenticated(self, session: BrowserSession) -> tuple[BrowserSession, str]:
        """The user proved who she is again (prompt=login, max_age): a new auth_time, and a new
        cookie value (the old one resumes nothing), under the same session_id (the ID tokens' sid)."""
        now = self._clock()
        cookie = secrets.token_urlsafe(32)
        await self._store.reauthenticate_session(session.session_id, now, hash_cookie(cookie))
        return replace(session, auth_time=now, last_seen_at=now), cookie

    async def end_in(self, tx: SqlStorage, session_id: str, reason: str) -> int | None:
        """End the session within ``tx`` and revoke the refresh-token families it started, if
        ISSUER_SESSION_LOGOUT_REVOKES_REFRESH; returns how many were revoked, or None if the
        session was unknown or had already ended."""
        now = self._clock()
        if not await tx.end_session(session_id, now, reason):
            return None
        if self.policy.logout_revokes_refresh:
            return await tx.revoke_session_families(session_id, now, f"session ended: {reason}")
        return 0

    async def end_all_in(self, tx: SqlStorage, user_id: str, reason: str) -> tuple[list[str], int]:
        """End every live session of the user within ``tx``; the ids ended and the number of
        refresh-token families revoked with them (ISSUER_SESSION_LOGOUT_REVOKES_REFRESH)."""
        ended = await tx.end_user_sessions(user_id, self._clock(), reason)
        families = 0
        for session_id in ended:
            if self.policy.logout_revokes_refresh:
                families += await tx.revoke_session_families(session_id, self._clock(), f"session ended: {reason}")
        return ended, families

    async def list_for_user(self, user_id: str) -> list[BrowserSession]:
        """The user's live sessions, newest first."""
        return [s for s in await self._store.list_user_sessions(user_id, self._clock()) if self.is_live(s)]
