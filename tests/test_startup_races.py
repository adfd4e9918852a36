"""Races between processes starting at once on a new data directory (``serve --workers N``, two
``issuer migrate``): every one succeeds, they agree on one development key-encryption key, and
the in-process revocation cache never forgets an id because an older snapshot landed last."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from issuer.settings import Settings
from issuer.startup import resolve_keks
from keys.envelope import parse_keks
from tests.conftest import make_client, running_app, services_of, sqlite_file_url
from tests.servers import REPO_ROOT, IssuerServer, child_env

ROUNDS = 4  # with the focused WAL test below, a few rounds of whole `migrate` runs suffice


def start_migrate(data_dir: Path, database_url: str = "") -> subprocess.Popen[str]:
    env = {"ISSUER_DATA_DIR": str(data_dir), "ISSUER_LOG_LEVEL": "WARNING"}
    if database_url:
        env["ISSUER_DATABASE_URL"] = database_url
    return subprocess.Popen(
        [sys.executable, "-m", "issuer.cli", "migrate"],
        env=child_env(env),
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
def test_concurrent_migrations_on_a_fresh_sqlite_data_dir_all_succeed(tmp_path: Path) -> None:
    """Each round: a new data directory (no database file, no development KEK) and four
    `issuer migrate` at once. Before, the loser crashed on a table the winner had just created,
    or read a KEK file the winner had created but not yet written."""
    for round_ in range(ROUNDS):
        data_dir = tmp_path / f"round-{round_}"
        processes = [start_migrate(data_dir) for _ in range(4)]
        for process in processes:
            out, err = process.communicate(timeout=120)
            assert process.returncode == 0, f"round {round_}: {err[-2000:]}"
            assert "database is up to date" in out
        kek = (data_dir / "dev-key-encryption-key").read_text().strip()
        assert len(parse_keks(kek)) == 1
        assert [p.name for p in data_dir.iterdir() if p.name.startswith(".dev-kek-")] == []


def test_concurrent_migrations_on_postgres_all_succeed(own_database: str, tmp_path: Path) -> None:
    if own_database.startswith("sqlite"):
        pytest.skip("the SQLite case is the test above, on a fresh data directory each round")
    from tests.conftest import TEST_KEK

    env = {"ISSUER_DATABASE_URL": own_database, "ISSUER_KEY_ENCRYPTION_KEYS": TEST_KEK, "ISSUER_LOG_LEVEL": "WARNING"}
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "issuer.cli", "migrate"],
            env=child_env(env),
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    for process in processes:
        _, err = process.communicate(timeout=120)
        assert process.returncode == 0, err[-2000:]


async def test_the_local_revocation_cache_merges_when_it_rewarms(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """Two instances on one SQLite file, no Redis: B revokes a token; on A, a warm that read the
    database before the revocation finishes after one that read it after. A must still refuse
    the token (before, the stale snapshot replaced the cache, and A called the token active)."""
    url = sqlite_file_url(tmp_path)
    async with running_app(make_settings(database_url=url)) as a, running_app(make_settings(database_url=url)) as b:
        client_id, secret = await make_client(a, name="rs", scopes=("read",))
        assert secret is not None
        issued = await a.post("/oauth2/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret))
        token = issued.json()["access_token"]

        cache = services_of(a).revocations.cache
        store = cache._store
        stale: list[tuple[str, float]] = await store.revoked_since(services_of(a).clock())  # before the revocation

        revoked = await b.post("/oauth2/revoke", data={"token": token}, auth=(client_id, secret))
        assert revoked.status_code == 200
        await cache.warm()  # the newer warm: sees the revocation

        class Stale:
            """The slower warm's read, taken before the revocation, answering last."""

            async def revoked_since(self, now: float) -> list[tuple[str, float]]:
                return stale

        cache._store = Stale()
        try:
            await cache.warm()
        finally:
            cache._store = store

        answer = await a.post("/oauth2/introspect", data={"token": token}, auth=(client_id, secret))
        assert answer.status_code == 200
        assert answer.json() == {"active": False}


async def test_concurrent_development_kek_creation_yields_one_complete_key(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """Many starters in one directory at once (threads here, processes in the test above): all
    read the same complete key."""

    settings = make_settings(key_encryption_keys="", data_dir=tmp_path / "fresh")
    envelopes = await asyncio.gather(*(asyncio.to_thread(resolve_keks, settings) for _ in range(16)))
    blob = envelopes[0].encrypt(b"x", b"aad")
    for envelope in envelopes:
        assert envelope.decrypt(blob, b"aad") == b"x"


@pytest.mark.slow
def test_serve_with_several_workers_on_a_new_data_dir_starts_every_worker_cleanly(tmp_path: Path) -> None:
    """Every worker migrates the embedded database and reads the development KEK at once."""
    data_dir = tmp_path / "data"
    env = {"ISSUER_DATA_DIR": str(data_dir), "ISSUER_LOG_LEVEL": "INFO"}
    server = IssuerServer(env, extra_args=["--workers", "3"], startup_timeout=60).start()
    try:
        deadline = time.monotonic() + 60
        while server.log_tail(10**7).count("Application startup complete") < 3 and time.monotonic() < deadline:
            time.sleep(0.2)
        with httpx.Client(timeout=5) as http:
            for _ in range(12):
                response = http.get(server.url + "/readyz")
                assert response.status_code == 200, response.text
        log = server.log_tail(10**7)
    finally:
        server.stop()
    assert "Traceback" not in log, log[-3000:]
    assert (data_dir / "dev-key-encryption-key").is_file()


_barrier: Any = None


def _share_barrier(barrier: Any) -> None:
    global _barrier
    _barrier = barrier


def _connect_and_create(path: str) -> str:
    from issuer.storage.sqlite import SqliteDatabase

    async def run() -> str:
        db = await SqliteDatabase.connect(path)
        try:
            await db.execute("CREATE TABLE IF NOT EXISTS probe (a INTEGER)")
            row = await db.fetchrow("PRAGMA journal_mode")
            return str(row["journal_mode"]) if row else "?"
        finally:
            await db.close()

    _barrier.wait()  # all six open the new file at the same moment
    try:
        return asyncio.run(run())
    except Exception as exc:  # reported to the parent, which asserts there is none
        return repr(exc)


def test_processes_opening_a_new_sqlite_file_at_once_all_get_wal(tmp_path: Path) -> None:
    """SQLite refuses `PRAGMA journal_mode=WAL` at once ("database is locked", no busy wait)
    while another process is switching the same new file; before, that error left
    aiosqlite's non-daemon thread running and `issuer migrate` never exited."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(6)
    with context.Pool(6, initializer=_share_barrier, initargs=(barrier,)) as pool:
        for round_ in range(150):
            path = str(tmp_path / f"round-{round_}.db")
            assert pool.map(_connect_and_create, [path] * 6, chunksize=1) == ["wal"] * 6, f"round {round_}"
