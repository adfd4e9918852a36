"""The management API under /admin, for access tokens meant for this issuer carrying
``issuer:admin``, whose client or user still holds that power (issuer.tokens.principal.ADMIN).

Every change is made by issuer.operations, which writes the audit entry (who, what, when, from
where) in the change's own transaction; these handlers parse, call and render, and hold no
storage calls.
"""

from __future__ import annotations

from issuer.http.admin.audit import list_audit
from issuer.http.admin.clients import (
    create_client,
    delete_client,
    get_client,
    list_clients,
    rotate_client_secret,
    update_client,
)
from issuer.http.admin.keys import list_keys, revoke_key, rotate_keys
from issuer.http.admin.sessions import (
    end_user_browser_session,
    end_user_browser_sessions,
    list_user_browser_sessions,
    list_user_consents,
    withdraw_user_consent,
)
from issuer.http.admin.users import (
    disable_user,
    enable_user,
    get_user,
    list_users,
    revoke_user_sessions,
    set_user_roles,
)

__all__ = [
    "end_user_browser_session",
    "end_user_browser_sessions",
    "list_user_browser_sessions",
    "list_user_consents",
    "withdraw_user_consent",
    "create_client",
    "delete_client",
    "disable_user",
    "enable_user",
    "get_client",
    "get_user",
    "list_audit",
    "list_clients",
    "list_keys",
    "list_users",
    "revoke_key",
    "revoke_user_sessions",
    "rotate_client_secret",
    "rotate_keys",
    "set_user_roles",
    "update_client",
]
