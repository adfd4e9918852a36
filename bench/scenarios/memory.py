"""Resident memory of one worker while it issues tokens: RSS at start, then after each chunk of
client_credentials load until --tokens have been issued. Goal: RSS <= 80 MB after them (the issue
asks for 1,000,000: ``--tokens 1000000``, about 10 minutes on one core).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from bench.common import CC_BODY, FORM, basic_auth, http, log
from bench.load import wrk_run
from bench.report import Rows, print_block
from bench.servers import create_client, issuer_instance, rate_limit_note, start_server

NAME = "memory"
LOAD_OPTIONS = True
GOAL_MB = 80.0
CHUNK_SECONDS = 10.0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tokens", type=int, default=100_000, help="tokens to issue (default 100,000)")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def run(args: argparse.Namespace) -> dict[str, Any]:
    if not 1_000 <= args.tokens <= 100_000_000:
        raise RuntimeError("--tokens must be 1,000..100,000,000")
    server_cpu, load_cpu = (0, 1) if args.pin else (None, None)
    samples: list[tuple[int, float]] = []
    with issuer_instance(args) as inst:
        client_id, secret = create_client(inst)
        headers = {**FORM, "Authorization": basic_auth(client_id, secret)}
        url = inst.base_url + "/oauth2/token"
        with start_server(inst, cpu=server_cpu) as server:
            if http("POST", url, CC_BODY, headers)[0] != 200:
                raise RuntimeError("the token request failed")
            issued, failed = 1, 0
            samples.append((issued, rss_mb(server.pid)))
            while issued < args.tokens:
                res = wrk_run(url, "POST", CC_BODY, headers, args.connections, CHUNK_SECONDS, inst.data_dir, load_cpu)
                issued += res["requests"] - res["non2xx"]
                failed += res["non2xx"] + res["socket_errors"]
                samples.append((issued, rss_mb(server.pid)))
                log(f"{issued:,} tokens, RSS {samples[-1][1]:.1f} MB")
    final = samples[-1][1]
    passed = final <= GOAL_MB and failed == 0
    shown = samples if len(samples) <= 8 else [*samples[:3], *samples[-5:]]
    rows: Rows = [
        ("server", f"1 uvicorn worker, {inst.database}, {inst.env['ISSUER_SIGNING_ALG']}"
                   + (" (server on cpu0, load on cpu1)" if args.pin else "")),
        ("rate limit", rate_limit_note(inst)),
        *[(f"RSS after {n:,} tokens", f"{mb:.1f} MB") for n, mb in shown],
        ("non-2xx and errors", str(failed)),
        ("growth", f"{final - samples[1][1]:+.1f} MB from the first chunk to the last"
                   if len(samples) > 2 else "n/a"),
        ("RSS goal", f"≤ {GOAL_MB:.0f} MB   {'PASS' if passed else 'FAIL'}"),
    ]
    print_block(f"memory: RSS of one worker over {issued:,} tokens", rows)
    return {"scenario": NAME, "samples": samples, "rss_mb": final, "tokens": issued, "failed": failed,
            "passed": passed}
