"""Response bodies of the browser-session and consent endpoints (/account/sessions, /account/consents,
/admin/users/{id}/sessions)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class BrowserSessionView(BaseModel):
    """A signed-in browser (its cookie is never shown)."""

    session_id: str = Field(description="Also the sid claim of the ID tokens issued in it")
    user_id: str
    auth_time: int = Field(description="When the user last entered her password in it")
    created_at: int
    last_seen_at: int
    expires_at: int = Field(description="Absolute end; it ends sooner when unused for ISSUER_SESSION_IDLE_TTL")
    remote_addr: str
    user_agent: str


class BrowserSessionList(BaseModel):
    items: list[BrowserSessionView] = Field(description="Live sessions, newest first")


class SessionsEnded(BaseModel):
    ended: list[str] = Field(description="The session_id of each session ended")


class ConsentView(BaseModel):
    """What the user allowed one client on the consent page."""

    client_id: str
    client_name: str = Field(description="Empty if the client has since been deleted")
    scopes: list[str]
    granted_at: int = Field(description="The latest grant")


class ConsentList(BaseModel):
    items: list[ConsentView] = Field(description="One per client, by client_id")
