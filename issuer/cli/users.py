"""`issuer users …`: create, import, list, show, change roles, disable and sign out end users."""

from __future__ import annotations

import argparse
import sys

from issuer.accounts.users import Conflict, UserInputError, parse_registration
from issuer.accounts.views import consent_views, session_view, user_view
from issuer.cli.output import flat, print_json, table, when
from issuer.models import User
from issuer.operations import Actor
from issuer.operations.consents import NoSuchConsent
from issuer.operations.sessions import NoSuchSession
from issuer.operations.users import NoSuchUser
from issuer.services import Services


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
        print_json(user_view(user, services.users.roles))
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
        print_json(rows)
    else:
        table(
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
        print_json(view)
    else:
        for name, value in view.items():
            shown = when(value) if name.endswith("_at") else flat(value) if value is not None else "-"
            print(f"{name + ':':<16} {shown}")
    return 0


async def users_revoke_sessions(services: Services, args: argparse.Namespace) -> int:
    user = await _user_or_fail(services, args.username)
    if user is None:
        return 4
    count = await services.ops.users.revoke_sessions(Actor.cli(), user.user_id)
    print(f"revoked {count} session(s) of {user.username}")
    return 0


async def users_sessions(services: Services, args: argparse.Namespace) -> int:
    user = await _user_or_fail(services, args.username)
    if user is None:
        return 4
    views = [session_view(s) for s in await services.ops.sessions.list_for_user(user.user_id)]
    if args.json:
        print_json(views)
    else:
        rows = [
            [v["session_id"], when(v["created_at"]), when(v["last_seen_at"]), v["remote_addr"], v["user_agent"][:40]]
            for v in views
        ]
        table(rows, ["SESSION_ID", "SIGNED_IN", "LAST_SEEN", "ADDRESS", "USER_AGENT"])
    return 0


async def users_end_sessions(services: Services, args: argparse.Namespace) -> int:
    user = await _user_or_fail(services, args.username)
    if user is None:
        return 4
    if args.session is None:
        ended = await services.ops.sessions.end_all(Actor.cli(), user.user_id)
        print(f"ended {len(ended)} browser session(s) of {user.username}")
        return 0
    try:
        await services.ops.sessions.end(Actor.cli(), user.user_id, args.session)
    except NoSuchSession:
        print(f"no live session {args.session!r} of {user.username}", file=sys.stderr)
        return 4
    print(f"ended browser session {args.session} of {user.username}")
    return 0


async def users_consents(services: Services, args: argparse.Namespace) -> int:
    user = await _user_or_fail(services, args.username)
    if user is None:
        return 4
    views = await consent_views(await services.ops.consents.list_for_user(user.user_id), services.clients.get)
    if args.json:
        print_json(views)
    else:
        rows = [[v["client_id"], v["client_name"], " ".join(v["scopes"]), when(v["granted_at"])] for v in views]
        table(rows, ["CLIENT_ID", "NAME", "SCOPES", "GRANTED"])
    return 0


async def users_withdraw_consent(services: Services, args: argparse.Namespace) -> int:
    user = await _user_or_fail(services, args.username)
    if user is None:
        return 4
    try:
        families = await services.ops.consents.withdraw(Actor.cli(), user.user_id, args.client_id)
    except NoSuchConsent:
        print(f"{user.username} allowed client {args.client_id!r} nothing", file=sys.stderr)
        return 4
    print(f"withdrew what {user.username} allowed client {args.client_id}; revoked {families} refresh token famil"
          f"{'y' if families == 1 else 'ies'}")
    return 0


async def users_import(services: Services, args: argparse.Namespace) -> int:
    report = await services.ops.users.import_file(Actor.cli(), args.file)
    print(f"imported {report.imported}, already present {report.conflicts}, invalid {len(report.errors)}")
    for line, message in report.errors:
        print(f"  line {line}: {message}", file=sys.stderr)
    return 0 if not report.errors else 1


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
    usessions = users.add_parser("sessions", help="list a user's browser sign-in sessions")
    usessions.add_argument("username")
    usessions.add_argument("--json", action="store_true")
    usessions.set_defaults(func=users_sessions)
    uend = users.add_parser(
        "end-sessions", help="end a user's browser sessions (all, or --session ID) and the refresh tokens they started"
    )
    uend.add_argument("username")
    uend.add_argument(
        "--session", metavar="SESSION_ID", help="only this session (an id beginning with '-' goes as --session=ID)"
    )
    uend.set_defaults(func=users_end_sessions)
    uconsents = users.add_parser("consents", help="list what a user allowed each client on the consent page")
    uconsents.add_argument("username")
    uconsents.add_argument("--json", action="store_true")
    uconsents.set_defaults(func=users_consents)
    uwithdraw = users.add_parser(
        "withdraw-consent", help="withdraw what a user allowed a client, and revoke its refresh tokens for the user"
    )
    uwithdraw.add_argument("username")
    uwithdraw.add_argument("client_id")
    uwithdraw.set_defaults(func=users_withdraw_consent)
