"""`python -m issuer.cli users …` against a SQLite file, checked through the running app on
that same file: create, list, set-role, disable/enable, and import of CSV and JSON lines."""

from __future__ import annotations

import csv
import io
import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bcrypt
import httpx
import jwt
import pytest
from argon2 import PasswordHasher

from issuer.settings import Settings
from tests.conftest import FAST, FakeClock, cli_env, make_client, run_cli, running_app, services_of


class Cli:
    def __init__(self, database_url: str, data_dir: Path) -> None:
        self.env = cli_env(database_url, data_dir)

    def __call__(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return run_cli(self.env, *args, stdin=stdin)

    def ok(self, *args: str, stdin: str | None = None) -> str:
        result = self(*args, stdin=stdin)
        assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)
        return result.stdout

    def users(self) -> dict[str, dict[str, Any]]:
        rows = json.loads(self.ok("users", "list", "--json"))
        return {row["username"]: row for row in rows}


@pytest.fixture
def cli(sqlite_url: str, tmp_path: Path) -> Cli:
    return Cli(sqlite_url, tmp_path / "data")


@pytest.fixture
def app(sqlite_url: str, make_settings: Callable[..., Settings], clock: FakeClock) -> Callable[[], Any]:
    """The issuer on the CLI's SQLite file (same key-encryption key)."""
    return lambda: running_app(make_settings(database_url=sqlite_url, **FAST), clock)


async def login(http: httpx.AsyncClient, username: str, password: str) -> httpx.Response:
    client_id, secret = await make_client(http, name="app", grant_types=("password", "refresh_token"))
    data = {"grant_type": "password", "username": username, "password": password}
    return await http.post("/oauth2/token", data=data, auth=(client_id, secret or ""))


