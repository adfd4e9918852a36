"""The verifier installs alone: ``pip install ./verifier`` into a clean virtual environment brings
joserfc and httpx but none of the issuer's server dependencies, and that environment verifies a
real token from a real issuer, through both entry points."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest

from keys.envelope import new_kek
from tests.conftest import load_and_operator_clients, sqlite_file_url
from tests.servers import REPO_ROOT, IssuerServer, free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

API = "https://api.example.com"
LOCAL_WHEELS = Path("/opt/pypi/files")  # this machine's local package files: install without the network
SERVER_ONLY = {"asyncpg", "argon2-cffi", "redis", "uvicorn", "starlette", "fastapi", "aiosqlite", "issuer"}

CHECK = textwrap.dedent(
    """
    import asyncio, json, sys
    from issuer_verifier import InvalidToken, Verifier
    issuer, token = sys.argv[1], sys.argv[2]
    verifier = Verifier(issuer, "https://api.example.com")
    sync = verifier.verify_sync(token)
    asynchronous = asyncio.run(verifier.verify(token))
    try:
        Verifier(issuer, "https://other.example.com").verify_sync(token)
        refused = ""
    except InvalidToken as exc:
        refused = exc.reason
    try:
        import issuer as server
        leaked = server.__file__
    except ImportError:
        leaked = ""
    print(json.dumps({"sub": sync.subject, "scopes": sorted(asynchronous.scopes), "refused": refused,
                      "leaked": leaked}))
    """
)


def clean_env() -> dict[str, str]:
    """No PYTHONPATH (the repository must not be importable) and no virtual environment of ours."""
    keep = ("PATH", "HOME", "LANG", "TMPDIR") + tuple(k for k in os.environ if k.startswith("PIP_"))
    return {k: os.environ[k] for k in keep if k in os.environ}


def run(*args: str | Path, cwd: Path) -> str:
    result = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=clean_env(), capture_output=True, text=True, timeout=240
    )
    assert result.returncode == 0, (args, result.stdout[-2000:], result.stderr[-4000:])
    return result.stdout


async def test_the_verifier_installs_without_the_server_dependencies_and_verifies(tmp_path: Path) -> None:
    kek, database = new_kek(), sqlite_file_url(tmp_path)
    load, _ = await load_and_operator_clients(database, kek, API, scopes=("orders:read",))
    port = free_port()
    env = {"ISSUER_URL": f"http://127.0.0.1:{port}", "ISSUER_DATABASE_URL": database, "ISSUER_KEY_ENCRYPTION_KEYS": kek}
    with IssuerServer(env, port=port, log_path=tmp_path / "issuer.log") as server:
        async with httpx.AsyncClient(base_url=server.url) as http:
            response = await http.post("/oauth2/token", data={"grant_type": "client_credentials"}, auth=load)
            assert response.status_code == 200, response.text
            token = response.json()["access_token"]

        venv = tmp_path / "venv"
        run(sys.executable, "-m", "venv", venv, cwd=tmp_path)
        offline = ["--no-index", "--find-links", str(LOCAL_WHEELS)] if LOCAL_WHEELS.is_dir() else []
        # from a copy: setuptools builds in the source tree, and the repository stays clean
        source = tmp_path / "verifier"
        skip = shutil.ignore_patterns("build", "*.egg-info", "__pycache__")
        shutil.copytree(REPO_ROOT / "verifier", source, ignore=skip)
        run(venv / "bin/pip", "install", "-q", *offline, source, cwd=tmp_path)
        installed = {
            p["name"].lower() for p in json.loads(run(venv / "bin/pip", "list", "--format", "json", cwd=tmp_path))
        }
        assert {"issuer-verifier", "joserfc", "httpx"} <= installed
        assert not installed & SERVER_ONLY, installed & SERVER_ONLY
        out = json.loads(run(venv / "bin/python", "-c", CHECK, server.url, token, cwd=tmp_path))

    assert out == {"sub": load[0], "scopes": ["orders:read"], "refused": "audience", "leaked": ""}
