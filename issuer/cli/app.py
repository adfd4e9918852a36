"""The ``issuer`` command: parser assembly, ``main()``, and the commands that are no noun's
(serve, migrate, check, config-table). Each noun's commands live in their own module."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from issuer.check import run_check
from issuer.cli import audit, clients, keys, users
from issuer.errors import ConfigurationError, ServiceUnavailable
from issuer.malloc import fix_mmap_threshold
from issuer.observability.logs import configure_logging
from issuer.operations import Actor
from issuer.services import Services, open_services
from issuer.settings import Settings
from issuer.startup import check_production, connect_database, load_settings, resolve_keks, unknown_variables
from issuer.storage.migrate import migrate

Command = Callable[[Services, argparse.Namespace], Awaitable[int]]


def _run(command: Command, args: argparse.Namespace) -> int:
    settings = load_settings()
    # Warnings go to standard error: standard output is for what the command prints (eval, jq).
    configure_logging("WARNING", settings.log_format, env=settings.env, stream=sys.stderr)

    async def main() -> int:
        if args.command == "migrate":
            await _apply_migrations(settings)
        services = await open_services(settings)
        try:
            await services.ops.keys.ensure_initial(Actor.cli())
            return await command(services, args)
        finally:
            await services.close()

    return asyncio.run(main())


async def _apply_migrations(settings: Settings) -> None:
    """Apply and name the pending migrations, after the checks open_services makes first."""
    check_production(settings)
    resolve_keks(settings)
    db = await connect_database(settings)
    try:
        for name in await migrate(db):
            print(f"applied {name}")
    finally:
        await db.close()


async def _migrate(services: Services, args: argparse.Namespace) -> int:
    print("database is up to date")
    return 0


async def _preflight(settings: Settings) -> None:
    services = await open_services(settings)
    await services.close()


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    fix_mmap_threshold()  # before the first password hash (issuer.malloc)
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format, env=settings.env)
    # Open (and, embedded, migrate) everything once before uvicorn starts, so a wrong setting is
    # one line on standard error and exit status 2, not a traceback inside a log line.
    asyncio.run(_preflight(settings))
    # The workers share the CPU quota: each sizes its signing threads by their count (issuer.resources).
    os.environ["WEB_CONCURRENCY"] = str(args.workers)
    if settings.is_sqlite and args.workers > 1:
        print("warning: SQLite with several workers shares no rate limits; use PostgreSQL + Redis", file=sys.stderr)
    # uvicorn re-raises SIGTERM after a graceful shutdown; a no-op handler underneath turns a
    # clean drain into exit status 0, which process supervisors read as success.
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    from issuer.http.server import HttpProtocol, Limits

    HttpProtocol.limits = Limits.from_settings(settings)  # spawned workers read the environment
    options: dict[str, Any] = dict(
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        # Our HTTP/1.1 protocol (issuer.http.server): deadlines, a head-size cap, a connection cap, less CPU.
        http="issuer.http.server:HttpProtocol",
        timeout_keep_alive=settings.keep_alive_timeout,
        access_log=False,
        log_config=None,
        # The client address behind proxies is worked out by our middleware (ISSUER_FORWARDED_ALLOW_IPS).
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=20,
    )
    if args.workers > 1 and settings.reuse_port and hasattr(socket, "SO_REUSEPORT"):
        # A listening socket per worker, so a burst of connections spreads over the workers
        # (issuer.http.sockets); otherwise uvicorn.run, which shares one socket.
        from uvicorn.supervisors import Multiprocess

        from issuer.http.sockets import WorkerSockets

        Multiprocess(uvicorn.Config("issuer.asgi:build", **options),
                     sockets=WorkerSockets(args.host, args.port)).run()
    else:
        uvicorn.run("issuer.asgi:build", **options)
    return 0


def _config_table(args: argparse.Namespace) -> int:
    print("| Variable | Default | Description |\n|---|---|---|")
    for name, field in Settings.model_fields.items():
        default = field.default
        if hasattr(default, "get_secret_value"):
            default = default.get_secret_value()
        if isinstance(default, list):
            default = ",".join(default)
        shown = f"`{default}`" if default not in ("", None) else "(empty)"
        print(f"| `ISSUER_{name.upper()}` | {shown} | {field.description} |")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="issuer", description="OAuth 2.0 token issuer")
    p.add_argument("--version", action="version", version=f"issuer {_version()}")
    sub = p.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.set_defaults(plain=_serve)

    sub.add_parser("migrate", help="apply database migrations").set_defaults(func=_migrate)
    sub.add_parser(
        "check", help="show the effective configuration and check database, Redis, keys and key schedule"
    ).set_defaults(plain=lambda args: run_check())
    sub.add_parser("config-table", help="print the settings as a Markdown table").set_defaults(plain=_config_table)

    clients.add_commands(sub)
    users.add_commands(sub)
    audit.add_commands(sub)
    keys.add_commands(sub)
    return p


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("issuer")
    except PackageNotFoundError:
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    # serve logs them (issuer.asgi.build), in its log format; check counts them as problems
    if args.command not in ("serve", "check"):
        for warning in unknown_variables():
            print(warning, file=sys.stderr)
    try:
        if getattr(args, "plain", None):
            return int(args.plain(args))
        return _run(args.func, args)
    except (ConfigurationError, ValueError) as exc:
        # One line per problem, each naming the setting; never a traceback.
        for line in str(exc).splitlines():
            print(f"error: {line}", file=sys.stderr)
        return 2
    except ServiceUnavailable as exc:
        cause = type(exc.__cause__ or exc).__name__
        print(f"error: a dependency is unavailable ({cause}); retry later", file=sys.stderr)
        return 2
