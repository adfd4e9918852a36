"""The ``issuer`` command, run as a real process against a real database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from issuer.settings import Settings
from keys.envelope import new_kek, parse_keks
from tests.conftest import TEST_KEK, running_app

Run = Callable[..., subprocess.CompletedProcess[str]]


def base_env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ISSUER_")}
    env.update(values)
    return env


@pytest.fixture
def cli_env(tmp_path: Path, database_url: str) -> dict[str, str]:
    """A CLI environment on each backend (an empty, migrated schema), with the suite's KEK."""
    return base_env(
        ISSUER_DATABASE_URL=database_url,
        ISSUER_DATA_DIR=str(tmp_path / "data"),
        ISSUER_KEY_ENCRYPTION_KEYS=TEST_KEK,
    )


@pytest.fixture
def sqlite_env(tmp_path: Path, sqlite_url: str) -> dict[str, str]:
    """For behaviour that does not depend on the backend: SQLite only."""
    return base_env(
        ISSUER_DATABASE_URL=sqlite_url,
        ISSUER_DATA_DIR=str(tmp_path / "data"),
        ISSUER_KEY_ENCRYPTION_KEYS=TEST_KEK,
    )


@pytest.fixture
def run(tmp_path: Path) -> Run:
    def run(*args: str, env: dict[str, str], stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "issuer.cli", *args],
            env=env,
            cwd=tmp_path,  # no stray .env file
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
        )

    return run


def ok_json(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def states(rows: list[dict[str, Any]]) -> dict[str, str]:
    return {r["kid"]: r["state"] for r in rows}


async def test_clients_create_and_list(
    run: Run, cli_env: dict[str, str], make_settings: Callable[..., Settings]
) -> None:
    created = ok_json(
        run(
            "clients", "create", "--name", "billing", "--grant-type", "client_credentials",
            "--scope", "read", "write", "--audience", "https://api.example.com", "--json",
            env=cli_env,
        )
    )
    assert created["name"] == "billing"
    assert isinstance(created["client_id"], str) and created["client_id"]
    assert isinstance(created["client_secret"], str) and len(created["client_secret"]) >= 43

    listed = ok_json(run("clients", "list", "--json", env=cli_env))
    [row] = [r for r in listed if r["client_id"] == created["client_id"]]
    assert row["name"] == "billing"
    assert row["type"] == "confidential"
    assert row["grant_types"] == ["client_credentials"]
    assert row["scopes"] == ["read", "write"]
    assert row["audiences"] == ["https://api.example.com"]
    assert "client_secret" not in row and "secret_hash" not in row

    # the printed secret is the one the issuer accepts
    settings = make_settings(database_url=cli_env["ISSUER_DATABASE_URL"])
    async with running_app(settings) as http:
        response = await http.post(
            "/oauth2/token",
            data={"grant_type": "client_credentials"},
            auth=(created["client_id"], created["client_secret"]),
        )
        assert response.status_code == 200, response.text
        assert response.json()["scope"] == "read write"


def test_public_client_has_no_secret_and_invalid_clients_are_refused(run: Run, sqlite_env: dict[str, str]) -> None:
    created = ok_json(
        run("clients", "create", "--name", "spa", "--grant-type", "password", "--public", "--json", env=sqlite_env)
    )
    assert created["client_secret"] is None
    refused = run(
        "clients", "create", "--name", "x", "--grant-type", "client_credentials", "--public", "--json", env=sqlite_env
    )
    assert refused.returncode == 2
    assert "client_credentials" in refused.stderr
    assert "Traceback" not in refused.stderr
    [row] = ok_json(run("clients", "list", "--json", env=sqlite_env))
    assert row["client_id"] == created["client_id"]
    assert row["type"] == "public"


def test_key_lifecycle_commands(run: Run, cli_env: dict[str, str]) -> None:
    rows = ok_json(run("keys", "list", "--json", env=cli_env))
    assert sorted(states(rows).values()) == ["active", "pending"]
    before = states(rows)
    pending = next(kid for kid, state in before.items() if state == "pending")
    active = next(kid for kid, state in before.items() if state == "active")
    [pending_row] = [r for r in rows if r["kid"] == pending]
    assert pending_row["earliest_activation"] is not None

    refused = run("keys", "rotate", env=cli_env)
    assert refused.returncode == 3
    assert "not yet safe" in refused.stderr
    # the CLI prints times as `2026-11-30 14:05:49Z` (UTC, to the second)
    shown = datetime.fromisoformat(pending_row["earliest_activation"]).strftime("%Y-%m-%d %H:%M:%SZ")
    assert shown in refused.stderr
    assert states(ok_json(run("keys", "list", "--json", env=cli_env))) == before

    forced = run("keys", "rotate", "--force", env=cli_env)
    assert forced.returncode == 0, forced.stderr
    assert pending in forced.stdout and active in forced.stdout
    after = states(ok_json(run("keys", "list", "--json", env=cli_env)))
    assert after[active] == "retired"
    assert after[pending] == "active"
    assert sorted(after.values()) == ["active", "pending", "retired"]


def test_new_kek_prints_a_usable_key(run: Run, tmp_path: Path) -> None:
    result = run("keys", "new-kek", env=base_env())
    assert result.returncode == 0, result.stderr
    kek = result.stdout.strip()
    assert len(parse_keks(kek)) == 1 and len(parse_keks(kek)[0]) == 32
    assert kek != TEST_KEK
    assert not (tmp_path / ".issuer-data").exists()  # new-kek touches no database


def test_migrate(run: Run, cli_env: dict[str, str]) -> None:
    result = run("migrate", env=cli_env)
    assert result.returncode == 0, result.stderr
    assert "up to date" in result.stdout


def test_postgres_without_kek_is_refused(run: Run, tmp_path: Path) -> None:
    env = base_env(
        ISSUER_DATABASE_URL="postgresql://postgres@127.0.0.1:5432/postgres",
        ISSUER_DATA_DIR=str(tmp_path / "data"),
    )
    for args in (("keys", "list"), ("migrate",)):
        result = run(*args, env=env)
        assert result.returncode == 2, result.stderr
        assert "ISSUER_KEY_ENCRYPTION_KEYS" in result.stderr
        assert "Traceback" not in result.stderr
    assert not (tmp_path / "data").exists()  # no development key was generated


def test_production_with_sqlite_is_refused(run: Run, tmp_path: Path) -> None:
    env = base_env(
        ISSUER_ENV="production",
        ISSUER_DATABASE_URL=f"sqlite:///{tmp_path / 'issuer.sqlite3'}",
        ISSUER_KEY_ENCRYPTION_KEYS=TEST_KEK,
        ISSUER_URL="https://issuer.example.com",
    )
    result = run("keys", "list", env=env)
    assert result.returncode == 2
    assert "production" in result.stderr and "SQLite" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "issuer.sqlite3").exists()


