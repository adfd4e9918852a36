"""`issuer audit tail`: the audit log, as lines or JSON, optionally followed."""

from __future__ import annotations

import argparse
import asyncio
import json

from issuer.cli.output import when
from issuer.models import AuditEntry
from issuer.operations.audit import audit_view
from issuer.services import Services


def _audit_line(entry: AuditEntry) -> str:
    detail = " ".join(f"{k}={json.dumps(v)}" for k, v in sorted(entry.detail.items()))
    where = f" from {entry.remote_addr}" if entry.remote_addr else ""
    return f"{when(entry.at)}  {entry.actor}{where}  {entry.action} {entry.target or '-'}  {detail}".rstrip()


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


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    audit = sub.add_parser("audit", help="the audit log").add_subparsers(dest="sub", required=True)
    tail = audit.add_parser("tail", help="print the latest entries, oldest first")
    tail.add_argument("-n", type=int, default=20, help="how many (at most 500; default 20)")
    tail.add_argument("--follow", "-f", action="store_true", help="keep printing new entries")
    tail.add_argument("--interval", type=float, default=1.0, help=argparse.SUPPRESS)
    tail.add_argument("--json", action="store_true", help="one JSON object per line")
    tail.set_defaults(func=audit_tail)
