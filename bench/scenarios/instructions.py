"""Instructions the issuer executes per request (valgrind's callgrind): an A/B that noise cannot move.

CPU time per request drifts by ±15 % between runs on these 2-core KVM machines, more while anything
else runs. callgrind counts the instructions the server process executes in user space (Python,
OpenSSL, libuv; not the kernel), which repeat to well under 1 % whatever else the machine does.
`issuer serve` runs under callgrind twice: once serving --warmup requests, once --warmup +
--requests, each over 8 keep-alive connections; the difference divided by --requests is the cost of
one request, startup and shutdown cancelled out. With --baseline-src DIR, the same for DIR's code on
the same data. Endpoints: token (client_credentials with the --alg key), introspect (the same token
each time), jwks (304 to If-None-Match) and healthz. About 2 minutes per server run (valgrind runs
Python some 50 times slower); needs valgrind (apt-get install valgrind).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

from bench.common import (
    CC_BODY,
    FORM,
    HOST,
    PYTHON,
    basic_auth,
    http,
    log,
    response_header,
    stop_process,
    wait_http_ok,
)
from bench.report import Rows, print_block
from bench.servers import Instance, create_client, issuer_instance, rate_limit_note, start_server

NAME = "instructions"
IN_ALL = False  # several minutes per server: run on purpose
CONNECTIONS = 8
ENDPOINTS = ("token", "introspect", "jwks", "healthz")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--endpoint", choices=ENDPOINTS, action="append",
                   help="what to request (repeatable; default: token)")
    p.add_argument("--requests", type=int, default=800, help="requests counted per server run (default 800)")
    p.add_argument("--warmup", type=int, default=200, help="requests of both runs, cancelled out (default 200)")


def _request(endpoint: str, inst: Instance, client_id: str, secret: str) -> bytes:
    host = f"Host: {HOST}:{inst.port}\r\n".encode()
    auth = f"Authorization: {basic_auth(client_id, secret)}\r\n".encode()
    if endpoint in ("token", "introspect"):
        if endpoint == "token":
            path, body = b"/oauth2/token", CC_BODY.encode()
        else:
            status, answer = http("POST", inst.base_url + "/oauth2/token", CC_BODY,
                                  {**FORM, "Authorization": basic_auth(client_id, secret)})
            if status != 200:
                raise RuntimeError(f"token request answered {status}")
            path, body = b"/oauth2/introspect", b"token=" + json.loads(answer)["access_token"].encode()
        return (b"POST " + path + b" HTTP/1.1\r\n" + host + auth
                + b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: "
                + str(len(body)).encode() + b"\r\n\r\n" + body)
    if endpoint == "jwks":
        etag = response_header(inst.base_url + "/.well-known/jwks.json", "ETag") or ""
        return b"GET /.well-known/jwks.json HTTP/1.1\r\n" + host + b"If-None-Match: " + etag.encode() + b"\r\n\r\n"
    return b"GET /healthz HTTP/1.1\r\n" + host + b"\r\n"


async def _send(port: int, request: bytes, count: int, expect: bytes) -> None:
    async def one(n: int) -> None:
        reader, writer = await asyncio.open_connection(HOST, port)
        try:
            for _ in range(n):
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                if not head.startswith(expect):
                    raise RuntimeError(f"unexpected answer: {head[:200]!r}")
                length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
                await reader.readexactly(int(length.group(1)) if length else 0)
        finally:
            writer.close()

    share, extra = divmod(count, CONNECTIONS)
    await asyncio.gather(*(one(share + (i < extra)) for i in range(CONNECTIONS)))


def _count(inst: Instance, source: Path | None, request: bytes, expect: bytes, count: int, tag: str) -> int:
    """Instructions of one whole server run (start, ``count`` requests, graceful stop)."""
    out = inst.data_dir / f"callgrind-{tag}-{count}.log"
    env = {**inst.env, "PYTHONPATH": str(source)} if source else inst.env
    proc = subprocess.Popen(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", f"--log-file={out}",
         PYTHON, "-m", "issuer.cli", "serve", "--host", HOST, "--port", str(inst.port)],
        env=env, cwd=inst.data_dir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_http_ok(inst.base_url + "/healthz", proc, 600.0, "issuer under callgrind", out)
        asyncio.run(_send(inst.port, request, count, expect))
        proc.send_signal(signal.SIGINT)
        proc.wait(300)
    finally:
        stop_process(proc, "issuer under callgrind")
    found = re.search(r"Collected : (\d+)", out.read_text())
    if found is None:
        raise RuntimeError(f"callgrind printed no total ({out})")
    return int(found.group(1))


def _per_request(inst: Instance, source: Path | None, request: bytes, expect: bytes,
                 args: argparse.Namespace, tag: str) -> float:
    log(f"{tag}: {args.warmup} requests under callgrind, then {args.warmup + args.requests}")
    small = _count(inst, source, request, expect, args.warmup, tag)
    big = _count(inst, source, request, expect, args.warmup + args.requests, tag)
    return (big - small) / int(args.requests)


def run(args: argparse.Namespace) -> dict[str, Any]:
    if shutil.which("valgrind") is None:
        raise RuntimeError("valgrind is not on PATH (apt-get install valgrind)")
    endpoints = args.endpoint or ["token"]
    result: dict[str, Any] = {"scenario": NAME, "requests": args.requests, "endpoints": {}, "passed": True}
    with issuer_instance(args) as inst:
        client_id, secret = create_client(inst, grant_types=("client_credentials",))
        rows: Rows = [
            ("method", f"callgrind, `issuer serve` (1 worker, {inst.database}, {args.alg}, log level "
                       f"{inst.env['ISSUER_LOG_LEVEL']}); ({args.warmup} + {args.requests}) − {args.warmup} "
                       f"requests over {CONNECTIONS} keep-alive connections"),
            ("rate limit", rate_limit_note(inst)),
        ]
        for endpoint in endpoints:
            with start_server(inst):  # the request is built against a plain server: a token, the ETag
                request = _request(endpoint, inst, client_id, secret)
            expect = b"HTTP/1.1 304" if endpoint == "jwks" else b"HTTP/1.1 200"
            ours = _per_request(inst, None, request, expect, args, f"{endpoint}-ours")
            figures: dict[str, float] = {"ours": ours}
            text = f"{ours:,.0f} instructions per request"
            if args.baseline_src:
                base = _per_request(inst, args.baseline_src, request, expect, args, f"{endpoint}-baseline")
                figures["baseline"] = base
                text += f"; baseline {base:,.0f}: {(ours - base) / base:+.1%}"
            result["endpoints"][endpoint] = figures
            rows.append((endpoint, text))
        if args.baseline_src:
            rows.append(("baseline code", f"{args.baseline_src} (same data, key and client)"))
    print_block("instructions per request (callgrind)", rows)
    return result
