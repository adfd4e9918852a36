"""issuer.storage.postgres.PostgresDatabase keeps connections checked out between statements: what
must still hold — waiting tasks get connections, close() never waits on a parked one, errors and
cancellations hand connections back to asyncpg, and a connection the server killed is skipped."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from issuer.storage.postgres import PostgresDatabase


async def _db(url: str, size: int = 2) -> PostgresDatabase:
    return await PostgresDatabase.connect(url, min_size=1, max_size=size)


async def test_more_tasks_than_connections_all_finish(pg_database: str) -> None:
    db = await _db(pg_database, size=2)
    try:
        async def one(i: int) -> int:
            if i % 3 == 0:
                async with db.transaction() as tx:
                    row = await tx.fetchrow("SELECT $1::int AS n", i)
            else:
                row = await db.fetchrow("SELECT pg_sleep(0.01), $1::int AS n", i)
            assert row is not None
            return int(row["n"])

        assert await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(60))), 30) == list(range(60))
    finally:
        await asyncio.wait_for(db.close(), 10)


async def test_close_does_not_wait_for_a_statement_that_ends_meanwhile(pg_database: str) -> None:
    db = await _db(pg_database)
    running = asyncio.create_task(db.fetch("SELECT pg_sleep(0.3)"))
    await asyncio.sleep(0.05)
    await asyncio.wait_for(db.close(), 5)  # hung before: the statement parked its connection
    assert running.done()


async def test_errors_and_cancellations_leave_usable_connections(pg_database: str) -> None:
    db = await _db(pg_database, size=1)
    try:
        with pytest.raises(asyncpg.PostgresError):
            await db.fetchrow("SELECT 1/0")
        slow = asyncio.create_task(db.fetchrow("SELECT pg_sleep(5)"))
        await asyncio.sleep(0.1)
        slow.cancel()
        with pytest.raises(asyncio.CancelledError):
            await slow
        with pytest.raises(RuntimeError):
            async with db.transaction() as tx:
                await tx.execute("SELECT 1")
                raise RuntimeError
        row = await asyncio.wait_for(db.fetchrow("SELECT 2 AS n"), 5)
        assert row is not None and row["n"] == 2
    finally:
        await db.close()


async def test_a_connection_killed_by_the_server_is_skipped(pg_database: str) -> None:
    db = await _db(pg_database, size=3)
    try:
        pids = set()
        for _ in range(3):
            row = await db.fetchrow("SELECT pg_backend_pid() AS pid")
            assert row is not None
            pids.add(row["pid"])
        admin = await asyncpg.connect(pg_database)
        try:
            await admin.execute("SELECT pg_terminate_backend(p) FROM unnest($1::int[]) AS p", list(pids))
        finally:
            await admin.close()
        await asyncio.sleep(0.2)
        answers = []
        for _ in range(4):
            try:
                answers.append((await db.fetchrow("SELECT 1 AS n")) is not None)
            except Exception:  # noqa: BLE001 - a connection not yet known dead may fail once
                answers.append(False)
        assert answers[-2:] == [True, True], answers
    finally:
        await db.close()
