"""What a user allowed each client, read by the sign-in flow. A grant adds to the earlier ones and
a withdrawal forgets them (both through issuer.operations.consents, audited); the consent page is
shown again only for scopes not granted yet. First-party clients never ask (see ``needs_consent``)."""

from __future__ import annotations

from issuer.models import Client
from issuer.storage.base import ConsentStore


class Consents:
    def __init__(self, store: ConsentStore) -> None:
        self._store = store

    async def covers(self, user_id: str, client_id: str, scopes: tuple[str, ...]) -> bool:
        if not scopes:
            return True
        granted = set(await self._store.consented_scopes(user_id, client_id))
        return set(scopes) <= granted

    async def needs_consent(self, user_id: str, client: Client, scopes: tuple[str, ...]) -> bool:
        return not client.first_party and not await self.covers(user_id, client.client_id, scopes)
