"""`issuer clients …`: register, list, show, change, disable, delete and re-key OAuth clients."""

from __future__ import annotations

import argparse
import shlex
import sys
from typing import Any

from issuer.accounts.views import client_view
from issuer.cli.output import flat, print_json, table, when
from issuer.models import Client
from issuer.operations import Actor
from issuer.operations.clients import ClientValidationError, NoSuchClient
from issuer.services import Services


async def clients_create(services: Services, args: argparse.Namespace) -> int:
    try:
        client, secret = await services.ops.clients.create(
            Actor.cli(),
            args.name,
            tuple(args.grant_type),
            tuple(args.scope or ()),
            tuple(args.audience or ()),
            public=args.public,
            redirect_uris=tuple(args.redirect_uri or ()),
            post_logout_redirect_uris=tuple(args.post_logout_redirect_uri or ()),
            first_party=args.first_party,
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
        print_json(out)
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
        print_json(rows)
    else:
        table(
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
        print_json(view)
        return
    width = max(len(name) for name in view) + 2
    for name, value in view.items():
        shown = " ".join(value) if isinstance(value, list) else when(value) if name.endswith("_at") else value
        print(f"{name + ':':<{width}} {shown if shown not in ('', None) else '-'}")


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
    for field, value in (
        ("scopes", args.scope),
        ("grant_types", args.grant_type),
        ("audiences", args.audience),
        ("redirect_uris", args.redirect_uri),
        ("post_logout_redirect_uris", args.post_logout_redirect_uri),
    ):
        if value is not None:
            changes[field] = tuple(value)
    if args.first_party is not None:
        changes["first_party"] = args.first_party
    if not changes:
        print(
            "nothing to change: give --name, --scope, --grant-type, --audience, --redirect-uri,"
            " --post-logout-redirect-uri or --first-party/--no-first-party",
            file=sys.stderr,
        )
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
        print(f"{field}: {flat(old[field])} -> {flat(new[field])}")
    return 0


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
        print_json({"client_id": client.client_id, "client_secret": secret})
    else:
        print(f"client_id:     {client.client_id}")
        print(f"client_secret: {secret}")
        print("(the new secret is shown only now; the old one no longer works)")
    return 0


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    clients = sub.add_parser("clients", help="manage OAuth clients").add_subparsers(dest="sub", required=True)
    create = clients.add_parser("create", help="register a client; prints its secret once")
    create.add_argument("--name", required=True)
    create.add_argument("--grant-type", action="extend", nargs="+", required=True, metavar="G")
    create.add_argument("--scope", action="extend", nargs="+", metavar="S")
    create.add_argument("--audience", action="extend", nargs="+", metavar="A")
    create.add_argument(
        "--public", action="store_true", help="no secret (authorization_code, password, refresh_token grants only)"
    )
    create.add_argument("--redirect-uri", action="extend", nargs="+", metavar="URI", help="exact redirect URI(s)")
    create.add_argument("--post-logout-redirect-uri", action="extend", nargs="+", metavar="URI")
    create.add_argument("--first-party", action="store_true", help="skip the consent page for this client")
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
    cupdate = clients.add_parser(
        "update", help="change a client's name, scopes, grant types, audiences, redirect URIs or first-party flag"
    )
    cupdate.add_argument("client_id")
    cupdate.add_argument("--name")
    cupdate.add_argument("--scope", action="extend", nargs="+", metavar="S", help="the full new list (repeatable)")
    cupdate.add_argument("--grant-type", action="extend", nargs="+", metavar="G", help="the full new list")
    cupdate.add_argument("--audience", action="extend", nargs="+", metavar="A", help="the full new list")
    cupdate.add_argument("--redirect-uri", action="extend", nargs="+", metavar="URI", help="the full new list")
    cupdate.add_argument(
        "--post-logout-redirect-uri", action="extend", nargs="+", metavar="URI", help="the full new list"
    )
    cupdate.add_argument(
        "--first-party", action=argparse.BooleanOptionalAction, default=None, help="skip (or show) the consent page"
    )
    cupdate.set_defaults(func=clients_update)
    cdelete = clients.add_parser("delete", help="delete a client")
    cdelete.add_argument("client_id")
    cdelete.set_defaults(func=clients_delete)
    crotate = clients.add_parser("rotate-secret", help="issue a new secret (printed once); the old one stops working")
    crotate.add_argument("client_id")
    crotate.add_argument("--json", action="store_true")
    crotate.set_defaults(func=clients_rotate_secret)
