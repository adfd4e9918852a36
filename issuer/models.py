"""Frozen values that cross layer boundaries."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Client:
    client_id: str
    name: str
    secret_hash: bytes | None = field(repr=False)
    grant_types: tuple[str, ...]
    scopes: tuple[str, ...]
    audiences: tuple[str, ...]
    created_at: float
    updated_at: float
    disabled: bool = False
    redirect_uris: tuple[str, ...] = ()
    post_logout_redirect_uris: tuple[str, ...] = ()
    first_party: bool = False

    @property
    def is_public(self) -> bool:
        return self.secret_hash is None

    @property
    def auth_method(self) -> str:
        return "none" if self.is_public else "client_secret_basic"


@dataclass(frozen=True)
class User:
    user_id: str
    username: str
    email: str | None
    password_hash: str = field(repr=False)
    roles: tuple[str, ...]
    disabled: bool
    created_at: float
    updated_at: float


@dataclass(frozen=True)
class RefreshFamily:
    family_id: str
    client_id: str
    user_id: str
    created_at: float
    expires_at: float
    revoked_at: float | None = None
    # Set when a browser sign-in (authorization code) started the family.
    session_id: str | None = None
    auth_time: float | None = None


@dataclass(frozen=True)
class RefreshToken:
    token_hash: bytes = field(repr=False)
    family_id: str
    generation: int
    scope: str
    audience: str
    issued_at: float
    expires_at: float
    consumed_at: float | None = None
    successor_ciphertext: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: float
    actor: str
    action: str
    target: str
    detail: dict[str, object]
    remote_addr: str


@dataclass(frozen=True)
class BrowserSession:
    """A signed-in browser. ``session_id`` is public (the ID token's ``sid``); the cookie that
    resumes it is stored only as a hash."""

    session_id: str
    user_id: str
    auth_time: float
    created_at: float
    last_seen_at: float
    expires_at: float
    ended_at: float | None = None
    remote_addr: str = ""
    user_agent: str = ""


@dataclass(frozen=True)
class ConsentGrant:
    """What a user allowed one client on the consent page (a union over her grants)."""

    client_id: str
    scopes: tuple[str, ...]
    granted_at: float  # the latest grant


@dataclass(frozen=True)
class AuthorizationCode:
    """An issued authorization code (stored by its hash) and what it is bound to. After the first
    exchange: ``consumed_at``, and what that exchange issued (so a replay can revoke it)."""

    code_hash: bytes = field(repr=False)
    client_id: str
    user_id: str
    session_id: str
    redirect_uri: str
    code_challenge: str
    nonce: str | None
    scope: str
    audience: str
    auth_time: float
    issued_at: float
    expires_at: float
    consumed_at: float | None = None
    family_id: str | None = None
    access_jti: str | None = None
    access_expires_at: float | None = None
    replayed_at: float | None = None
