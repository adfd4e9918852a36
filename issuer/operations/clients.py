"""Client changes: create, update (incl. disable/enable), rotate secret, delete; and the reads
the admin API and CLI show."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from issuer.models import Client
from issuer.oauth.clients import ClientRegistry, ClientValidationError
from issuer.operations.actor import Actor
from issuer.operations.audit import record
from issuer.storage import SqlStorage

__all__ = ["ClientOps", "ClientValidationError", "NoSuchClient"]


class NoSuchClient(LookupError):
    pass


@dataclass(frozen=True)
class ClientOps:
    store: SqlStorage
    registry: ClientRegistry
    clock: Callable[[], float]

    async def get(self, client_id: str) -> Client:
        client = await self.store.get_client(client_id)
        if client is None:
            raise NoSuchClient(client_id)
        return client

    async def page(self, *, limit: int, after: str = "") -> list[Client]:
        return await self.store.list_clients(limit=limit, after=after)

    async def create(
        self,
        actor: Actor,
        name: str,
        grant_types: tuple[str, ...],
        scopes: tuple[str, ...] = (),
        audiences: tuple[str, ...] = (),
        *,
        public: bool = False,
        redirect_uris: tuple[str, ...] = (),
        post_logout_redirect_uris: tuple[str, ...] = (),
        first_party: bool = False,
    ) -> tuple[Client, str | None]:
        """Raises ClientValidationError. Returns the client and its secret (shown once)."""
        client, secret = self.registry.new_client(
            name,
            grant_types,
            scopes,
            audiences,
            public=public,
            redirect_uris=redirect_uris,
            post_logout_redirect_uris=post_logout_redirect_uris,
            first_party=first_party,
        )
        async with self.store.transaction() as tx:
            await tx.create_client(client)
            await record(tx, self.clock, actor, "clients.create", client.client_id, name=name)
        return client, secret

    async def update(self, actor: Actor, client_id: str, **changes: Any) -> Client:
        """Any of name, grant_types, scopes, audiences, redirect_uris, post_logout_redirect_uris,
        first_party, disabled. Raises NoSuchClient, ClientValidationError."""
        client = await self.get(client_id)
        for name in ("grant_types", "scopes", "audiences", "redirect_uris", "post_logout_redirect_uris"):
            if name in changes:
                changes[name] = tuple(dict.fromkeys(changes[name]))
        updated = self.registry.updated(client, **changes)
        detail: dict[str, object] = {"fields": sorted(changes)}
        for flag in ("disabled", "first_party"):
            if flag in changes:
                detail[flag] = changes[flag]
        async with self.store.transaction() as tx:
            if not await tx.update_client(updated):
                raise NoSuchClient(client_id)
            await record(tx, self.clock, actor, "clients.update", client_id, **detail)
        await self.registry.changed(client_id)
        return updated

    async def set_disabled(self, actor: Actor, client_id: str, disabled: bool) -> Client:
        return await self.update(actor, client_id, disabled=disabled)

    async def rotate_secret(self, actor: Actor, client_id: str) -> tuple[Client, str]:
        """Raises NoSuchClient, ClientValidationError (a public client has no secret)."""
        client = await self.get(client_id)
        if client.is_public:
            raise ClientValidationError("a public client has no secret")
        updated, secret = self.registry.with_new_secret(client)
        async with self.store.transaction() as tx:
            if not await tx.update_client(updated):
                raise NoSuchClient(client_id)
            await record(tx, self.clock, actor, "clients.rotate_secret", client_id)
        await self.registry.changed(client_id)
        return updated, secret

    async def delete(self, actor: Actor, client_id: str) -> None:
        """Raises NoSuchClient."""
        async with self.store.transaction() as tx:
            if not await tx.delete_client(client_id):
                raise NoSuchClient(client_id)
            await record(tx, self.clock, actor, "clients.delete", client_id)
        await self.registry.changed(client_id)
