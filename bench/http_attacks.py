#!/usr/bin/env python3
"""Slow and oversized requests against a real issuer: the figures behind README "HTTP limits".

    .venv/bin/python bench/http_attacks.py [--plain-uvicorn [--uvicorn-arg=--http=h11 ...]] [--trickle 2000]

Starts one issuer on a fresh SQLite database, as ``issuer serve`` (our limits) or, with
``--plain-uvicorn``, as bare ``uvicorn --factory issuer.asgi:build`` (no limits), then
1. ten connections each send an unterminated header of ``--megabytes`` MB: prints RSS idle and peak;
2. ``--trickle`` connections trickle their request heads: prints how many are open after the deadline.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from keys.envelope import new_kek  # noqa: E402
from tests.attacks import huge_headers, rss_mib, trickle  # noqa: E402
from tests.servers import IssuerServer  # noqa: E402


class Serve(IssuerServer):
    def command(self, port: int) -> list[str]:
        return [sys.executable, "-m", "issuer.cli", "serve", "--host", self.host, "--port", str(port)]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--plain-uvicorn", action="store_true")
    p.add_argument("--uvicorn-arg", action="append", default=[], help="e.g. --uvicorn-arg=--http=h11")
    p.add_argument("--trickle", type=int, default=2000)
    p.add_argument("--megabytes", type=int, default=50)
    p.add_argument("--header-timeout", type=float, default=10.0)
    args = p.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            "ISSUER_DATABASE_URL": f"sqlite:///{tmp}/issuer.sqlite3",
            "ISSUER_KEY_ENCRYPTION_KEYS": new_kek(),
            "ISSUER_LOG_LEVEL": "WARNING",
            "ISSUER_HEADER_TIMEOUT": str(args.header_timeout),
            "ISSUER_MAX_CONNECTIONS": str(args.trickle + 100),
        }
        server = IssuerServer(env, extra_args=args.uvicorn_arg) if args.plain_uvicorn else Serve(env)
        with server:
            assert server.process is not None and server.port is not None
            pid = server.process.pid
            idle = rss_mib(pid)
            peak, answers = asyncio.run(huge_headers("127.0.0.1", server.port, pid, megabytes=args.megabytes))
            print(f"RSS idle {idle:.0f} MiB, peak under 10 x {args.megabytes} MB headers {peak:.0f} MiB "
                  f"({peak / idle:.2f}x); answers: {sorted({a[:40] for a in answers})}")
            wait = args.header_timeout + 2
            opened, still = asyncio.run(trickle("127.0.0.1", server.port, connections=args.trickle, wait=wait))
            print(f"trickling heads: {opened} opened, {still} still open after {wait:g}s")
            opened, still = asyncio.run(
                trickle("127.0.0.1", server.port, connections=args.trickle, wait=wait, body=True)
            )
            print(f"trickling bodies: {opened} opened, {still} still open after {wait:g}s")


if __name__ == "__main__":
    main()
