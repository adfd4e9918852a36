#!/usr/bin/env python3
"""Login latency while /register is flooded: is password hashing a budget, not a queue?

    .venv/bin/python bench/login_flood.py [--connections 200] [--warmup 3] [--logins 40]

Starts a throw-away issuer (SQLite, ONE uvicorn worker, the default argon2id parameters and hash
concurrency), creates a first-party client and one user, then measures the password-grant login
latency (sequential logins, one at a time):
  1. idle;
  2. while --connections keep-alive connections from another process POST /register as fast as
     they are answered (each a new username, so every request would be a hash), all logins
     falling inside the flood (it starts --warmup seconds before them and stops after them).
The registration rate limits (ISSUER_RATE_LIMIT_REGISTER_PER_IP/_GLOBAL) and the login limits are
switched OFF for the run, so what is measured is the hash budget (login priority, bounded queue,
503 shedding, and the pause before a refusal: --pause 0 shows the budget without it), not the
limiter in front of it. Prints both p50s, their ratio (goal <= 2) and the
flood's status counts (201 created, 503 shed, ...).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import secrets
import statistics
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import HOST, create_client, http, issuer_instance, log, run_cli, start_server, stop_process  # noqa: E402

PASSWORD = "bench-login-password-7"


async def _flood(port: int, connections: int, seconds: float, stop_file: str) -> dict[str, int]:
    counts: collections.Counter[str] = collections.Counter()
    stop = time.monotonic() + seconds

    async def watch() -> None:
        nonlocal stop
        while time.monotonic() < stop:
            if Path(stop_file).exists():
                stop = 0.0
            await asyncio.sleep(0.05)
    tag = secrets.token_hex(3)

    async def one(i: int) -> None:
        n = 0
        while time.monotonic() < stop:
            try:
                reader, writer = await asyncio.open_connection(HOST, port)
            except OSError:
                counts["connect-error"] += 1
                await asyncio.sleep(0.05)
                continue
            try:
                while time.monotonic() < stop:
                    n += 1
                    body = json.dumps({"username": f"flood-{tag}-{i}-{n}", "password": "flood-password-q9z"}).encode()
                    writer.write(
                        b"POST /register HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
                        b"Content-Length: %d\r\n\r\n%s" % (HOST.encode(), port, len(body), body)
                    )
                    await writer.drain()
                    status = int((await reader.readline()).split()[1])
                    length = 0
                    while (line := await reader.readline()) not in (b"\r\n", b""):
                        if line.lower().startswith(b"content-length:"):
                            length = int(line.split(b":")[1])
                    await reader.readexactly(length)
                    counts[str(status)] += 1
            except (OSError, asyncio.IncompleteReadError, IndexError, ValueError):
                counts["dropped"] += 1
            finally:
                writer.close()

    await asyncio.gather(watch(), *(one(i) for i in range(connections)))
    return dict(counts)


def login_latencies(inst_url: str, client: tuple[str, str], count: int) -> list[float]:
    body = urllib.parse.urlencode({"grant_type": "password", "username": "bench-user", "password": PASSWORD,
                                   "client_id": client[0], "client_secret": client[1]})
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    times, failures = [], collections.Counter()
    for _ in range(count):
        started = time.perf_counter()
        status, _ = http("POST", inst_url + "/oauth2/token", body, form, timeout=30)
        times.append((time.perf_counter() - started) * 1000)
        if status != 200:
            failures[status] += 1
        time.sleep(0.05)
    if failures:
        log(f"login failures: {dict(failures)}")
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of flood before measuring")
    parser.add_argument("--logins", type=int, default=40, help="logins measured in each phase")
    parser.add_argument("--pause", type=float, default=None,
                        help="ISSUER_REGISTER_REFUSAL_PAUSE for the server (default: the setting's default, 1 s)")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--_flood", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._flood:
        spec = json.loads(args._flood)
        print(json.dumps(asyncio.run(_flood(spec["port"], spec["connections"], spec["seconds"], spec["stop"]))))
        return
    args.database_url = ""
    off = {name: "0" for name in ("ISSUER_RATE_LIMIT_REGISTER_PER_IP", "ISSUER_RATE_LIMIT_REGISTER_GLOBAL",
                                  "ISSUER_RATE_LIMIT_LOGIN_PER_USER", "ISSUER_RATE_LIMIT_LOGIN_PER_IP")}
    if args.pause is not None:
        off["ISSUER_REGISTER_REFUSAL_PAUSE"] = str(args.pause)
    with issuer_instance(args, **off) as inst:
        client = create_client(inst, "first-party", grant_types=("password",))
        run_cli(inst, "users", "create", "--username", "bench-user", "--password-stdin", stdin=PASSWORD + "\n")
        with start_server(inst) as server:
            login_latencies(inst.base_url, client, 5)  # warm-up
            idle = login_latencies(inst.base_url, client, args.logins)
            log(f"idle login p50 {statistics.median(idle):.1f} ms; starting the flood")
            stop_file = inst.data_dir / "stop-flood"
            spec = json.dumps({"port": inst.port, "connections": args.connections, "seconds": 600,
                               "stop": str(stop_file)})
            flood = subprocess.Popen([sys.executable, __file__, "--_flood", spec], stdout=subprocess.PIPE, text=True,
                                     start_new_session=True)
            try:
                time.sleep(args.warmup)
                flood_started = time.monotonic()
                loaded = login_latencies(inst.base_url, client, args.logins)
                measured = time.monotonic() - flood_started
                if flood.poll() is not None:
                    raise RuntimeError("the flood ended before the logins were measured")
                stop_file.touch()
                out, _ = flood.communicate(timeout=60)
            finally:
                stop_process(flood, "flood")
            counts = json.loads(out or "{}")
            del server
    from issuer.settings import Settings

    threads = Settings(_env_file=None).hash_threads  # type: ignore[call-arg]
    p50_idle, p50_flood = statistics.median(idle), statistics.median(loaded)
    print(f"login p50 idle:            {p50_idle:8.1f} ms  (p90 {statistics.quantiles(idle, n=10)[-1]:.1f} ms)")
    print(f"login p50 under the flood: {p50_flood:8.1f} ms  (p90 {statistics.quantiles(loaded, n=10)[-1]:.1f} ms)"
          f"  ratio {p50_flood / p50_idle:.2f} (goal <= 2)")
    pause = args.pause if args.pause is not None else Settings(_env_file=None).register_refusal_pause  # type: ignore[call-arg]
    print(f"hash concurrency (from CPU quota and memory limit): {threads}; refusal pause {pause} s")
    print(f"flood: {args.connections} connections, {args.warmup:.0f} s before and {measured:.0f} s during the "
          f"logins, registration rate limits off; "
          f"responses {dict(sorted(counts.items()))}; 503 shed: {counts.get('503', 0)}")


if __name__ == "__main__":
    main()
