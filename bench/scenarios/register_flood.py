"""Login latency while /register is flooded: is password hashing a budget, not a queue?

Starts a throw-away issuer (SQLite, ONE uvicorn worker, the default argon2id parameters and hash
concurrency), creates a first-party client and one user, then measures the password-grant login
latency (sequential logins, one at a time):
  1. idle;
  2. while --connections keep-alive connections from another process POST /register as fast
     as they are answered (each a new username, so every request would be a hash), all logins
     falling inside the flood (it starts --warmup seconds before them and stops after them).
The registration and login rate limits are switched OFF for the run, so what is measured is the
hash budget (login priority, bounded queue, 503 shedding, and the pause before a refusal: --pause 0
shows the budget without it), not the limiter in front of it. Prints both p50s, their ratio (goal
<= 2) and the flood's status counts (201 created, 503 shed, ...).
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics
import subprocess
import time
import urllib.parse
from typing import Any

from bench import ROOT
from bench.common import FORM, PYTHON, http, log, stop_process
from bench.report import print_block
from bench.servers import create_client, create_user, instance_settings, issuer_instance, start_server

NAME = "register_flood"
LOAD_OPTIONS = False  # its own --connections and --warmup, as bench/login_flood.py had
PASSWORD = "bench-login-password-7"
NO_LIMITS = {name: "0" for name in ("ISSUER_RATE_LIMIT_REGISTER_PER_IP", "ISSUER_RATE_LIMIT_REGISTER_GLOBAL",
                                    "ISSUER_RATE_LIMIT_LOGIN_PER_USER", "ISSUER_RATE_LIMIT_LOGIN_PER_IP")}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--connections", type=int, default=200, help="connections flooding /register (200)")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds of flood before measuring (3)")
    p.add_argument("--logins", type=int, default=40, help="logins measured in each phase (40)")
    p.add_argument("--pause", type=float, default=None,
                   help="ISSUER_REGISTER_REFUSAL_PAUSE for the server (default: the setting's default, 1 s)")


def login_latencies(base_url: str, client: tuple[str, str], count: int) -> list[float]:
    body = urllib.parse.urlencode({"grant_type": "password", "username": "bench-user", "password": PASSWORD,
                                   "client_id": client[0], "client_secret": client[1]})
    times: list[float] = []
    failures: collections.Counter[int] = collections.Counter()
    for _ in range(count):
        started = time.perf_counter()
        status, _ = http("POST", base_url + "/oauth2/token", body, FORM, timeout=30)
        times.append((time.perf_counter() - started) * 1000)
        if status != 200:
            failures[status] += 1
        time.sleep(0.05)
    if failures:
        log(f"login failures: {dict(failures)}")
    return times


def run(args: argparse.Namespace) -> dict[str, Any]:
    env = dict(NO_LIMITS)
    if args.pause is not None:
        env["ISSUER_REGISTER_REFUSAL_PAUSE"] = str(args.pause)
    with issuer_instance(args, **env) as inst:
        settings = instance_settings(inst)
        client = create_client(inst, "first-party", grant_types=("password",))
        create_user(inst, "bench-user", PASSWORD)
        with start_server(inst):
            login_latencies(inst.base_url, client, 5)  # warm-up
            idle = login_latencies(inst.base_url, client, args.logins)
            log(f"idle login p50 {statistics.median(idle):.1f} ms; starting the flood")
            stop_file = inst.data_dir / "stop-flood"
            spec = json.dumps({"port": inst.port, "connections": args.connections, "seconds": 600,
                               "stop": str(stop_file)})
            proc = subprocess.Popen([PYTHON, "-m", "bench.registergen", spec], cwd=ROOT,
                                    stdout=subprocess.PIPE, text=True, start_new_session=True)
            try:
                time.sleep(args.warmup)
                flood_started = time.monotonic()
                loaded = login_latencies(inst.base_url, client, args.logins)
                measured = time.monotonic() - flood_started
                if proc.poll() is not None:
                    raise RuntimeError("the flood ended before the logins were measured")
                stop_file.touch()
                out, _ = proc.communicate(timeout=60)
            finally:
                stop_process(proc, "flood")
    counts: dict[str, int] = json.loads(out or "{}")
    p50_idle, p50_flood = statistics.median(idle), statistics.median(loaded)
    p90_idle, p90_flood = statistics.quantiles(idle, n=10)[-1], statistics.quantiles(loaded, n=10)[-1]
    rows = [
        ("login p50 idle", f"{p50_idle:.1f} ms   (p90 {p90_idle:.1f} ms)"),
        ("login p50 under the flood", f"{p50_flood:.1f} ms   (p90 {p90_flood:.1f} ms)"),
        ("p50 flood ÷ idle", f"{p50_flood / p50_idle:.2f}   goal ≤ 2"),
        ("hash concurrency", f"{settings.hash_threads} (from CPU quota and memory limit); "
                             f"refusal pause {settings.register_refusal_pause} s"),
        ("flood", f"{args.connections} connections, {args.warmup:.0f} s before and {measured:.0f} s "
                  "during the logins, registration rate limits off"),
        ("flood answers", f"{dict(sorted(counts.items()))}; 503 shed: {counts.get('503', 0)}"),
    ]
    print_block("register_flood (password logins while /register is flooded)", rows)
    return {"scenario": NAME, "p50_idle_ms": p50_idle, "p50_flood_ms": p50_flood, "flood_answers": counts,
            "passed": p50_flood / p50_idle <= 2.0}
