"""The ``issuer`` command: serve, migrate, and manage clients, users and keys."""

from __future__ import annotations

import argparse
import asyncio
import json
import shlex
import signal
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from issuer.accounts.users import Conflict, UserInputError, parse_registration
from issuer.accounts.views import client_view, user_view
from issuer.check import run_check
from issuer.errors import ConfigurationError, ServiceUnavailable
from issuer.models import AuditEntry, Client, User
from issuer.observability.logs import configure_logging
from issuer.operations import Actor
from issuer.operations.audit import audit_view
from issuer.operations.clients import ClientValidationError, NoSuchClient
from issuer.operations.users import NoSuchUser
from issuer.services import Services, open_services
from issuer.settings import Settings
from issuer.startup import load_settings, unknown_variables
from keys.envelope import new_kek
from keys.lifecycle import NoSuchKey, NotYetSafe
from keys.manager import ScheduleBusy

Command = Callable[[Services, argparse.Namespace], Awaitable[int]]


def _when(ts: float | None) -> str:
    """Every time the CLI prints: UTC, to the second (``2026-11-30 14:05:09Z``)."""
    return "-" if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _iso(value: str | None) -> str:
    return "-" if value is None else _when(datetime.fromisoformat(value).timestamp())


def _relative(ts: float, now: float) -> str:
    delta = abs(ts - now)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if delta >= size:
            amount = f"{delta / size:.0f}{unit}"
            break
    else:
        amount = f"{delta:.0f}s"
    return f"in {amount}" if ts >= now else f"{amount} ago"


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=True))


