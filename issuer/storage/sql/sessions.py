"""Browser sign-in sessions (issuer.storage.base.SessionStore)."""

from __future__ import annotations

from issuer.models import BrowserSession
from issuer.storage.database import Row
from issuer.storage.sql._rows import SqlStore, batched, revoke_families

# Retention (issuer.retention): one bounded batch, found through browser_sessions_expiry.
PURGE_SESSIONS = batched("DELETE FROM browser_sessions", "browser_sessions", "session_id", "expires_at < $1")


def _session(row: Row) -> BrowserSession:
    return BrowserSession(
        session_id=row["session_id"],
        user_id=row["user_id"],
        auth_time=row["auth_time"],
        created_at=row["created_at"],
        last_seen_at=row["last_seen_at"],
        expires_at=row["expires_at"],
        ended_at=row["ended_at"],
        remote_addr=row["remote_addr"],
        user_agent=row["user_agent"],
    )


class SessionSql(SqlStore):
    """issuer.storage.base.SessionStore."""

    async def create_session(self, session: BrowserSession, cookie_hash: bytes) -> None:
        await self.db.execute(
            "INSERT INTO browser_sessions (session_id, cookie_hash, user_id, auth_time, created_at, last_seen_at,"
            " expires_at, remote_addr, user_agent) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            session.session_id,
            cookie_hash,
            session.user_id,
            session.auth_time,
            session.created_at,
            session.last_seen_at,
            session.expires_at,
            session.remote_addr,
            session.user_agent,
        )

    async def find_session(self, cookie_hash: bytes) -> BrowserSession | None:
        row = await self.db.fetchrow("SELECT * FROM browser_sessions WHERE cookie_hash = $1", cookie_hash)
        return _session(row) if row else None

    async def get_session(self, session_id: str) -> BrowserSession | None:
        row = await self.db.fetchrow("SELECT * FROM browser_sessions WHERE session_id = $1", session_id)
        return _session(row) if row else None

    async def touch_session(self, session_id: str, now: float) -> None:
        await self.db.execute(
            "UPDATE browser_sessions SET last_seen_at = $2 WHERE session_id = $1 AND ended_at IS NULL",
            session_id,
            now,
        )

    async def reauthenticate_session(self, session_id: str, auth_time: float, cookie_hash: bytes) -> bool:
        changed = await self.db.execute(
            "UPDATE browser_sessions SET auth_time = $2, last_seen_at = $2, cookie_hash = $3"
            " WHERE session_id = $1 AND ended_at IS NULL",
            session_id,
            auth_time,
            cookie_hash,
        )
        return changed == 1

    async def end_session(self, session_id: str, now: float, reason: str) -> bool:
        changed = await self.db.execute(
            "UPDATE browser_sessions SET ended_at = $2, ended_reason = $3 WHERE session_id = $1 AND ended_at IS NULL",
            session_id,
            now,
            reason,
        )
        return changed == 1

    async def end_user_sessions(self, user_id: str, now: float, reason: str) -> list[str]:
        rows = await self.db.fetch(
            "UPDATE browser_sessions SET ended_at = $2, ended_reason = $3 WHERE user_id = $1 AND ended_at IS NULL"
            " RETURNING session_id",
            user_id,
            now,
            reason,
        )
        return sorted(r["session_id"] for r in rows)

    async def list_user_sessions(self, user_id: str, now: float) -> list[BrowserSession]:
        rows = await self.db.fetch(
            "SELECT * FROM browser_sessions WHERE user_id = $1 AND ended_at IS NULL AND expires_at > $2"
            " ORDER BY created_at DESC, session_id",
            user_id,
            now,
        )
        return [_session(r) for r in rows]

    async def revoke_session_families(self, session_id: str, now: float, reason: str) -> int:
        return await revoke_families(self.db, "session_id = $1", (session_id,), now, reason)

    async def purge_sessions(self, before: float, limit: int = 1000) -> int:
        return await self.db.execute(PURGE_SESSIONS[self.db.dialect], before, limit)
