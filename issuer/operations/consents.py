"""What a user allows a client, granted on the consent page (issuer.pages.signin), audited in the
same transaction as the grant."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from issuer.operations.actor import Actor
from issuer.operations.audit import record
from issuer.storage import SqlStorage

__all__ = ["ConsentOps"]


@dataclass(frozen=True)
class ConsentOps:
    store: SqlStorage
    clock: Callable[[], float]

    async def grant(self, actor: Actor, user_id: str, client_id: str, scopes: tuple[str, ...]) -> None:
        """Add ``scopes`` to what ``user_id`` allowed ``client_id`` (earlier grants stay)."""
        async with self.store.transaction() as tx:
            await tx.add_consent(user_id, client_id, scopes, self.clock())
            await record(tx, self.clock, actor, "consents.grant", user_id, client_id=client_id, scopes=list(scopes))
