"""AuditStore contract: append-only, newest first, paged by id."""

from __future__ import annotations

from issuer.storage import SqlStorage


async def test_empty_log(storage: SqlStorage) -> None:
    assert await storage.list_audit(limit=10) == []


async def test_append_round_trips_every_field(storage: SqlStorage) -> None:
    detail: dict[str, object] = {"scopes": ["read", "write"], "count": 2, "public": False, "note": "ünïcode"}
    await storage.append_audit(1_700_000_000.5, "admin:alice", "client.create", "client-1", detail, "10.0.0.7")
    [entry] = await storage.list_audit(limit=10)
    assert entry.id >= 1
    assert entry.at == 1_700_000_000.5
    assert entry.actor == "admin:alice"
    assert entry.action == "client.create"
    assert entry.target == "client-1"
    assert entry.detail == detail
    assert entry.remote_addr == "10.0.0.7"


async def test_newest_first_with_paging(storage: SqlStorage) -> None:
    for n in range(5):
        await storage.append_audit(1000.0 + n, "cli", f"action-{n}", "t", {}, "127.0.0.1")
    page1 = await storage.list_audit(limit=2)
    assert [e.action for e in page1] == ["action-4", "action-3"]
    assert page1[0].id > page1[1].id
    page2 = await storage.list_audit(limit=2, before=page1[-1].id)
    assert [e.action for e in page2] == ["action-2", "action-1"]
    page3 = await storage.list_audit(limit=2, before=page2[-1].id)
    assert [e.action for e in page3] == ["action-0"]
    assert await storage.list_audit(limit=2, before=page3[-1].id) == []
