"""Narrow async storage interfaces. Every backend implements all of them and passes
tests/contract (one suite, run unchanged against SQLite and PostgreSQL)."""

from __future__ import annotations

from typing import Any, Protocol

from issuer.models import (
    AuditEntry,
    AuthorizationCode,
    BrowserSession,
    Client,
    ConsentGrant,
    RefreshFamily,
    RefreshToken,
    User,
)
from keys.store import KeyStore, SecretStore

__all__ = [
    "AuditStore",
    "ClientStore",
    "CodeStore",
    "Conflict",
    "ConsentStore",
    "KeyStore",
    "RefreshStore",
    "RevocationStore",
    "SecretStore",
    "SessionStore",
    "UserStore",
]


class Conflict(Exception):
    """A unique value is taken; ``field`` names which."""

    def __init__(self, field: str) -> None:
        super().__init__(f"{field} is taken")
        self.field = field


class ClientStore(Protocol):
    async def create_client(self, client: Client) -> None: ...
    async def get_client(self, client_id: str) -> Client | None: ...
    async def list_clients(self, *, limit: int, after: str = "") -> list[Client]: ...
    async def update_client(self, client: Client) -> bool: ...
    async def delete_client(self, client_id: str) -> bool: ...
    async def all_scopes(self) -> list[str]:
        """The sorted union of the scopes of enabled clients."""
        ...


class UserStore(Protocol):
    async def create_user(self, user: User) -> None:
        """Raises Conflict('username'), compared by ``issuer.accounts.names.username_key``. Emails are not
        unique (contact data, not an identifier: see the README's "Registration and passwords")."""
        ...

    async def get_user(self, user_id: str) -> User | None: ...
    async def find_user(self, username: str) -> User | None: ...
    async def list_users(self, *, limit: int, after: str = "") -> list[User]: ...
    async def update_user(self, user_id: str, **changes: Any) -> User | None:
        """Change any of password_hash, roles, disabled, email; None if no such user."""
        ...


class RefreshStore(Protocol):
    async def start_family(self, family: RefreshFamily, first: RefreshToken) -> None: ...
    async def find_token(self, token_hash: bytes) -> tuple[RefreshToken, RefreshFamily] | None: ...
    async def find_token_with_user(self, token_hash: bytes) -> tuple[RefreshToken, RefreshFamily, User | None] | None:
        """As find_token, with the family's user (None if deleted) in the same round trip."""
        ...

    async def get_token(self, family_id: str, generation: int) -> RefreshToken | None: ...
    async def consume(self, token_hash: bytes, now: float, successor: RefreshToken, sealed_successor: bytes) -> bool:
        """Atomically: mark the token consumed if it was not (and its family is live), keep the
        sealed successor beside it, insert the successor, and drop the grandparent's sealed
        copy. Returns False, changing nothing, if another caller consumed it first."""
        ...

    async def rotate(
        self,
        token_hash: bytes,
        client_id: str,
        now: float,
        successor_hash: bytes,
        sealed_successor: bytes,
        idle_ttl: float,
    ) -> tuple[RefreshToken, RefreshFamily, User | None, RefreshToken | None] | None:
        """The usual refresh in one round trip: find the token (with its family and user, as
        find_token_with_user) and, if it is live for ``client_id`` at ``now`` (not consumed,
        neither it nor its family expired, the family neither revoked nor another client's),
        consume it as ``consume`` does, with a successor of the next generation, the same scope
        and audience, issued at ``now`` and expiring ``idle_ttl`` later or with its family,
        whichever comes first. Returns the token as it was before, its family, its user and the
        successor (None if this call consumed nothing); None for an unknown token."""
        ...

    async def revoke_family(self, family_id: str, now: float, reason: str) -> bool: ...
    async def revoke_user_families(self, user_id: str, now: float, reason: str, client_id: str | None = None) -> int:
        """Revoke the user's unrevoked families (only ``client_id``'s, if given); their count."""
        ...
    async def forget_successors(self, consumed_before: float, limit: int = 1000) -> int:
        """Drop up to ``limit`` sealed successors of tokens consumed before ``consumed_before``."""
        ...

    async def purge_expired(self, now: float, limit: int = 1000) -> int:
        """Delete up to ``limit`` families (with all their tokens) that ended before ``now``."""
        ...

    async def purge_revoked_families(self, revoked_before: float, limit: int = 1000) -> int:
        """Delete up to ``limit`` families (with all their tokens) revoked before ``revoked_before``."""
        ...


