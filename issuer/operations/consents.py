"""What a user allows a client: granted on the consent page (issuer.pages.signin), withdrawn by
the user (/account/consents); each audited in the same transaction as the change."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from issuer.models import ConsentGrant
from issuer.oauth.clients import MAX_CLIENT_ID
from issuer.operations.actor import Actor
from issuer.operations.audit import record
from issuer.storage import SqlStorage

__all__ = ["ConsentOps", "NoSuchConsent"]


class NoSuchConsent(LookupError):
    """The user has allowed that client nothing."""


@dataclass(frozen=True)
class ConsentOps:
    store: SqlStorage
    clock: Callable[[], float]

    async def grant(self, actor: Actor, user_id: str, client_id: str, scopes: tuple[str, ...]) -> tuple[str, ...]:
        """Add ``scopes`` to what ``user_id`` allowed ``client_id`` (earlier grants stay); returns
        the scopes added. Only they are recorded: a form posted again records nothing."""
        async with self.store.transaction() as tx:
            added = await tx.add_consent(user_id, client_id, scopes, self.clock())
            if added:
                await record(tx, self.clock, actor, "consents.grant", user_id, client_id=client_id, scopes=list(added))
        return added

    async def list_for_user(self, user_id: str) -> list[ConsentGrant]:
        return await self.store.list_consents(user_id)

    async def withdraw(self, actor: Actor, user_id: str, client_id: str) -> int:
        """Forget what ``user_id`` allowed ``client_id`` and revoke the client's refresh-token
        families for her (its access tokens run out within their lifetime); the next sign-in
        asks again. Returns the families revoked. Raises NoSuchConsent."""
        if len(client_id) > MAX_CLIENT_ID:  # request input: no lookup for what no client can be
            raise NoSuchConsent(client_id[:64])
        async with self.store.transaction() as tx:
            if not await tx.revoke_consent(user_id, client_id):
                raise NoSuchConsent(client_id)
            families = await tx.revoke_user_families(user_id, self.clock(), "consent withdrawn", client_id=client_id)
            await record(tx, self.clock, actor, "consents.withdraw", user_id, client_id=client_id, families=families)
        return families
