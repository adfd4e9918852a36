"""The public JSON shape of clients, users, browser sessions and consents, shared by the account
and admin APIs and `issuer … --json`. Secrets and password hashes never appear here."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from issuer.accounts.users import RoleHierarchy
from issuer.models import BrowserSession, Client, ConsentGrant, User


def client_view(client: Client) -> dict[str, Any]:
    return {
        "client_id": client.client_id,
        "name": client.name,
        "type": "public" if client.is_public else "confidential",
        "grant_types": list(client.grant_types),
        "scopes": list(client.scopes),
        "audiences": list(client.audiences),
        "redirect_uris": list(client.redirect_uris),
        "post_logout_redirect_uris": list(client.post_logout_redirect_uris),
        "first_party": client.first_party,
        "disabled": client.disabled,
        "created_at": int(client.created_at),
        "updated_at": int(client.updated_at),
    }


def user_view(user: User, roles: RoleHierarchy) -> dict[str, Any]:
    return {
        "user_id": user.user_id,
        "username": user.username,
        "email": user.email,
        "roles": list(user.roles),
        "effective_roles": roles.effective(user.roles),
        "disabled": user.disabled,
        "created_at": int(user.created_at),
    }


def session_view(session: BrowserSession) -> dict[str, Any]:
    return {
        "session_id": session.session_id,
        "user_id": session.user_id,
        "auth_time": int(session.auth_time),
        "created_at": int(session.created_at),
        "last_seen_at": int(session.last_seen_at),
        "expires_at": int(session.expires_at),
        "remote_addr": session.remote_addr,
        "user_agent": session.user_agent,
    }


async def consent_views(
    grants: list[ConsentGrant], client: Callable[[str], Awaitable[Client | None]]
) -> list[dict[str, Any]]:
    """``client`` looks a client up by id (the registry's ``get``); a deleted one's name is empty."""
    views = []
    for grant in grants:
        found = await client(grant.client_id)
        views.append({
            "client_id": grant.client_id,
            "client_name": found.name if found else "",
            "scopes": list(grant.scopes),
            "granted_at": int(grant.granted_at),
        })
    return views