class RevocationStore(Protocol):
    async def revoke_jti(self, jti: str, expires_at: float, now: float) -> None: ...
    async def is_revoked(self, jti: str) -> bool: ...
    async def revoked_since(self, now: float) -> list[tuple[str, float]]:
        """Every revoked id that has not yet expired, with its expiry (to warm caches)."""
        ...

    async def revoked_after(self, since: float, now: float) -> list[tuple[str, float]]:
        """Unexpired ids revoked after ``since`` (by any instance's clock), with their expiry."""
        ...

    async def purge_revoked(self, before: float, limit: int = 1000) -> int:
        """Delete up to ``limit`` ids whose token expired before ``before``."""
        ...


class AuditStore(Protocol):
    async def append_audit(
        self, at: float, actor: str, action: str, target: str, detail: dict[str, object], remote_addr: str
    ) -> None: ...
    async def list_audit(self, *, limit: int, before: int = 0) -> list[AuditEntry]: ...
    async def purge_audit(self, before: float, limit: int = 1000) -> int:
        """Delete up to ``limit`` entries written before ``before``."""
        ...


class SessionStore(Protocol):
    """Browser sign-in sessions; the row is the truth (issuer.authorize.sessions applies expiry)."""

    async def create_session(self, session: BrowserSession, cookie_hash: bytes) -> None: ...
    async def find_session(self, cookie_hash: bytes) -> BrowserSession | None: ...
    async def get_session(self, session_id: str) -> BrowserSession | None: ...
    async def touch_session(self, session_id: str, now: float) -> None:
        """Set last_seen_at, if the session has not ended."""
        ...

    async def reauthenticate_session(self, session_id: str, auth_time: float, cookie_hash: bytes) -> bool:
        """A new auth_time (and last_seen_at) and a new cookie for a session that has not ended:
        the old cookie value resumes nothing any more."""
        ...

    async def end_session(self, session_id: str, now: float, reason: str) -> bool:
        """End it if it had not ended; False if unknown or already ended."""
        ...

    async def end_user_sessions(self, user_id: str, now: float, reason: str) -> list[str]:
        """End every unended session of the user; returns their ids."""
        ...

    async def list_user_sessions(self, user_id: str, now: float) -> list[BrowserSession]:
        """The user's sessions that have not ended and are before their absolute expiry, newest first."""
        ...

    async def revoke_session_families(self, session_id: str, now: float, reason: str) -> int:
        """Revoke the unrevoked refresh-token families the session started."""
        ...

    async def purge_sessions(self, before: float, limit: int = 1000) -> int:
        """Delete up to ``limit`` sessions that expired, or ended, before ``before``."""
        ...


class ConsentStore(Protocol):
    async def consented_scopes(self, user_id: str, client_id: str) -> list[str]: ...
    async def add_consent(self, user_id: str, client_id: str, scopes: tuple[str, ...], now: float) -> tuple[str, ...]:
        """Add to what the user granted the client (a union; granting again changes nothing);
        returns the scopes this call added, in the order given."""
        ...

    async def revoke_consent(self, user_id: str, client_id: str) -> bool: ...
    async def list_consents(self, user_id: str) -> list[ConsentGrant]:
        """What the user allowed each client, by client_id."""
        ...


class CodeStore(Protocol):
    async def create_code(self, code: AuthorizationCode) -> None: ...
    async def consume_code(self, code_hash: bytes, now: float) -> tuple[AuthorizationCode, bool] | None:
        """The code, and whether this call consumed it (compare-and-swap: exactly one caller
        wins). A call that loses marks the code replayed. None if unknown."""
        ...

    async def record_code_tokens(
        self, code_hash: bytes, family_id: str | None, access_jti: str, access_expires_at: float
    ) -> bool:
        """Remember what the winning exchange issued; returns whether the code was replayed meanwhile."""
        ...

    async def purge_codes(self, before: float, limit: int = 1000) -> int:
        """Delete up to ``limit`` codes that expired before ``before``."""
        ...
