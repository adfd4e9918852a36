"""SqlStorage.transaction(): every store bound to one transaction, so an operation's change and
its audit entry are committed together or not at all; a store method that opens its own
transaction inside it gets a savepoint (it rolls back alone and leaves the outer one usable)."""

from __future__ import annotations

import asyncio

import pytest

from issuer.storage import SqlStorage
from keys.lifecycle import KeyState, StateChange, Transition
from tests.contract.conftest import new_client, new_user

NOW = 1_700_000_000.0


class Boom(Exception):
    pass


async def test_a_committed_change_and_its_audit_entry_land_together(storage: SqlStorage) -> None:
    client = new_client()
    async with storage.transaction() as tx:
        await tx.create_client(client)
        await tx.append_audit(NOW, "cli:ops@host", "clients.create", client.client_id, {}, "")
    assert await storage.get_client(client.client_id) == client
    assert [e.target for e in await storage.list_audit(limit=10)] == [client.client_id]


async def test_a_change_that_fails_after_its_audit_entry_leaves_neither(storage: SqlStorage) -> None:
    taken = new_client()
    await storage.create_client(taken)
    user = new_user("alice")
    with pytest.raises(Exception):  # noqa: B017,PT011 - each backend's own unique-violation error
        async with storage.transaction() as tx:
            await tx.create_user(user)
            await tx.append_audit(NOW, "cli:ops@host", "clients.create", taken.client_id, {}, "")
            await tx.create_client(taken)  # the change itself fails: the id is taken
    assert await storage.list_audit(limit=10) == []
    assert await storage.get_user(user.user_id) is None


async def test_an_audit_write_that_fails_leaves_no_change(storage: SqlStorage) -> None:
    client = new_client()
    with pytest.raises(TypeError):
        async with storage.transaction() as tx:
            await tx.create_client(client)
            await tx.update_user("nobody", disabled=True, updated_at=NOW)
            await tx.append_audit(NOW, "cli:ops@host", "clients.create", client.client_id, {"x": object()}, "")
    assert await storage.get_client(client.client_id) is None
    assert await storage.list_audit(limit=10) == []


async def test_an_exception_in_the_caller_rolls_everything_back(storage: SqlStorage) -> None:
    client = new_client()
    with pytest.raises(Boom):
        async with storage.transaction() as tx:
            await tx.create_client(client)
            await tx.append_audit(NOW, "cli:ops@host", "clients.create", client.client_id, {}, "")
            raise Boom
    assert await storage.get_client(client.client_id) is None
    assert await storage.list_audit(limit=10) == []
    # and the storage works normally afterwards
    await storage.create_client(client)
    assert await storage.get_client(client.client_id) == client


async def test_a_nested_transaction_is_a_savepoint(storage: SqlStorage) -> None:
    await storage.create_user(new_user("taken"))
    fresh = new_user("fresh")
    async with storage.transaction() as tx:
        with pytest.raises(Exception):  # noqa: B017,PT011 - each backend's own conflict error
            async with tx.transaction() as row:
                await row.create_user(new_user("taken"))
        async with tx.transaction() as row:
            await row.create_user(fresh)
        await tx.append_audit(NOW, "cli:ops@host", "users.import", "file.csv", {"imported": 1}, "")
    assert await storage.get_user(fresh.user_id) == fresh
    assert [e.detail for e in await storage.list_audit(limit=10)] == [{"imported": 1}]


async def test_a_lost_compare_and_swap_inside_a_transaction_leaves_it_usable(storage: SqlStorage) -> None:
    """apply_transition opens its own transaction; inside ours it is a savepoint, so a lost
    compare-and-swap (False) does not abort the outer transaction (PostgreSQL would otherwise
    refuse every further statement in it)."""
    lost = Transition(changes=(StateChange("no-such-kid", KeyState.PENDING, KeyState.ACTIVE, NOW),))
    client = new_client()
    async with storage.transaction() as tx:
        assert await tx.apply_transition(lost) is False
        await tx.create_client(client)
        await tx.append_audit(NOW, "scheduler", "keys.rotate", "", {}, "")
    assert await storage.get_client(client.client_id) == client
    assert [e.actor for e in await storage.list_audit(limit=10)] == ["scheduler"]


async def test_other_work_waits_for_or_does_not_see_an_open_transaction(storage: SqlStorage) -> None:
    """Uncommitted rows are never read outside the transaction (SQLite: the one connection is
    held until commit; PostgreSQL: read committed)."""
    client = new_client()
    entered = asyncio.Event()
    release = asyncio.Event()

    async def writer() -> None:
        async with storage.transaction() as tx:
            await tx.create_client(client)
            entered.set()
            await release.wait()

    task = asyncio.create_task(writer())
    await entered.wait()
    read = asyncio.create_task(storage.get_client(client.client_id))
    await asyncio.sleep(0.05)
    if read.done():
        assert read.result() is None
    release.set()
    await task
    seen = await read
    assert seen is None or seen == client  # never a half-written row
    assert await storage.get_client(client.client_id) == client
