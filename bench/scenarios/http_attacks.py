"""Slow and oversized requests against a real issuer: the figures behind README "HTTP limits".

Starts one issuer on a fresh SQLite database, as ``issuer serve`` (our limits) or, with
``--plain-uvicorn``, as bare ``uvicorn --factory issuer.asgi:build`` (no limits), then
1. ten connections each send an unterminated header of ``--megabytes`` MB: prints RSS idle and peak;
2. ``--trickle`` connections trickle their request heads, then their bodies: prints how many are
   still open 2 s after the deadline (``--header-timeout``, for heads and bodies).
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import tempfile
from typing import Any

from bench.common import HOST
from bench.report import print_block
from keys.envelope import new_kek
from tests.attacks import huge_headers, rss_mib, trickle
from tests.servers import IssuerServer

NAME = "http_attacks"
LOAD_OPTIONS = False


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--plain-uvicorn", action="store_true", help="bare uvicorn instead of issuer serve")
    p.add_argument("--uvicorn-arg", action="append", default=[], help="e.g. --uvicorn-arg=--http=h11")
    p.add_argument("--trickle", type=int, default=2000, help="trickling connections (2000)")
    p.add_argument("--megabytes", type=int, default=50, help="size of each unterminated header (50)")
    p.add_argument("--header-timeout", type=float, default=10.0,
                   help="ISSUER_HEADER_TIMEOUT and ISSUER_BODY_TIMEOUT (10)")


class Serve(IssuerServer):
    def command(self, port: int) -> list[str]:
        return [sys.executable, "-m", "issuer.cli", "serve", "--host", self.host, "--port", str(port)]


def run(args: argparse.Namespace) -> dict[str, Any]:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            "ISSUER_DATABASE_URL": f"sqlite:///{tmp}/issuer.sqlite3",
            "ISSUER_KEY_ENCRYPTION_KEYS": new_kek(),
            "ISSUER_LOG_LEVEL": "WARNING",
            "ISSUER_HEADER_TIMEOUT": str(args.header_timeout),
            "ISSUER_BODY_TIMEOUT": str(args.header_timeout),
            "ISSUER_MAX_CONNECTIONS": str(args.trickle + 100),
        }
        server = IssuerServer(env, extra_args=args.uvicorn_arg) if args.plain_uvicorn else Serve(env)
        with server:
            assert server.process is not None and server.port is not None
            pid = server.process.pid
            idle = rss_mib(pid)
            peak, answers = asyncio.run(huge_headers(HOST, server.port, pid, megabytes=args.megabytes))
            wait = args.header_timeout + 2
            heads = asyncio.run(trickle(HOST, server.port, connections=args.trickle, wait=wait))
            bodies = asyncio.run(trickle(HOST, server.port, connections=args.trickle, wait=wait, body=True))
    rows = [
        ("server", "bare uvicorn --factory issuer.asgi:build" if args.plain_uvicorn else "issuer serve"),
        ("RSS idle / peak", f"{idle:.0f} MiB / {peak:.0f} MiB under 10 × {args.megabytes} MB headers "
                            f"({peak / idle:.2f}×)"),
        ("answers", str(sorted({a[:40] for a in answers}))),
        ("trickling heads", f"{heads[0]} opened, {heads[1]} still open after {wait:g} s"),
        ("trickling bodies", f"{bodies[0]} opened, {bodies[1]} still open after {wait:g} s"),
    ]
    print_block("http_attacks (slow and oversized requests)", rows)
    return {"scenario": NAME, "rss_idle_mib": idle, "rss_peak_mib": peak, "heads_open": heads[1],
            "bodies_open": bodies[1]}