def claims(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    return jwt.decode(response.json()["access_token"], options={"verify_signature": False})


def argon2_hash(password: str) -> str:
    return PasswordHasher(time_cost=1, memory_cost=7168, parallelism=1).hash(password)


def bcrypt_hash(password: str) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()


# -- create and list ---------------------------------------------------------------------------------


async def test_create_reads_the_password_from_stdin_and_the_user_can_log_in(cli: Cli, app: Callable[[], Any]) -> None:
    out = cli.ok("users", "create", "--username", "alice", "--email", "alice@example.com", "--password-stdin",
                 stdin="a long secret pass\n")
    assert out.startswith("created user alice with roles user\n")
    user_id = out.strip().splitlines()[-1].removeprefix("user_id:").strip()
    assert user_id and "a long secret pass" not in out

    listed = cli.ok("users", "list", "--json")
    assert "$argon2" not in listed and "password" not in listed
    row = json.loads(listed)[0]
    assert row["user_id"] == user_id
    assert (row["username"], row["email"], row["roles"], row["disabled"]) == (
        "alice",
        "alice@example.com",
        ["user"],
        False,
    )

    table = cli.ok("users", "list").splitlines()
    assert table[0].split() == ["USER_ID", "USERNAME", "EMAIL", "ROLES", "DISABLED"]
    assert table[1].split() == [user_id, "alice", "alice@example.com", "user", "no"]

    async with app() as http:
        assert claims(await login(http, "alice", "a long secret pass"))["sub"] == user_id
        assert (await login(http, "alice", "a long secret pass\n")).status_code == 400


def test_create_with_json_output_and_a_role(cli: Cli) -> None:
    row = json.loads(cli.ok("users", "create", "--username", "boss", "--role", "manager", "--json", "--password-stdin",
                            stdin="password-123\n"))
    assert (row["username"], row["roles"], row["disabled"]) == ("boss", ["manager"], False)
    assert "password_hash" not in row and "$argon2" not in json.dumps(row)


def test_create_refuses_invalid_input_and_duplicates(cli: Cli) -> None:
    no_stdin_flag = cli("users", "create", "--username", "alice")
    assert no_stdin_flag.returncode == 2 and "--password-stdin" in no_stdin_flag.stderr

    short = cli("users", "create", "--username", "alice", "--password-stdin", stdin="short\n")
    assert short.returncode == 2 and "password" in short.stderr

    unknown_role = cli(
        "users", "create", "--username", "alice", "--role", "root", "--password-stdin", stdin="password-123\n"
    )
    assert unknown_role.returncode == 2 and "root" in unknown_role.stderr

    cli.ok(
        "users", "create", "--username", "alice", "--email", "a@example.com", "--password-stdin", stdin="password-123\n"
    )
    for args in (("--username", "ALICE"), ("--username", "\uff21\uff2c\uff29\uff23\uff25")):
        duplicate = cli("users", "create", *args, "--password-stdin", stdin="password-123\n")
        assert duplicate.returncode == 5, duplicate.stderr
        assert "taken" in duplicate.stderr
    assert list(cli.users()) == ["alice"]

    for password, message in (("alice-cli", "username"), ("password1", "common"), (" " * 9, "whitespace")):
        refused = cli("users", "create", "--username", "alice-cli", "--password-stdin", stdin=password + "\n")
        assert refused.returncode == 2 and message in refused.stderr, refused.stderr


# -- set-role, disable, enable -------------------------------------------------------------------------


async def test_set_role_changes_the_roles_claim(cli: Cli, app: Callable[[], Any]) -> None:
    cli.ok("users", "create", "--username", "alice", "--password-stdin", stdin="password-123\n")

    cli.ok("users", "set-role", "alice", "manager")
    assert cli("users", "set-role", "alice", "root").returncode == 2
    assert cli("users", "set-role", "nobody", "admin").returncode == 4

    async with app() as http:
        assert (await services_of(http).users.store.find_user("alice")).roles == ("manager",)
        assert claims(await login(http, "alice", "password-123"))["roles"] == ["manager", "user"]


async def test_disable_refuses_login_and_ends_sessions_until_enabled(cli: Cli, app: Callable[[], Any]) -> None:
    cli.ok("users", "create", "--username", "alice", "--password-stdin", stdin="password-123\n")
    async with app() as http:
        store = services_of(http).users.store
        client_id, secret = await make_client(http, name="app", grant_types=("password", "refresh_token"))
        auth = (client_id, secret or "")
        session = await http.post(
            "/oauth2/token", data={"grant_type": "password", "username": "alice", "password": "password-123"}, auth=auth
        )
        assert session.status_code == 200, session.text
        refresh = {"grant_type": "refresh_token", "refresh_token": session.json()["refresh_token"]}

        cli.ok("users", "disable", "alice")

        assert (await store.find_user("alice")).disabled is True
        assert (await login(http, "alice", "password-123")).json()["error"] == "invalid_grant"
        assert (await http.post("/oauth2/token", data=refresh, auth=auth)).json()["error"] == "invalid_grant"

        cli.ok("users", "enable", "alice")

        assert (await store.find_user("alice")).disabled is False
        assert (await login(http, "alice", "password-123")).status_code == 200
        assert (await http.post("/oauth2/token", data=refresh, auth=auth)).json()["error"] == "invalid_grant"

    missing = cli("users", "disable", "nobody")
    assert missing.returncode == 4 and "nobody" in missing.stderr


# -- import --------------------------------------------------------------------------------------------


def write_csv(path: Path, rows: list[list[str]]) -> Path:
    buffer = io.StringIO()
    csv.writer(buffer).writerows([["username", "email", "password_hash", "roles"], *rows])
    path.write_text(buffer.getvalue())
    return path


async def test_import_csv_with_bcrypt_and_argon2id_hashes_reports_invalid_rows(
    cli: Cli, app: Callable[[], Any], tmp_path: Path
) -> None:
    cli.ok("users", "create", "--username", "existing", "--password-stdin", stdin="password-123\n")
    legacy = bcrypt_hash("legacy-password").replace("$2b$", "$2y$", 1)
    path = write_csv(tmp_path / "users.csv", [
        ["legacy", "legacy@example.com", legacy, "manager"],             # line 2
        ["modern", "", argon2_hash("modern-password"), "user admin"],    # line 3
        ["-bad-name", "x@example.com", argon2_hash("x"), ""],            # line 4
        ["badmail", "not-an-email", argon2_hash("x"), ""],               # line 5
        ["weakhash", "w@example.com", "pbkdf2_sha256$1$salt$hash", ""],  # line 6
        ["strange", "s@example.com", argon2_hash("x"), "root"],          # line 7
        ["EXISTING", "", argon2_hash("x"), ""],                          # line 8
    ])

    result = cli("users", "import", str(path))

    assert result.returncode == 1, result.stderr
    assert "imported 2, already present 1, invalid 4" in result.stdout
    reported = {
        int(line.split()[1].rstrip(":")) for line in result.stderr.splitlines() if line.strip().startswith("line ")
    }
    assert reported == {4, 5, 6, 7}
    users = cli.users()
    assert set(users) == {"existing", "legacy", "modern"}
    assert users["legacy"]["roles"] == ["manager"] and users["legacy"]["email"] == "legacy@example.com"
    assert users["modern"]["roles"] == ["user", "admin"] and users["modern"]["email"] is None

    async with app() as http:
        assert claims(await login(http, "legacy", "legacy-password"))["roles"] == ["manager", "user"]
        stored = await services_of(http).users.store.find_user("legacy")
        assert stored.password_hash.startswith("$argon2id$")
        assert claims(await login(http, "modern", "modern-password"))["roles"] == ["admin", "manager", "user"]
        assert (await login(http, "modern", "legacy-password")).status_code == 400


async def test_import_json_lines_with_bcrypt_and_argon2id_hashes(
    cli: Cli, app: Callable[[], Any], tmp_path: Path
) -> None:
    lines = [
        json.dumps(
            {
                "username": "legacy",
                "email": "l@example.com",
                "password_hash": bcrypt_hash("legacy-password"),
                "roles": ["manager"],
            }
        ),
        json.dumps({"username": "modern", "password_hash": argon2_hash("modern-password"), "roles": "admin"}),
        "",
        "{this is not json",
        json.dumps({"username": "nohash", "email": "n@example.com"}),
        json.dumps({"username": "legacy", "password_hash": argon2_hash("x")}),
        json.dumps(["a", "list"]),
    ]
    path = tmp_path / "users.jsonl"
    path.write_text("\n".join(lines) + "\n")

    result = cli("users", "import", str(path))

    assert result.returncode == 1, result.stderr
    assert "imported 2, already present 1, invalid 3" in result.stdout
    reported = {
        int(line.split()[1].rstrip(":")) for line in result.stderr.splitlines() if line.strip().startswith("line ")
    }
    assert reported == {4, 5, 7}
    async with app() as http:
        assert {u.username for u in await services_of(http).users.store.list_users(limit=10)} == {"legacy", "modern"}
        assert claims(await login(http, "legacy", "legacy-password"))["roles"] == ["manager", "user"]
        assert claims(await login(http, "modern", "modern-password"))["roles"] == ["admin", "manager", "user"]


def test_import_of_only_valid_rows_exits_zero(cli: Cli, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "users.csv", [["fine", "", argon2_hash("password-123"), ""]])
    result = cli("users", "import", str(path))
    assert result.returncode == 0, result.stderr
    assert "imported 1, already present 0, invalid 0" in result.stdout
    assert result.stderr == ""


def test_import_reports_json_lines_that_are_not_objects(cli: Cli, tmp_path: Path) -> None:
    first = json.dumps({"username": "first", "password_hash": argon2_hash("password-123")})
    path = tmp_path / "users.jsonl"
    path.write_text("\n".join([first, "42", "null", "true", '"just a string"']) + "\n")

    result = cli("users", "import", str(path))

    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 1
    assert "imported 1, already present 0, invalid 4" in result.stdout
    for line in (2, 3, 4, 5):
        assert f"line {line}:" in result.stderr


def test_import_reports_hashes_that_only_look_supported(cli: Cli, tmp_path: Path) -> None:
    """A row whose hash can never verify would be an account nobody can use: an invalid row."""
    path = write_csv(tmp_path / "users.csv", [
        ["broken1", "", "$2b$not-a-bcrypt-hash", ""],
        ["broken2", "", "$argon2id$garbage", ""],
    ])

    result = cli("users", "import", str(path))

    assert result.returncode == 1, result.stdout
    assert "imported 0, already present 0, invalid 2" in result.stdout
    assert cli.users() == {}


def test_import_refuses_hashes_costlier_than_the_policy(cli: Cli, tmp_path: Path) -> None:
    """Such hashes would set how long every failed login must take (and how much memory a hash
    needs), so they are refused with a clear reason rather than imported."""
    costly_bcrypt = "$2b$13$" + "a" * 53
    costly_argon2 = PasswordHasher(time_cost=2, memory_cost=8192, parallelism=1).hash("x")
    path = write_csv(tmp_path / "users.csv", [
        ["okay", "", bcrypt_hash("fine-password"), ""],            # line 2
        ["slowbcrypt", "", costly_bcrypt, ""],                     # line 3
        ["slowargon", "", costly_argon2, ""],                      # line 4
        ["ab\u202ecd", "", bcrypt_hash("fine-password"), ""],      # line 5
    ])

    result = cli("users", "import", str(path))

    assert result.returncode == 1, result.stderr
    assert "imported 1" in result.stdout
    reported = [line for line in result.stderr.splitlines() if line.strip().startswith("line ")]
    lines = {line.split()[1].rstrip(":"): line for line in reported}
    assert set(lines) == {"3", "4", "5"}
    assert "bcrypt cost 13" in lines["3"] and "12" in lines["3"]
    assert "m=8192" in lines["4"]
    assert "bidirectional" in lines["5"]
    assert list(cli.users()) == ["okay"]
