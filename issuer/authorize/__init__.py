"""Browser sign-in below HTTP: the authorization request, sessions, consent, codes and logout.
The pages (issuer.pages) use ``AuthorizeContext`` (``services.authorize``) and nothing else."""

from __future__ import annotations

from dataclasses import dataclass

from issuer.accounts.users import Users
from issuer.authorize.codes import AuthorizationCodes
from issuer.authorize.consent import Consents
from issuer.authorize.logout import LogoutRequest, logout_redirect, parse_end_session
from issuer.authorize.request import (
    AuthorizationRequest,
    RedirectError,
    ShowError,
    code_redirect,
    error_redirect,
    parse_authorization_request,
    read_params,
)
from issuer.authorize.sessions import BrowserSession, BrowserSessions
from issuer.oauth.clients import ClientRegistry
from issuer.settings import Settings
from issuer.tokens.id_tokens import IdTokens
from keys.keyring import Keyring

__all__ = [
    "AuthorizationCodes",
    "AuthorizationRequest",
    "AuthorizeContext",
    "BrowserSession",
    "BrowserSessions",
    "Consents",
    "LogoutRequest",
    "RedirectError",
    "ShowError",
    "code_redirect",
    "error_redirect",
    "logout_redirect",
    "parse_authorization_request",
    "parse_end_session",
    "read_params",
]


@dataclass(frozen=True)
class AuthorizeContext:
    """What the authorization, login, consent and logout pages use (built once with Services)."""

    issuer: str
    settings: Settings
    sessions: BrowserSessions
    consents: Consents
    codes: AuthorizationCodes
    clients: ClientRegistry
    users: Users
    id_tokens: IdTokens
    keyring: Keyring
