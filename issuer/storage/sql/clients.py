"""Registered clients."""

from __future__ import annotations

import json

from issuer.models import Client
from issuer.storage.sql._rows import SqlStore, _client, _json


class ClientSql(SqlStore):
    """issuer.storage.base.ClientStore."""

    async def create_client(self, client: Client) -> None:
        await self.db.execute(
            "INSERT INTO clients (client_id, name, secret_hash, grant_types, scopes, audiences, created_at, updated_at,"
            " disabled, redirect_uris, post_logout_redirect_uris, first_party)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            client.client_id,
            client.name,
            client.secret_hash,
            _json(client.grant_types),
            _json(client.scopes),
            _json(client.audiences),
            client.created_at,
            client.updated_at,
            client.disabled,
            _json(client.redirect_uris),
            _json(client.post_logout_redirect_uris),
            client.first_party,
        )

    async def get_client(self, client_id: str) -> Client | None:
        row = await self.db.fetchrow("SELECT * FROM clients WHERE client_id = $1", client_id)
        return _client(row) if row else None

    async def list_clients(self, *, limit: int, after: str = "") -> list[Client]:
        rows = await self.db.fetch(
            "SELECT * FROM clients WHERE client_id > $1 ORDER BY client_id LIMIT $2", after, limit
        )
        return [_client(r) for r in rows]

    async def update_client(self, client: Client) -> bool:
        changed = await self.db.execute(
            "UPDATE clients SET name = $2, secret_hash = $3, grant_types = $4, scopes = $5, audiences = $6,"
            " updated_at = $7, disabled = $8, redirect_uris = $9, post_logout_redirect_uris = $10, first_party = $11"
            " WHERE client_id = $1",
            client.client_id,
            client.name,
            client.secret_hash,
            _json(client.grant_types),
            _json(client.scopes),
            _json(client.audiences),
            client.updated_at,
            client.disabled,
            _json(client.redirect_uris),
            _json(client.post_logout_redirect_uris),
            client.first_party,
        )
        return changed == 1

    async def all_scopes(self) -> list[str]:
        rows = await self.db.fetch("SELECT DISTINCT scopes FROM clients WHERE NOT disabled")
        return sorted({scope for r in rows for scope in json.loads(r["scopes"])})

    async def delete_client(self, client_id: str) -> bool:
        return await self.db.execute("DELETE FROM clients WHERE client_id = $1", client_id) == 1