def _table(rows: list[list[str]], header: list[str]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


# -- clients ---------------------------------------------------------------------------------


async def clients_create(services: Services, args: argparse.Namespace) -> int:
    try:
        client, secret = await services.ops.clients.create(
            Actor.cli(),
            args.name,
            tuple(args.grant_type),
            tuple(args.scope or ()),
            tuple(args.audience or ()),
            public=args.public,
        )
    except ClientValidationError as exc:
        print(f"invalid: {exc}", file=sys.stderr)
        return 2
    out = {"client_id": client.client_id, "client_secret": secret, "name": client.name}
    if args.format == "env":
        # For `eval "$(issuer clients create … --format env)"`: shell-quoted assignments only.
        print(f"CLIENT_ID={shlex.quote(client.client_id)}")
        if secret is not None:
            print(f"CLIENT_SECRET={shlex.quote(secret)}")
    elif args.json or args.format == "json":
        _print_json(out)
    else:
        print(f"client_id:     {client.client_id}")
        if secret is not None:
            print(f"client_secret: {secret}")
            print("(the secret is shown only now; it is stored only as a keyed hash)")
    return 0


async def clients_list(services: Services, args: argparse.Namespace) -> int:
    clients = []
    after = ""
    while batch := await services.ops.clients.page(limit=500, after=after):
        clients.extend(batch)
        after = batch[-1].client_id
    rows = [client_view(c) for c in clients]
    if args.json:
        _print_json(rows)
    else:
        _table(
            [[r["client_id"], r["name"], r["type"], ",".join(r["grant_types"]), " ".join(r["scopes"])] for r in rows],
            ["CLIENT_ID", "NAME", "TYPE", "GRANTS", "SCOPES"],
        )
    return 0


def _no_client(client_id: str) -> int:
    print(f"no client {client_id!r}", file=sys.stderr)
    return 4


def _show_client(client: Client, as_json: bool) -> None:
    view = client_view(client)
    if as_json:
        _print_json(view)
        return
    for name, value in view.items():
        shown = " ".join(value) if isinstance(value, list) else _when(value) if name.endswith("_at") else value
        print(f"{name + ':':<14} {shown if shown not in ('', None) else '-'}")


async def clients_get(services: Services, args: argparse.Namespace) -> int:
    try:
        _show_client(await services.ops.clients.get(args.client_id), args.json)
    except NoSuchClient:
        return _no_client(args.client_id)
    return 0


async def clients_disable(services: Services, args: argparse.Namespace) -> int:
    try:
        await services.ops.clients.set_disabled(Actor.cli(), args.client_id, args.disabled)
    except NoSuchClient:
        return _no_client(args.client_id)
    print(f"client {args.client_id} {'disabled' if args.disabled else 'enabled'}")
    return 0


async def clients_update(services: Services, args: argparse.Namespace) -> int:
    changes: dict[str, Any] = {}
    if args.name is not None:
        changes["name"] = args.name
    for field, value in (("scopes", args.scope), ("grant_types", args.grant_type), ("audiences", args.audience)):
        if value is not None:
            changes[field] = tuple(value)
    if not changes:
        print("nothing to change: give --name, --scope, --grant-type or --audience", file=sys.stderr)
        return 2
    try:
        before = await services.ops.clients.get(args.client_id)
        after = await services.ops.clients.update(Actor.cli(), args.client_id, **changes)
    except NoSuchClient:
        return _no_client(args.client_id)
    except ClientValidationError as exc:
        print(f"invalid: {exc}", file=sys.stderr)
        return 2
    old, new = client_view(before), client_view(after)
    for field in sorted(changes):
        print(f"{field}: {_shown(old[field])} -> {_shown(new[field])}")
    return 0


def _shown(value: Any) -> str:
    return " ".join(value) if isinstance(value, list) else str(value)


async def clients_delete(services: Services, args: argparse.Namespace) -> int:
    try:
        await services.ops.clients.delete(Actor.cli(), args.client_id)
    except NoSuchClient:
        return _no_client(args.client_id)
    print(f"client {args.client_id} deleted")
    return 0


async def clients_rotate_secret(services: Services, args: argparse.Namespace) -> int:
    try:
        client, secret = await services.ops.clients.rotate_secret(Actor.cli(), args.client_id)
    except NoSuchClient:
        return _no_client(args.client_id)
    except ClientValidationError as exc:
        print(f"invalid: {exc}", file=sys.stderr)
        return 2
    if args.json:
        _print_json({"client_id": client.client_id, "client_secret": secret})
    else:
        print(f"client_id:     {client.client_id}")
        print(f"client_secret: {secret}")
        print("(the new secret is shown only now; the old one no longer works)")
    return 0


# -- users -----------------------------------------------------------------------------------


async def _user_or_fail(services: Services, username: str) -> User | None:
    try:
        return await services.ops.users.find(username)
    except NoSuchUser:
        print(f"no user {username!r}", file=sys.stderr)
        return None


def _read_password(from_stdin: bool) -> str | None:
    """On a terminal, prompt without echo (twice); otherwise read one line of standard input,
    which only --password-stdin allows, so a script never blocks on a prompt it cannot see."""
    if sys.stdin.isatty():
        import getpass

        password = getpass.getpass("Password: ")
        if getpass.getpass("Repeat it: ") != password:
            print("the passwords differ", file=sys.stderr)
            return None
        return password
    if not from_stdin:
        print("pass the password on standard input with --password-stdin", file=sys.stderr)
        return None
    return sys.stdin.readline().rstrip("\r\n")


async def users_create(services: Services, args: argparse.Namespace) -> int:
    password = _read_password(args.password_stdin)
    if password is None:
        return 2
    try:
        new = parse_registration({"username": args.username, "password": password, "email": args.email})
        user = await services.ops.users.create(Actor.cli(), new, args.role or ())
    except UserInputError as exc:
        print(f"invalid: {exc}", file=sys.stderr)
        return 2
    except Conflict as exc:
        print(f"that {exc.field} is already taken", file=sys.stderr)
        return 5
    if args.json:
        _print_json(user_view(user, services.users.roles))
    else:
        print(f"created user {user.username} with roles {','.join(user.roles)}")
        print(f"user_id: {user.user_id}")
    return 0


async def users_list(services: Services, args: argparse.Namespace) -> int:
    users: list[User] = []
    after = ""
    while batch := await services.ops.users.page(limit=500, after=after):
        users.extend(batch)
        after = batch[-1].username
    rows = [user_view(u, services.users.roles) for u in users]
    if args.json:
        _print_json(rows)
    else:
        _table(
            [
                [r["user_id"], r["username"], r["email"] or "-", ",".join(r["roles"]), "yes" if r["disabled"] else "no"]
                for r in rows
            ],
            ["USER_ID", "USERNAME", "EMAIL", "ROLES", "DISABLED"],
        )
    return 0


async def users_set_role(services: Services, args: argparse.Namespace) -> int:
    user = await _user_or_fail(services, args.username)
    if user is None:
        return 4
    try:
        updated = await services.ops.users.set_roles(Actor.cli(), user.user_id, args.role)
    except UserInputError as exc:
        print(f"invalid: {exc}", file=sys.stderr)
        return 2
    print(f"roles of {user.username}: {' '.join(user.roles)} -> {' '.join(updated.roles)}")
    return 0


async def users_disable(services: Services, args: argparse.Namespace) -> int:
    user = await _user_or_fail(services, args.username)
    if user is None:
        return 4
    await services.ops.users.set_disabled(Actor.cli(), user.user_id, args.disabled)
    done = "disabled (its sessions are revoked)" if args.disabled else "enabled"
    print(f"user {user.username} {done}")
    return 0


async def users_show(services: Services, args: argparse.Namespace) -> int:
    user = await _user_or_fail(services, args.username)
    if user is None:
        return 4
    view = user_view(user, services.users.roles)
    if args.json:
        _print_json(view)
    else:
        for name, value in view.items():
            shown = _when(value) if name.endswith("_at") else _shown(value) if value is not None else "-"
            print(f"{name + ':':<16} {shown}")
    return 0


async def users_revoke_sessions(services: Services, args: argparse.Namespace) -> int:
    user = await _user_or_fail(services, args.username)
    if user is None:
        return 4
    count = await services.ops.users.revoke_sessions(Actor.cli(), user.user_id)
    print(f"revoked {count} session(s) of {user.username}")
    return 0


async def users_import(services: Services, args: argparse.Namespace) -> int:
    report = await services.ops.users.import_file(Actor.cli(), args.file)
    print(f"imported {report.imported}, already present {report.conflicts}, invalid {len(report.errors)}")
    for line, message in report.errors:
        print(f"  line {line}: {message}", file=sys.stderr)
    return 0 if not report.errors else 1


# -- keys ------------------------------------------------------------------------------------


def _next(row: dict[str, Any], now: float) -> str:
    nxt = row["next_transition"]
    if nxt is None:
        return "-"
    if nxt["at"] is None:
        # No schedule (ISSUER_KEY_ROTATION_INTERVAL=0): the key moves on at the next rotation.
        return f"{nxt['to']} at the next `issuer keys rotate`"
    at = datetime.fromisoformat(nxt["at"]).timestamp()
    return f"{nxt['to']} {_when(at)} ({_relative(at, now)})"


async def keys_list(services: Services, args: argparse.Namespace) -> int:
    now = services.clock()
    rows = await services.ops.keys.schedule()
    if args.json:
        _print_json(rows)
    else:
        _table(
            [
                [r["kid"], r["alg"], r["state"], _iso(r["created_at"]), _iso(r["activated_at"]), _next(r, now)]
                for r in rows
            ],
            ["KID", "ALG", "STATE", "CREATED", "ACTIVATED", "NEXT"],
        )
    return 0


async def keys_rotate(services: Services, args: argparse.Namespace) -> int:
    try:
        transition = await services.ops.keys.rotate(Actor.cli(), force=args.force)
    except NotYetSafe as exc:
        print(
            f"not yet safe: the pending key may sign from {_when(exc.safe_at)} (use --force only for an emergency)",
            file=sys.stderr,
        )
        return 3
    except ScheduleBusy:
        print("another key change won the race; retry", file=sys.stderr)
        return 3
    for change in transition.changes:
        print(f"{change.kid}: {change.from_state.value} -> {change.to_state.value}")
    for key in transition.inserts:
        print(f"{key.kid}: new, {key.state.value}")
    return await keys_list(services, argparse.Namespace(json=False))


async def keys_revoke(services: Services, args: argparse.Namespace) -> int:
    try:
        await services.ops.keys.revoke(Actor.cli(), args.kid)
    except NoSuchKey:
        print(f"no published key {args.kid}", file=sys.stderr)
        return 4
    except ScheduleBusy:
        print("another key change won the race; retry", file=sys.stderr)
        return 3
    print(f"{args.kid}: revoked (unpublished; a new key signs now)")
    return await keys_list(services, argparse.Namespace(json=False))


async def keys_rewrap(services: Services, args: argparse.Namespace) -> int:
    keys, secrets_ = await services.ops.keys.rewrap(Actor.cli())
    print(f"re-encrypted {keys} signing key(s) and {secrets_} server secret(s) under the first key-encryption key")
    return 0


# -- audit -----------------------------------------------------------------------------------


def _audit_line(entry: AuditEntry) -> str:
    detail = " ".join(f"{k}={json.dumps(v)}" for k, v in sorted(entry.detail.items()))
    where = f" from {entry.remote_addr}" if entry.remote_addr else ""
    return f"{_when(entry.at)}  {entry.actor}{where}  {entry.action} {entry.target or '-'}  {detail}".rstrip()


async def audit_tail(services: Services, args: argparse.Namespace) -> int:
    """The last N entries, oldest first; with --follow, then each new one as it is written."""
    entries = list(reversed(await services.ops.audit.recent(limit=max(1, min(args.n, 500)))))
    last = entries[-1].id if entries else 0
    for entry in entries[-args.n :] if args.n > 0 else []:
        print(json.dumps(audit_view(entry)) if args.json else _audit_line(entry), flush=True)
    while args.follow:
        await asyncio.sleep(args.interval)
        newer: list[AuditEntry] = []
        before = 0
        while True:  # page back to the last entry printed, however many were written meanwhile
            page = await services.ops.audit.recent(limit=500, before=before)
            fresh = [e for e in page if e.id > last]
            newer.extend(fresh)
            if len(fresh) < 500:
                break
            before = page[-1].id
        for entry in reversed(newer):
            print(json.dumps(audit_view(entry)) if args.json else _audit_line(entry), flush=True)
            last = entry.id
    return 0


# -- plumbing --------------------------------------------------------------------------------


def _run(command: Command, args: argparse.Namespace) -> int:
    settings = load_settings()
    # Warnings go to standard error: standard output is for what the command prints (eval, jq).
    configure_logging("WARNING", settings.log_format, env=settings.env, stream=sys.stderr)

    async def main() -> int:
        services = await open_services(settings, run_migrations=True if args.command == "migrate" else None)
        try:
            await services.ops.keys.ensure_initial(Actor.cli())
            return await command(services, args)
        finally:
            await services.close()

    return asyncio.run(main())


async def _migrate(services: Services, args: argparse.Namespace) -> int:
    print("database is up to date")
    return 0


async def _preflight(settings: Settings) -> None:
    services = await open_services(settings)
    await services.close()


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format, env=settings.env)
    # Open (and, embedded, migrate) everything once before uvicorn starts, so a wrong setting is
    # one line on standard error and exit status 2, not a traceback inside a log line.
    asyncio.run(_preflight(settings))
    if settings.is_sqlite and args.workers > 1:
        print("warning: SQLite with several workers shares no rate limits; use PostgreSQL + Redis", file=sys.stderr)
    # uvicorn re-raises SIGTERM after a graceful shutdown; a no-op handler underneath turns a
    # clean drain into exit status 0, which process supervisors read as success.
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    from issuer.http.server import LimitedHttpToolsProtocol, Limits

    LimitedHttpToolsProtocol.limits = Limits.from_settings(settings)  # spawned workers read the environment
    uvicorn.run(
        "issuer.asgi:build",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        # Our httptools protocol adds head/body deadlines, a head-size cap and a connection cap.
        http="issuer.http.server:LimitedHttpToolsProtocol",
        timeout_keep_alive=settings.keep_alive_timeout,
        access_log=False,
        log_config=None,
        # The client address behind proxies is worked out by our middleware (ISSUER_FORWARDED_ALLOW_IPS).
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=20,
    )
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

    clients = sub.add_parser("clients", help="manage OAuth clients").add_subparsers(dest="sub", required=True)
    create = clients.add_parser("create", help="register a client; prints its secret once")
    create.add_argument("--name", required=True)
    create.add_argument("--grant-type", action="extend", nargs="+", required=True, metavar="G")
    create.add_argument("--scope", action="extend", nargs="+", metavar="S")
    create.add_argument("--audience", action="extend", nargs="+", metavar="A")
    create.add_argument("--public", action="store_true", help="no secret (password/refresh grants only)")
    create.add_argument("--json", action="store_true", help="same as --format json")
    create.add_argument(
        "--format",
        choices=("text", "json", "env"),
        default="text",
        help='env: CLIENT_ID=… CLIENT_SECRET=… for eval "$(…)"',
    )
    create.set_defaults(func=clients_create)
    listing = clients.add_parser("list")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=clients_list)
    cdisable = clients.add_parser(
        "disable", help="refuse the client's authentication, and its tokens at our endpoints, at once"
    )
    cdisable.add_argument("client_id")
    cdisable.set_defaults(func=clients_disable, disabled=True)
    cenable = clients.add_parser("enable")
    cenable.add_argument("client_id")
    cenable.set_defaults(func=clients_disable, disabled=False)
    cget = clients.add_parser("get", help="show one client")
    cget.add_argument("client_id")
    cget.add_argument("--json", action="store_true")
    cget.set_defaults(func=clients_get)
    cupdate = clients.add_parser("update", help="change a client's name, scopes, grant types or audiences")
    cupdate.add_argument("client_id")
    cupdate.add_argument("--name")
    cupdate.add_argument("--scope", action="extend", nargs="+", metavar="S", help="the full new list (repeatable)")
    cupdate.add_argument("--grant-type", action="extend", nargs="+", metavar="G", help="the full new list")
    cupdate.add_argument("--audience", action="extend", nargs="+", metavar="A", help="the full new list")
    cupdate.set_defaults(func=clients_update)
    cdelete = clients.add_parser("delete", help="delete a client")
    cdelete.add_argument("client_id")
    cdelete.set_defaults(func=clients_delete)
    crotate = clients.add_parser("rotate-secret", help="issue a new secret (printed once); the old one stops working")
    crotate.add_argument("client_id")
    crotate.add_argument("--json", action="store_true")
    crotate.set_defaults(func=clients_rotate_secret)

    users = sub.add_parser("users", help="manage end users").add_subparsers(dest="sub", required=True)
    ucreate = users.add_parser("create", help="create a user; the password is read from standard input")
    ucreate.add_argument("--username", required=True)
    ucreate.add_argument("--email")
    ucreate.add_argument("--role", action="extend", nargs="+", metavar="R")
    ucreate.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input (a terminal prompts)"
    )
    ucreate.add_argument("--json", action="store_true")
    ucreate.set_defaults(func=users_create)
    ulist = users.add_parser("list")
    ulist.add_argument("--json", action="store_true")
    ulist.set_defaults(func=users_list)
    setrole = users.add_parser("set-role", help="replace a user's roles")
    setrole.add_argument("username")
    setrole.add_argument("role", nargs="+")
    setrole.set_defaults(func=users_set_role)
    disable = users.add_parser("disable", help="refuse logins and revoke every session")
    disable.add_argument("username")
    disable.set_defaults(func=users_disable, disabled=True)
    enable = users.add_parser("enable")
    enable.add_argument("username")
    enable.set_defaults(func=users_disable, disabled=False)
    uimport = users.add_parser(
        "import", help="import users from CSV or JSON lines (username,email,password_hash,roles)"
    )
    uimport.add_argument("file")
    uimport.set_defaults(func=users_import)
    ushow = users.add_parser("show", help="show one user")
    ushow.add_argument("username")
    ushow.add_argument("--json", action="store_true")
    ushow.set_defaults(func=users_show)
    urevoke = users.add_parser("revoke-sessions", help="revoke every refresh token of a user")
    urevoke.add_argument("username")
    urevoke.set_defaults(func=users_revoke_sessions)

    audit = sub.add_parser("audit", help="the audit log").add_subparsers(dest="sub", required=True)
    tail = audit.add_parser("tail", help="print the latest entries, oldest first")
    tail.add_argument("-n", type=int, default=20, help="how many (at most 500; default 20)")
    tail.add_argument("--follow", "-f", action="store_true", help="keep printing new entries")
    tail.add_argument("--interval", type=float, default=1.0, help=argparse.SUPPRESS)
    tail.add_argument("--json", action="store_true", help="one JSON object per line")
    tail.set_defaults(func=audit_tail)

    keys = sub.add_parser("keys", help="signing keys").add_subparsers(dest="sub", required=True)
    klist = keys.add_parser("list")
    klist.add_argument("--json", action="store_true")
    klist.set_defaults(func=keys_list)
    rotate = keys.add_parser("rotate", help="pending → active → retired, once safe")
    rotate.add_argument("--force", action="store_true", help="emergency: rotate even before caches have the key")
    rotate.set_defaults(func=keys_rotate)
    revoke = keys.add_parser("revoke", help="unpublish a compromised key at once")
    revoke.add_argument("kid")
    revoke.set_defaults(func=keys_revoke)
    keys.add_parser("rewrap", help="re-encrypt stored keys under the first key-encryption key").set_defaults(
        func=keys_rewrap
    )
    keys.add_parser("new-kek", help="print a new random key-encryption key").set_defaults(
        plain=lambda args: print(new_kek()) or 0
    )
    return p


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("issuer")
    except PackageNotFoundError:
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command != "serve":  # serve logs them (issuer.asgi.build), in its log format
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


if __name__ == "__main__":
    sys.exit(main())
