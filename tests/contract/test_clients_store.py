"""ClientStore contract (issuer.storage.base.ClientStore) on each backend."""

from __future__ import annotations

from dataclasses import replace

from issuer.storage import SqlStorage
from tests.contract.conftest import new_client


async def test_create_then_get_round_trips_every_field(storage: SqlStorage) -> None:
    client = new_client()
    await storage.create_client(client)
    assert await storage.get_client(client.client_id) == client


async def test_public_client_keeps_no_secret_hash(storage: SqlStorage) -> None:
    client = new_client(public=True)
    await storage.create_client(client)
    stored = await storage.get_client(client.client_id)
    assert stored is not None
    assert stored.secret_hash is None
    assert stored.is_public


async def test_get_unknown_client_is_none(storage: SqlStorage) -> None:
    assert await storage.get_client("no-such-client") is None


async def test_list_clients_pages_in_client_id_order(storage: SqlStorage) -> None:
    ids = [f"client-{n:02d}" for n in (5, 1, 4, 2, 3)]
    for client_id in ids:
        await storage.create_client(new_client(client_id=client_id))
    first = await storage.list_clients(limit=2)
    assert [c.client_id for c in first] == ["client-01", "client-02"]
    second = await storage.list_clients(limit=2, after=first[-1].client_id)
    assert [c.client_id for c in second] == ["client-03", "client-04"]
    third = await storage.list_clients(limit=2, after=second[-1].client_id)
    assert [c.client_id for c in third] == ["client-05"]
    assert await storage.list_clients(limit=2, after="client-05") == []


async def test_update_client_changes_stored_fields(storage: SqlStorage) -> None:
    client = new_client()
    await storage.create_client(client)
    changed = replace(
        client,
        name="renamed",
        secret_hash=b"\x01" * 32,
        grant_types=("client_credentials", "password"),
        scopes=("admin",),
        audiences=("https://new.example.com",),
        redirect_uris=("https://new.example.com/cb",),
        post_logout_redirect_uris=(),
        first_party=True,
        updated_at=client.updated_at + 10,
    )
    assert await storage.update_client(changed) is True
    assert await storage.get_client(client.client_id) == changed


async def test_a_new_client_is_enabled_and_disabled_round_trips(storage: SqlStorage) -> None:
    client = new_client()
    await storage.create_client(client)
    stored = await storage.get_client(client.client_id)
    assert stored is not None and stored.disabled is False
    assert await storage.update_client(replace(client, disabled=True, updated_at=client.updated_at + 1)) is True
    stored = await storage.get_client(client.client_id)
    assert stored is not None and stored.disabled is True
    assert [c.disabled for c in await storage.list_clients(limit=10)] == [True]
    assert await storage.update_client(replace(client, disabled=False, updated_at=client.updated_at + 2)) is True
    stored = await storage.get_client(client.client_id)
    assert stored is not None and stored.disabled is False


async def test_a_client_created_disabled_stays_disabled(storage: SqlStorage) -> None:
    client = replace(new_client(), disabled=True)
    await storage.create_client(client)
    assert await storage.get_client(client.client_id) == client


async def test_update_unknown_client_returns_false_and_creates_nothing(storage: SqlStorage) -> None:
    ghost = new_client()
    assert await storage.update_client(ghost) is False
    assert await storage.get_client(ghost.client_id) is None


async def test_delete_client_once(storage: SqlStorage) -> None:
    client = new_client()
    await storage.create_client(client)
    assert await storage.delete_client(client.client_id) is True
    assert await storage.get_client(client.client_id) is None
    assert await storage.delete_client(client.client_id) is False


async def test_all_scopes_is_the_sorted_union_over_enabled_clients(storage: SqlStorage) -> None:
    assert await storage.all_scopes() == []
    await storage.create_client(new_client(scopes=("write", "read")))
    await storage.create_client(new_client(scopes=("admin", "read")))
    await storage.create_client(new_client(scopes=()))
    await storage.create_client(replace(new_client(scopes=("retired", "read")), disabled=True))
    assert await storage.all_scopes() == ["admin", "read", "write"]
