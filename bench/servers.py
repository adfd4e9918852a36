"""Throw-away issuers: a temp data dir, the env the CLI and the server share, clients, users, and
`issuer serve` with one uvicorn worker (pinned to a core or not); throw-away PostgreSQL databases."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import subprocess
import tempfile
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import (
    AUDIENCE,
    HOST,
    PYTHON,
    SCOPES,
    free_port,
    log,
    patched_environ,
    pg_execute,
    stop_process,
    taskset,
    wait_http_ok,
)

NO_RATE_LIMITS = {
    "ISSUER_RATE_LIMIT_LOGIN_PER_USER": "0",
    "ISSUER_RATE_LIMIT_LOGIN_PER_IP": "0",
    "ISSUER_RATE_LIMIT_TOKEN_PER_CLIENT": "0",
}
RATE_LIMIT_OFF = ("per-client token rate limit OFF (ISSUER_RATE_LIMIT_TOKEN_PER_CLIENT=0); its default "
                  "1,000/s would answer most of this load with 429")
# Password-hashing settings a caller may set in the shell; issuer_instance drops ISSUER_* otherwise.
HASH_ENV = ("ISSUER_ARGON2_TIME_COST", "ISSUER_ARGON2_MEMORY_KIB", "ISSUER_ARGON2_PARALLELISM",
            "ISSUER_PASSWORD_HASH_THREADS")


@dataclass
class Instance:
    data_dir: Path
    env: dict[str, str]
    database_url: str
    port: int
    logs: list[Path] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def database(self) -> str:
        return "sqlite" if self.database_url.startswith("sqlite") else "postgresql"


def rate_limit_note(inst: Instance) -> str:
    limit = inst.env["ISSUER_RATE_LIMIT_TOKEN_PER_CLIENT"]
    if limit == "0":
        return RATE_LIMIT_OFF
    where = "in Redis" if inst.env.get("ISSUER_REDIS_URL") else "in process"
    return f"per-client token rate limit ON: {limit}/s, counted {where} (--token-rate-limit)"


def run_cli(inst: Instance, *argv: str, timeout: float = 120.0, stdin: str | None = None) -> str:
    proc = subprocess.run([PYTHON, "-m", "issuer.cli", *argv], env=inst.env, cwd=inst.data_dir,
                          capture_output=True, text=True, timeout=timeout, input=stdin)
    if proc.returncode != 0:
        raise RuntimeError(f"issuer {' '.join(argv[:2])} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


@contextlib.contextmanager
def issuer_instance(args: argparse.Namespace, database_url: str | None = None, **extra_env: str) -> Iterator[Instance]:
    """A temp data dir and the environment the CLI and server share. Other ISSUER_* variables of the
    calling shell are dropped so nothing leaks in; ISSUER_KEY_ENCRYPTION_KEYS is kept only with
    --database-url (a persistent PostgreSQL already holds keys wrapped under some KEK).
    `database_url` (a throw-away database made by the scenario) wins over --database-url and gets a
    fresh KEK."""
    data_dir = Path(tempfile.mkdtemp(prefix="issuer-bench-"))
    given = getattr(args, "database_url", "")
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ISSUER_")}
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        port = free_port()
        persistent = not database_url and bool(given)
        database_url = database_url or given or f"sqlite:///{data_dir / 'issuer.sqlite3'}"
        env.update({
            "ISSUER_SIGNING_ALG": getattr(args, "alg", "RS256"),
            "ISSUER_DATA_DIR": str(data_dir),
            "ISSUER_DATABASE_URL": database_url,
            "ISSUER_URL": f"http://{HOST}:{port}",
            # Off by default: the default 1,000 tokens/s per client would answer most of a benchmark's
            # load with 429, which looks fast. Every report says which (rate_limit_note).
            "ISSUER_RATE_LIMIT_TOKEN_PER_CLIENT": str(getattr(args, "token_rate_limit", 0)),
            "ISSUER_LOG_LEVEL": getattr(args, "log_level", "INFO"),  # the product's default
        })
        if getattr(args, "redis_url", ""):
            env.update(ISSUER_REDIS_URL=args.redis_url, ISSUER_REDIS_PREFIX=f"bench-{secrets.token_hex(4)}:")
        inst = Instance(data_dir, env, database_url, port)
        kek = os.environ.get("ISSUER_KEY_ENCRYPTION_KEYS") if persistent else None
        env["ISSUER_KEY_ENCRYPTION_KEYS"] = kek or run_cli(inst, "keys", "new-kek").strip()
        env.update(extra_env)
        run_cli(inst, "migrate")  # a no-op on a fresh SQLite file; needed on PostgreSQL
        yield inst
    finally:
        if getattr(args, "keep", False):
            log(f"kept {data_dir}")
        else:
            shutil.rmtree(data_dir, ignore_errors=True)


def create_client(inst: Instance, name: str = "bench", grant_types: tuple[str, ...] = ("client_credentials",),
                  scopes: tuple[str, ...] = SCOPES, audience: str = AUDIENCE) -> tuple[str, str]:
    out = run_cli(inst, "clients", "create", "--name", name, "--grant-type", *grant_types,
                  "--scope", *scopes, "--audience", audience, "--json")
    data = json.loads(out)
    return str(data["client_id"]), str(data["client_secret"])


def create_public_client(inst: Instance, name: str = "bench-public",
                         grant_types: tuple[str, ...] = ("password", "refresh_token")) -> str:
    out = run_cli(inst, "clients", "create", "--public", "--name", name, "--grant-type", *grant_types,
                  "--scope", *SCOPES, "--audience", AUDIENCE, "--json")
    return str(json.loads(out)["client_id"])


def create_user(inst: Instance, username: str | None = None, password: str | None = None) -> tuple[str, str]:
    """A user (random name and password by default; the CLI hashes with the instance's argon2 settings)."""
    username = username or f"bench-{secrets.token_hex(4)}"
    password = password or secrets.token_urlsafe(18)
    run_cli(inst, "users", "create", "--username", username, "--password-stdin", stdin=password + "\n")
    return username, password


def hash_env_passthrough() -> dict[str, str]:
    env = {k: os.environ[k] for k in HASH_ENV if os.environ.get(k)}
    if env:
        log(f"password hashing from the shell: {env}")
    return env


def instance_settings(inst: Instance) -> Any:
    """The Settings the server will see (same env, no .env file)."""
    from issuer.settings import Settings

    with patched_environ(inst.env):
        return Settings(_env_file=None)


@contextlib.contextmanager
def start_server(inst: Instance, cpu: int | str | None = None, startup_timeout: float = 60.0, workers: int = 1,
                 source: Path | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """`issuer serve`, waited on /healthz. With one worker (the default) uvicorn serves in that same
    process. With `cpu` (0, or "0,1"), taskset pins it from its first instruction, so the process
    sees only those CPUs from the start (as in a container) and sizes its signing threads from
    them. With `source`, the issuer code is imported from that directory (PYTHONPATH) instead of
    this checkout: the in-run A/B baseline of --baseline-src."""
    logfile = inst.data_dir / f"server-{inst.port}.log"
    inst.logs.append(logfile)
    env = {**inst.env, "PYTHONPATH": str(source)} if source else inst.env
    proc = None
    with open(logfile, "wb") as out:
        try:
            proc = subprocess.Popen(
                [*taskset(cpu), PYTHON, "-m", "issuer.cli", "serve", "--host", HOST, "--port", str(inst.port),
                 "--workers", str(workers)],
                env=env, cwd=inst.data_dir, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
            wait_http_ok(inst.base_url + "/healthz", proc, startup_timeout, "issuer", logfile)
            yield proc
        finally:
            stop_process(proc, "issuer")


@contextlib.contextmanager
def postgres_database(args: argparse.Namespace) -> Iterator[tuple[str, bool]]:
    """(database URL, throw_away). --database-url (PostgreSQL) is used as is; otherwise a database
    bench_<random> is created through --pg-admin-url and dropped WITH (FORCE) afterwards."""
    if args.database_url:
        if not args.database_url.startswith(("postgres://", "postgresql://")):
            raise RuntimeError("this scenario needs PostgreSQL; --database-url is not a postgresql:// URL")
        yield args.database_url, False
        return
    name = f"bench_{secrets.token_hex(6)}"
    try:
        pg_execute(args.pg_admin_url, f'CREATE DATABASE "{name}"')
    except Exception as exc:  # noqa: BLE001 - report why PostgreSQL is unusable
        raise RuntimeError(f"cannot create a database through {args.pg_admin_url}: {exc}") from exc
    log(f"created PostgreSQL database {name}")
    try:
        yield urllib.parse.urlunsplit(urllib.parse.urlsplit(args.pg_admin_url)._replace(path="/" + name)), True
    finally:
        try:
            pg_execute(args.pg_admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            log(f"dropped PostgreSQL database {name}")
        except Exception as exc:  # noqa: BLE001
            log(f"could not drop PostgreSQL database {name}: {exc}")
