"""Thread and pool sizes follow the container's CPU quota (cgroup ``cpu.max``) and affinity, never
the host's core count: a pod limited to one CPU on a 32-core node signs inline and keeps a small
database pool."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from issuer import resources
from issuer.settings import Settings
from tests.conftest import running_app, services_of


def fake_cgroup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cpu: str) -> None:
    (tmp_path / "cpu.max").write_text(cpu + "\n")
    monkeypatch.setattr(resources, "CGROUP_ROOT", tmp_path)
    monkeypatch.setattr(os, "cpu_count", lambda: 32)  # the host's count must not matter


def test_one_cpu_of_quota_signs_inline_with_a_small_pool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_cgroup(tmp_path, monkeypatch, "100000 100000")
    settings = Settings(_env_file=None)
    assert settings.sign_threads == 0
    assert settings.pool_size == 4
    assert settings.hash_threads == 1


def test_a_fractional_quota_rounds_up_within_the_affinity(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_cgroup(tmp_path, monkeypatch, "150000 100000")
    cpus = min(2, len(os.sched_getaffinity(0)))
    settings = Settings(_env_file=None)
    assert settings.sign_threads == (1 if cpus > 1 else 0)
    assert settings.pool_size == max(4, min(10, 4 * cpus))


def test_affinity_bounds_an_unlimited_quota(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_cgroup(tmp_path, monkeypatch, "max 100000")
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})
    settings = Settings(_env_file=None)
    assert settings.sign_threads == 0
    assert settings.pool_size == 4


def test_workers_sign_inline_unless_each_has_a_spare_cpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_cgroup(tmp_path, monkeypatch, "400000 100000")
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(32)))
    assert [resources.signing_threads(w) for w in (1, 2, 3, 4)] == [1, 1, 0, 0]
    fake_cgroup(tmp_path, monkeypatch, "200000 100000")
    assert [resources.signing_threads(w) for w in (1, 2)] == [1, 0]


def test_workers_of_serve_share_the_quota(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # issuer serve --workers N sets WEB_CONCURRENCY for its workers (uvicorn reads it too).
    fake_cgroup(tmp_path, monkeypatch, "200000 100000")
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(32)))
    monkeypatch.setenv("WEB_CONCURRENCY", "1")
    assert Settings(_env_file=None).sign_threads == 1
    monkeypatch.setenv("WEB_CONCURRENCY", "2")
    assert Settings(_env_file=None).sign_threads == 0
    monkeypatch.setenv("WEB_CONCURRENCY", "many")
    assert Settings(_env_file=None).sign_threads == 1


def test_explicit_settings_win(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_cgroup(tmp_path, monkeypatch, "100000 100000")
    settings = Settings(_env_file=None, signing_threads=2, database_pool_size=7)
    assert (settings.sign_threads, settings.pool_size) == (2, 7)


async def test_the_running_app_sizes_its_pools_from_the_quota(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    make_settings: Callable[..., Settings],
    pg_database: str,
) -> None:
    fake_cgroup(tmp_path, monkeypatch, "100000 100000")
    async with running_app(make_settings(database_url=pg_database, signing_threads=None)) as http:
        services = services_of(http)
        assert services.signing_pool is None
        assert services.store.db._pool.get_max_size() == 4
        assert (await http.get("/readyz")).status_code == 200
