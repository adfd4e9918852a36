"""`issuer keys …`: the signing-key schedule, rotation, revocation and key-encryption keys."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from typing import Any

from issuer.cli.output import iso, print_json, relative, table, when
from issuer.operations import Actor
from issuer.services import Services
from keys.envelope import new_kek
from keys.lifecycle import NoSuchKey, NotYetSafe, Transition
from keys.manager import ScheduleBusy


def _next(row: dict[str, Any], now: float) -> str:
    nxt = row["next_transition"]
    if nxt is None:
        return "-"
    if nxt["at"] is None:
        # No schedule (ISSUER_KEY_ROTATION_INTERVAL=0): the key moves on at the next rotation.
        text = f"{nxt['to']} at the next `issuer keys rotate`"
        if row.get("earliest_activation"):
            earliest = datetime.fromisoformat(row["earliest_activation"]).timestamp()
            allowed = "allowed now" if earliest <= now else f"allowed from {when(earliest)} ({relative(earliest, now)})"
            text += f", {allowed}"
        return text
    at = datetime.fromisoformat(nxt["at"]).timestamp()
    return f"{nxt['to']} {when(at)} ({relative(at, now)})"


async def keys_list(services: Services, args: argparse.Namespace) -> int:
    now = services.clock()
    rows = await services.ops.keys.schedule()
    if args.json:
        print_json(rows)
    else:
        table(
            [
                [r["kid"], r["alg"], r["state"], iso(r["created_at"]), iso(r["activated_at"]), _next(r, now)]
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
            f"not yet safe: the pending key may sign from {when(exc.safe_at)} (use --force only for an emergency)",
            file=sys.stderr,
        )
        return 3
    except ScheduleBusy:
        print("another key change won the race; retry", file=sys.stderr)
        return 3
    _print_transition(transition)
    return await keys_list(services, argparse.Namespace(json=False))


def _print_transition(transition: Transition) -> None:
    for change in transition.changes:
        print(f"{change.kid}: {change.from_state.value} -> {change.to_state.value}")
    for key in transition.inserts:
        print(f"{key.kid}: new, {key.state.value}")


async def keys_revoke(services: Services, args: argparse.Namespace) -> int:
    try:
        transition = await services.ops.keys.revoke(Actor.cli(), args.kid)
    except NoSuchKey:
        print(f"no published key {args.kid}", file=sys.stderr)
        return 4
    except ScheduleBusy:
        print("another key change won the race; retry", file=sys.stderr)
        return 3
    _print_transition(transition)  # e.g. "<kid>: active -> revoked", "<pending>: pending -> active"
    return await keys_list(services, argparse.Namespace(json=False))


async def keys_rewrap(services: Services, args: argparse.Namespace) -> int:
    keys, secrets_ = await services.ops.keys.rewrap(Actor.cli())
    print(f"re-encrypted {keys} signing key(s) and {secrets_} server secret(s) under the first key-encryption key")
    return 0


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    keys = sub.add_parser("keys", help="signing keys").add_subparsers(dest="sub", required=True)
    klist = keys.add_parser("list")
    klist.add_argument("--json", action="store_true")
    klist.set_defaults(func=keys_list)
    rotate = keys.add_parser("rotate", help="pending → active → retired, once safe")
    rotate.add_argument("--force", action="store_true", help="emergency: rotate even before caches have the key")
    rotate.set_defaults(func=keys_rotate)
    revoke = keys.add_parser("revoke", help="unpublish a compromised key at once")
    revoke.add_argument("kid", help="the key's kid (one that begins with '-' goes after --: keys revoke -- -AbC…)")
    revoke.set_defaults(func=keys_revoke)
    keys.add_parser("rewrap", help="re-encrypt stored keys under the first key-encryption key").set_defaults(
        func=keys_rewrap
    )
    keys.add_parser("new-kek", help="print a new random key-encryption key").set_defaults(
        plain=lambda args: print(new_kek()) or 0
    )
