"""What an operator sees from `issuer`: repeated flags, --version, `check`, one-line errors that
name the setting (CLI and `serve`), typo warnings, prompts, human times, and the service's logs
(startup line, access lines for 4xx, console format). Real processes, real databases."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from keys.envelope import new_kek
from tests.conftest import TEST_KEK, run_cli
from tests.servers import REPO_ROOT, IssuerServer, child_env, free_port

pytestmark = pytest.mark.timeout(180)


def env_for(database_url: str, tmp_path: Path, **more: str) -> dict[str, str]:
    return {
        "ISSUER_DATABASE_URL": database_url,
        "ISSUER_DATA_DIR": str(tmp_path / "data"),
        "ISSUER_KEY_ENCRYPTION_KEYS": TEST_KEK,
        **more,
    }


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)
    return result.stdout


def one_error_line(result: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


# -- flags, version, changes ----------------------------------------------------------------------


def test_repeated_flags_accumulate(sqlite_url: str, tmp_path: Path) -> None:
    env = env_for(sqlite_url, tmp_path, ISSUER_ARGON2_TIME_COST="1", ISSUER_ARGON2_MEMORY_KIB="7168")
    ok(run_cli(
        env, "clients", "create", "--name", "svc", "--grant-type", "client_credentials", "--grant-type", "password",
        "--scope", "a", "--scope", "b", "c", "--audience", "https://one.example.com",
        "--audience", "https://two.example.com", "--json",
    ))
    (row,) = json.loads(ok(run_cli(env, "clients", "list", "--json")))
    assert row["scopes"] == ["a", "b", "c"]
    assert row["grant_types"] == ["client_credentials", "password"]
    assert row["audiences"] == ["https://one.example.com", "https://two.example.com"]
    out = ok(run_cli(env, "users", "create", "--username", "bob", "--role", "user", "--role", "manager",
                     "--password-stdin", stdin="a long secret pass\n"))
    assert out.startswith("created user bob with roles ")
    (user,) = json.loads(ok(run_cli(env, "users", "list", "--json")))
    assert set(user["roles"]) == {"user", "manager"}
    assert ok(run_cli(env, "users", "disable", "bob")).strip() == "user bob disabled (its sessions are revoked)"
    client_id = row["client_id"]  # random: it may start with "-", hence the "--"
    assert ok(run_cli(env, "clients", "disable", "--", client_id)).strip() == f"client {client_id} disabled"


def test_version() -> None:
    result = run_cli({}, "--version")
    assert result.returncode == 0 and re.fullmatch(r"issuer \d+\.\d+\.\d+\S*\n", result.stdout), result


def test_format_env_sets_shell_variables(sqlite_url: str, tmp_path: Path) -> None:
    env = env_for(sqlite_url, tmp_path)
    script = (
        f'eval "$({sys.executable} -m issuer.cli clients create --name svc --grant-type client_credentials '
        '--format env)" && printf "%s|%s" "$CLIENT_ID" "$CLIENT_SECRET"'
    )
    result = subprocess.run(["bash", "-c", script], env=child_env(env), cwd=REPO_ROOT, capture_output=True,
                            text=True, timeout=60)
    client_id, secret = result.stdout.split("|")
    assert len(client_id) > 10 and len(secret) > 30, result.stderr
    (row,) = json.loads(ok(run_cli(env, "clients", "list", "--json")))
    assert row["client_id"] == client_id


def test_keys_list_has_human_times_and_no_on_request(sqlite_url: str, tmp_path: Path) -> None:
    out = ok(run_cli(env_for(sqlite_url, tmp_path), "keys", "list"))
    assert "on request" not in out and "+00:00" not in out
    active = next(line for line in out.splitlines() if line.split()[2] == "active")
    assert "retired at the next `issuer keys rotate`" in active
    pending = next(line for line in out.splitlines() if line.split()[2] == "pending")
    # no schedule: the pending key waits for a manual rotation, which is refused (409) until it is safe
    assert re.search(
        r"active at the next `issuer keys rotate`, allowed from \d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ \(in \d+min\)", pending
    ), pending
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ", active)


def test_password_prompt_on_a_terminal(sqlite_url: str, tmp_path: Path) -> None:
    """On a terminal, `users create` prompts twice without echo (with or without --password-stdin)."""
    env = child_env(env_for(sqlite_url, tmp_path, ISSUER_ARGON2_TIME_COST="1", ISSUER_ARGON2_MEMORY_KIB="7168"))
    for flag in (["--password-stdin"], []):
        name = f"tty{len(flag)}"
        pid, fd = pty.fork()
        if pid == 0:  # the child, on a new controlling terminal
            os.chdir(REPO_ROOT)
            os.execve(sys.executable, [sys.executable, "-m", "issuer.cli", "users", "create", "--username", name,
                                       *flag], env)
        seen = b""
        answered = 0
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 1)
            if not ready:
                continue
            try:
                chunk = os.read(fd, 1024)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
            if seen.count(b": ") > answered and answered < 2 and (b"Password:" in seen):
                os.write(fd, b"a long secret pass\n")
                answered += 1
        _, status = os.waitpid(pid, 0)
        os.close(fd)
        assert os.waitstatus_to_exitcode(status) == 0, seen
        assert b"Password:" in seen and b"Repeat it:" in seen
        assert b"a long secret pass" not in seen  # not echoed
        assert f"created user {name}".encode() in seen
    users = {u["username"] for u in json.loads(ok(run_cli(env_for(sqlite_url, tmp_path), "users", "list", "--json")))}
    assert users == {"tty0", "tty1"}


def test_without_the_flag_and_without_a_terminal_users_create_refuses(sqlite_url: str, tmp_path: Path) -> None:
    result = run_cli(env_for(sqlite_url, tmp_path), "users", "create", "--username", "x", stdin="a long secret pass\n")
    assert result.returncode == 2 and "--password-stdin" in result.stderr


# -- errors --------------------------------------------------------------------------------------


def test_configuration_errors_are_one_line_naming_the_setting(tmp_path: Path) -> None:
    base = {"ISSUER_DATA_DIR": str(tmp_path / "data")}
    kek = new_kek()
    # the URL is checked before the KEK PostgreSQL would need
    one_error_line(run_cli({**base, "ISSUER_DATABASE_URL": "mysql://x"}, "keys", "list"), "ISSUER_DATABASE_URL")
    pg = "postgresql://postgres:hunter2@127.0.0.1:{port}/postgres"
    line = one_error_line(
        run_cli({**base, "ISSUER_DATABASE_URL": pg.format(port=free_port()), "ISSUER_KEY_ENCRYPTION_KEYS": kek},
                "keys", "list"),
        "ISSUER_DATABASE_URL", "connection refused",
    )
    assert "hunter2" not in line and "postgres:***@" in line
    one_error_line(
        run_cli({**base, "ISSUER_DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/no_such_db_here",
                 "ISSUER_KEY_ENCRYPTION_KEYS": kek}, "migrate"),
        "ISSUER_DATABASE_URL", 'database "no_such_db_here" does not exist',
    )
    one_error_line(
        run_cli({**base, "ISSUER_DATABASE_URL": "postgresql://no_such_role@127.0.0.1:5432/postgres",
                 "ISSUER_KEY_ENCRYPTION_KEYS": kek}, "migrate"),
        "ISSUER_DATABASE_URL", 'role "no_such_role" does not exist',
    )
    one_error_line(run_cli({**base, "ISSUER_KEY_ENCRYPTION_KEYS": "not-a-key"}, "keys", "list"),
                   "ISSUER_KEY_ENCRYPTION_KEYS")
    line = one_error_line(run_cli({**base, "ISSUER_ACCESS_TOKEN_TTL": "5"}, "keys", "list"), "ISSUER_ACCESS_TOKEN_TTL:")
    assert "access_token_ttl" not in line and "pydantic" not in line
    one_error_line(
        run_cli({**base, "ISSUER_ENV": "production", "ISSUER_URL": "https://issuer.example.com"}, "keys", "list"),
        "production", "ISSUER_DATABASE_URL",
    )
    assert not (tmp_path / "data").exists()


def test_unknown_issuer_variables_warn_with_the_closest_setting(sqlite_url: str, tmp_path: Path) -> None:
    result = run_cli({**env_for(sqlite_url, tmp_path), "ISSUER_DATABSE_URL": "x", "ISSUER_ZZZ": "1"}, "keys", "list")
    assert result.returncode == 0, result.stderr
    assert "ISSUER_DATABSE_URL is not a setting of this issuer and is ignored; did you mean ISSUER_DATABASE_URL?" in (
        result.stderr
    )
    assert "ISSUER_ZZZ is not a setting" in result.stderr


def serve(env: dict[str, str], port: int, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "issuer.cli", "serve", "--port", str(port)],
        env=child_env(env), cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def test_serve_startup_failure_is_one_line_and_exit_2(tmp_path: Path) -> None:
    env = {"ISSUER_DATABASE_URL": f"postgresql://postgres@127.0.0.1:{free_port()}/x",
           "ISSUER_KEY_ENCRYPTION_KEYS": new_kek()}
    process = serve(env, free_port(), tmp_path)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 2, (stdout, stderr)
    assert "Traceback" not in stdout + stderr
    assert stderr.strip().count("\n") == 0 and stderr.startswith("error: ISSUER_DATABASE_URL: cannot open"), stderr
    bad = serve({"ISSUER_ACCESS_TOKEN_TTL": "zero", "ISSUER_DATA_DIR": str(tmp_path / "d")}, free_port(), tmp_path)
    stdout, stderr = bad.communicate(timeout=60)
    assert bad.returncode == 2 and stderr.startswith("error: ISSUER_ACCESS_TOKEN_TTL:"), (stdout, stderr)


# -- check ---------------------------------------------------------------------------------------


def test_check(database_url: str, redis_url: str, tmp_path: Path) -> None:
    if database_url.startswith("postgresql://postgres@"):
        # trust authentication ignores the password: here only to show it is never printed
        database_url = database_url.replace("postgresql://postgres@", "postgresql://postgres:hunter2@", 1)
    env = env_for(database_url, tmp_path, ISSUER_REDIS_URL=redis_url)
    ok(run_cli(env, "migrate"))
    ok(run_cli(env, "keys", "list"))  # creates the first keys
    result = run_cli(env, "check")
    out = ok(result)
    assert TEST_KEK not in out + result.stderr and "hunter2" not in out + result.stderr
    assert re.search(r"ISSUER_KEY_ENCRYPTION_KEYS\s+\(1 key\(s\), hidden\)", out)
    assert "ok: database: reachable, migrated" in out
    assert "ok: key-encryption keys: decrypt 2 signing key(s), 1 secret(s)" in out
    assert re.search(r"ok: key schedule: active \S+, pending \S+, next rotation", out)
    assert "ok: redis: reachable" in out
    assert "all checks passed" in out

    wrong = run_cli({**env, "ISSUER_KEY_ENCRYPTION_KEYS": new_kek()}, "check")
    assert wrong.returncode == 1
    problems = [line for line in wrong.stderr.splitlines() if line.startswith("problem: ")]
    assert len(problems) == 1 and "ISSUER_KEY_ENCRYPTION_KEYS cannot decrypt signing key" in problems[0], wrong.stderr

    typo = run_cli({**env, "ISSUER_ACCES_TOKEN_TTL": "60"}, "check")
    assert typo.returncode == 1 and "all checks passed" not in typo.stdout
    assert typo.stderr.splitlines() == [
        "problem: ISSUER_ACCES_TOKEN_TTL is not a setting of this issuer and is ignored; "
        "did you mean ISSUER_ACCESS_TOKEN_TTL?"
    ], typo.stderr

    down = run_cli({**env, "ISSUER_DATABASE_URL": f"postgresql://postgres@127.0.0.1:{free_port()}/x",
                    "ISSUER_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}, "check")
    assert down.returncode == 1 and "Traceback" not in down.stderr
    problems = [line for line in down.stderr.splitlines() if line.startswith("problem: ")]
    assert len(problems) == 2, down.stderr
    assert any("ISSUER_DATABASE_URL" in p and "connection refused" in p for p in problems)
    assert any("ISSUER_REDIS_URL" in p for p in problems)


# -- logs ----------------------------------------------------------------------------------------


def log_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_startup_line_and_access_lines_of_4xx(pg_database: str, redis_url: str, tmp_path: Path) -> None:
    password_url = pg_database.replace("postgresql://postgres@", "postgresql://postgres:hunter2@", 1)
    env = {
        "ISSUER_DATABASE_URL": password_url,
        "ISSUER_REDIS_URL": redis_url,
        "ISSUER_REDIS_PREFIX": f"logs-{os.getpid()}:",
        "ISSUER_KEY_ENCRYPTION_KEYS": TEST_KEK,
        "ISSUER_DATABSE_URL": "typo",
    }
    ok(run_cli(env, "migrate"))
    created = json.loads(ok(run_cli(env, "clients", "create", "--name", "svc", "--grant-type", "client_credentials",
                                    "--json")))
    cid, secret = created["client_id"], created["client_secret"]
    with IssuerServer(env, log_path=tmp_path / "server.log") as server, httpx.Client(base_url=server.url) as http:
        wrong = http.post("/oauth2/token", data={"grant_type": "client_credentials"}, auth=(cid, secret + "x"))
        assert wrong.status_code == 401
        scope = http.post("/oauth2/token", data={"grant_type": "client_credentials", "scope": "nope"},
                          auth=(cid, secret))
        assert scope.status_code == 400
        good = http.post("/oauth2/token", data={"grant_type": "client_credentials"}, auth=(cid, secret))
        token = good.json()["access_token"]
        time.sleep(0.3)
        text = server.log_tail(200_000)
    lines = log_lines(text)
    started = next(line for line in lines if line["msg"] == "started")
    assert started["mode"] == "development" and started["issuer"] == "http://127.0.0.1:8000"
    assert started["database"].startswith("postgresql://postgres:***@") and started["redis"].startswith("redis://")
    assert started["active_kid"] and started["pending_kid"]
    assert any("ISSUER_DATABSE_URL" in line["msg"] and "ISSUER_DATABASE_URL" in line["msg"] for line in lines)
    access = [line for line in lines if line["msg"] == "request" and line["path"] == "/oauth2/token"]
    assert [(a["status"], a.get("error"), a.get("client_id")) for a in access] == [
        (401, "invalid_client", cid), (400, "invalid_scope", cid), (200, None, cid),
    ]
    for needle in ("hunter2", secret, token, TEST_KEK):
        assert needle not in text


def test_console_log_format(sqlite_url: str, tmp_path: Path) -> None:
    env = env_for(sqlite_url, tmp_path, ISSUER_LOG_FORMAT="console")
    with IssuerServer(env, log_path=tmp_path / "server.log") as server, httpx.Client(base_url=server.url) as http:
        assert http.post("/oauth2/token", data={"grant_type": "client_credentials"},
                         auth=("nobody", "x")).status_code == 401
        time.sleep(0.3)
        text = server.log_tail(200_000)
    assert not any(line.startswith("{") for line in text.splitlines()), text
    assert re.search(r"^\d\d:\d\d:\d\d\.\d{3} INFO +started  mode=development database=sqlite:///", text, re.M), text
    assert re.search(
        r"^\d\d:\d\d:\d\d\.\d{3} INFO +POST /oauth2/token  route=token status=401 .*client_id=nobody "
        r"error=invalid_client$", text, re.M,
    ), text


def test_check_on_a_fresh_directory_creates_nothing(tmp_path: Path) -> None:
    result = run_cli({"ISSUER_DATA_DIR": str(tmp_path / "data")}, "check")
    assert result.returncode == 1
    assert "problem: no database at " in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "data").exists()


def test_startup_failure_under_plain_uvicorn_is_one_log_line(tmp_path: Path) -> None:
    """`uvicorn --factory issuer.asgi:build` opens the database in the lifespan: its failure is
    one line naming the setting, not a traceback."""
    env = {"ISSUER_DATABASE_URL": f"postgresql://postgres@127.0.0.1:{free_port()}/x",
           "ISSUER_KEY_ENCRYPTION_KEYS": new_kek()}
    result = subprocess.run(
        [sys.executable, "-m", "uvicorn", "--factory", "issuer.asgi:build", "--port", str(free_port())],
        env=child_env(env), cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0 and "Traceback" not in output, output
    assert "startup failed: issuer.errors.ConfigurationError: ISSUER_DATABASE_URL: cannot open" in output


def test_the_development_kek_warning_is_logged_once(tmp_path: Path) -> None:
    """`issuer serve` opens the services twice (a preflight, then the app): one warning, not two."""
    port = free_port()
    process = serve({"ISSUER_DATA_DIR": str(tmp_path / "data"), "ISSUER_LOG_FORMAT": "console"}, port, tmp_path)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
    finally:
        process.terminate()
        stdout, stderr = process.communicate(timeout=30)
    assert (stdout + stderr).count("using a generated development key-encryption key") == 1, stdout + stderr
