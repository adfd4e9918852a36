"""A worker's resident memory (issue 11: one worker ≤ 80 MB), guarded by what decides it rather
than by an RSS threshold, which would be flaky: which modules a SQLite worker without Redis loads
through startup and the token paths, and glibc returning a password hash's memory to the kernel."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import cli_env, run_cli, sqlite_file_url
from tests.servers import REPO_ROOT, child_env

# Modules for rare paths or other configurations only; each costs a worker 0.5 to 7 MB.
NOT_AT_STARTUP = ("asyncpg", "redis", "jinja2", "email_validator", "swagger_ui")

# What `issuer serve` imports, then what a worker does: the app's startup, a token, JWKS,
# introspection. Prints the loaded modules (JSON).
_WORKER = textwrap.dedent(
    """
    import asyncio, json, sys
    import httpx, uvicorn
    from asgi_lifespan import LifespanManager
    import issuer.cli.app
    import issuer.asgi

    async def main(client_id, secret):
        app = issuer.asgi.build()
        async with LifespanManager(app) as manager:
            transport = httpx.ASGITransport(app=manager.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as http:
                auth = (client_id, secret)
                token = await http.post("/oauth2/token", data={"grant_type": "client_credentials"}, auth=auth)
                assert token.status_code == 200, token.text
                assert (await http.get("/.well-known/jwks.json")).status_code == 200
                seen = await http.post("/oauth2/introspect", data={"token": token.json()["access_token"]}, auth=auth)
                assert seen.status_code == 200, seen.text

    asyncio.run(main(*sys.argv[1:3]))
    print(json.dumps(sorted(sys.modules)))
    """
)


def test_a_sqlite_worker_without_redis_loads_no_driver_or_rare_path_module(tmp_path: Path) -> None:
    env = cli_env(sqlite_file_url(tmp_path), tmp_path)
    created = run_cli(env, "clients", "create", "--name", "svc", "--grant-type", "client_credentials", "--json")
    assert created.returncode == 0, created.stderr
    client = json.loads(created.stdout)
    worker = subprocess.run(
        [sys.executable, "-c", _WORKER, client["client_id"], client["client_secret"]],
        env=child_env(env),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert worker.returncode == 0, worker.stderr
    loaded = set(json.loads(worker.stdout.splitlines()[-1]))
    assert "aiosqlite" in loaded  # the script did reach the database
    assert sorted(loaded & set(NOT_AT_STARTUP)) == []


# Two hashes on the main thread, then glibc's bytes held in the heap (mallinfo2's ``arena``).
_HASHES = textwrap.dedent(
    """
    import ctypes, sys
    from argon2 import PasswordHasher
    from issuer.malloc import fix_mmap_threshold

    class MallInfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in
                    ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
                     "fordblks", "keepcost")]

    if sys.argv[1] == "fixed":
        assert fix_mmap_threshold()
    hasher = PasswordHasher(time_cost=1, memory_cost=7168, parallelism=1)
    hasher.hash("one")
    hasher.hash("two")
    mallinfo2 = ctypes.CDLL(None).mallinfo2
    mallinfo2.restype = MallInfo2
    print(mallinfo2().arena)
    """
)


def _heap_after_two_hashes(mode: str) -> int:
    env = child_env({})
    env.pop("MALLOC_MMAP_THRESHOLD_", None)
    done = subprocess.run(
        [sys.executable, "-c", _HASHES, mode], env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return int(done.stdout)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc malloc")
def test_a_fixed_mmap_threshold_returns_a_hash_s_memory_to_the_kernel() -> None:
    hash_memory = 7168 * 1024
    # Unfixed, glibc raises its threshold past the first hash's 7 MiB, and the second stays in the heap.
    assert _heap_after_two_hashes("default") >= hash_memory
    assert _heap_after_two_hashes("fixed") < hash_memory // 2