def test_migrate_names_the_migrations_it_applies(run: Run, sqlite_env: dict[str, str]) -> None:
    first = run("migrate", env=sqlite_env)
    assert first.returncode == 0, first.stderr
    applied = [line for line in first.stdout.splitlines() if line.startswith("applied ")]
    assert applied[0] == "applied 0001_init.sql" and len(applied) >= 4, first.stdout
    assert first.stdout.splitlines()[-1] == "database is up to date"
    again = run("migrate", env=sqlite_env)
    assert again.stdout.splitlines() == ["database is up to date"], again.stdout


def test_wrong_kek_for_an_existing_database_is_refused(run: Run, sqlite_env: dict[str, str]) -> None:
    first = run("migrate", env=sqlite_env)
    assert first.returncode == 0, first.stderr
    result = run("keys", "list", env={**sqlite_env, "ISSUER_KEY_ENCRYPTION_KEYS": new_kek()})
    assert result.returncode == 2
    assert "ISSUER_KEY_ENCRYPTION_KEYS" in result.stderr
    assert "Traceback" not in result.stderr


def test_invalid_settings_are_refused(run: Run, tmp_path: Path) -> None:
    env = base_env(ISSUER_URL="ftp://issuer.example.com", ISSUER_DATA_DIR=str(tmp_path / "data"))
    result = run("keys", "list", env=env)
    assert result.returncode == 2
    assert "ISSUER_URL" in result.stderr


async def test_clients_disable_and_enable(
    run: Run, cli_env: dict[str, str], make_settings: Callable[..., Settings]
) -> None:
    created = ok_json(
        run("clients", "create", "--name", "svc", "--grant-type", "client_credentials", "--json", env=cli_env)
    )
    client_id, secret = created["client_id"], created["client_secret"]
    token_request = {"grant_type": "client_credentials"}
    disabled = run("clients", "disable", client_id, env=cli_env)
    assert disabled.returncode == 0, disabled.stderr
    [row] = [r for r in ok_json(run("clients", "list", "--json", env=cli_env)) if r["client_id"] == client_id]
    assert row["disabled"] is True
    settings = make_settings(database_url=cli_env["ISSUER_DATABASE_URL"])
    async with running_app(settings) as http:
        refused = await http.post("/oauth2/token", data=token_request, auth=(client_id, secret))
        assert refused.status_code == 401 and refused.json()["error"] == "invalid_client"
    assert run("clients", "enable", client_id, env=cli_env).returncode == 0
    async with running_app(settings) as http:
        allowed = await http.post("/oauth2/token", data=token_request, auth=(client_id, secret))
        assert allowed.status_code == 200, allowed.text
    missing = run("clients", "disable", "no-such-client", env=cli_env)
    assert missing.returncode == 4 and "no-such-client" in missing.stderr
