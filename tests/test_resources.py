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


# -- workers kept to CPUs of their own --------------------------------------------------------


def test_workers_are_kept_to_cpus_only_when_each_has_one_of_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3, 5})
    fake_cgroup(tmp_path, monkeypatch, "max 100000")
    assert resources.worker_cpus(2) == [3, 5]
    assert resources.worker_cpus(1) == []  # one worker: left to the scheduler (or to taskset)
    assert resources.worker_cpus(3) == []  # more workers than CPUs
    fake_cgroup(tmp_path, monkeypatch, "100000 100000")
    assert resources.worker_cpus(2) == []  # a quota of one CPU over two: not dedicated cores
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(64)))
    fake_cgroup(tmp_path, monkeypatch, "200000 100000")
    assert resources.worker_cpus(2) == []  # a quota on a big host: every core is listed


def test_each_cpu_is_claimed_by_one_process_until_it_lets_go(tmp_path: Path) -> None:
    first = resources.claim_cpu([0, 1], "g", tmp_path)
    second = resources.claim_cpu([0, 1], "g", tmp_path)
    assert first is not None and second is not None
    assert (first[0], second[0]) == (0, 1)
    assert resources.claim_cpu([0, 1], "g", tmp_path) is None  # both held
    assert resources.claim_cpu([0, 1], "other", tmp_path) is not None  # another server's workers
    os.close(first[1])  # as when the worker holding cpu 0 exits
    again = resources.claim_cpu([0, 1], "g", tmp_path)
    assert again is not None and again[0] == 0
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    assert resources.claim_cpu([0, 1], "g", not_a_folder) is None  # nowhere to keep a lock: not pinned


@pytest.mark.slow
def test_serve_keeps_each_of_its_workers_to_a_cpu_of_its_own(tmp_path: Path) -> None:
    import json
    import shutil
    import subprocess
    import time

    import httpx

    from tests.servers import IssuerServer

    cpus = sorted(os.sched_getaffinity(0))[:2]
    if len(cpus) < 2 or shutil.which("taskset") is None:
        pytest.skip("needs two CPUs and taskset")

    class OnTwoCpus(IssuerServer):
        def command(self, port: int) -> list[str]:
            return ["taskset", "-c", f"{cpus[0]},{cpus[1]}", *super().command(port)]

    env = {"ISSUER_DATA_DIR": str(tmp_path / "data"), "ISSUER_LOG_LEVEL": "INFO"}
    server = OnTwoCpus(env, extra_args=["--workers", "2"], startup_timeout=60).start()
    try:
        deadline = time.monotonic() + 60
        while server.log_tail(10**7).count("Application startup complete") < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert httpx.get(server.url + "/readyz", timeout=5).status_code == 200
        assert server.process is not None
        children = subprocess.run(["pgrep", "-P", str(server.process.pid)], capture_output=True, text=True).stdout
        allowed = set()  # what each child process (the workers, a resource tracker) may run on
        for pid in children.split():
            status = Path(f"/proc/{pid}/status").read_text().splitlines()
            allowed.add(next(line.split()[1] for line in status if line.startswith("Cpus_allowed_list")))
        log = server.log_tail(10**7)
    finally:
        server.stop()
    kept = [json.loads(line)["cpu"] for line in log.splitlines() if '"worker kept to a CPU"' in line]
    assert sorted(kept) == cpus
    assert {str(cpu) for cpu in cpus} <= allowed
