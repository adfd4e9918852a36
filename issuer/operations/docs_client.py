"""The client Swagger UI at /docs signs in with: public (a page holds no secret), first-party (no
consent page), authorization code + PKCE and refresh tokens, for this issuer's own API. The
embedded development mode creates it at startup, audited like any client change; production
never does by itself (an operator registers one and names it in ``ISSUER_DOCS_CLIENT_ID``)."""

from __future__ import annotations

from dataclasses import replace

from issuer.models import Client
from issuer.oauth.clients import MAX_REDIRECT_URIS
from issuer.oauth.scopes import ADMIN_SCOPE
from issuer.operations.actor import Actor
from issuer.operations.audit import record
from issuer.operations.clients import ClientOps
from issuer.settings import Settings

DOCS_REDIRECT_PATH = "/docs/oauth2-redirect"
DEV_DOCS = Actor("system", "dev-docs")
_NAME = "API docs (development)"


def creates_docs_client(settings: Settings) -> bool:
    """Only the embedded development mode: SQLite, not production."""
    return bool(settings.docs_client_id) and settings.env != "production" and settings.is_sqlite


async def ensure_docs_client(ops: ClientOps, settings: Settings) -> Client | None:
    """The docs client, created if missing; an existing one keeps what an operator made of it
    (disabled stays disabled) but gains the current redirect URI if the issuer URL changed."""
    if not creates_docs_client(settings):
        return None
    client_id, redirect_uri = settings.docs_client_id, settings.endpoint(DOCS_REDIRECT_PATH)
    # SQLite's transactions start with BEGIN IMMEDIATE: a second process starting at the same
    # time waits here, then finds the client, so the check and the insert need no retry.
    async with ops.store.transaction() as tx:
        existing = await tx.get_client(client_id)
        if existing is None:
            client, _ = ops.registry.new_client(
                _NAME,
                ("authorization_code", "refresh_token"),
                (ADMIN_SCOPE,),  # granted only to administrators; opt-in in the Authorize dialog
                (settings.url,),
                public=True,
                redirect_uris=(redirect_uri,),
                first_party=True,
            )
            client = replace(client, client_id=client_id)
            await tx.create_client(client)
            await record(tx, ops.clock, DEV_DOCS, "clients.create", client_id, name=_NAME)
            return client
    if redirect_uri in existing.redirect_uris:
        return existing
    uris = (*existing.redirect_uris, redirect_uri)[-MAX_REDIRECT_URIS:]
    return await ops.update(DEV_DOCS, client_id, redirect_uris=uris)
