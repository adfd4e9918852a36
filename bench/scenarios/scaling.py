"""Scaling out on this machine: one worker pinned to cpu0 (load on cpu1), then ``--workers 2`` on
both cores (load unpinned, so it shares them), same client_credentials load, same data and key.
Goal: two workers >= 1.8 x one pinned worker, 0 non-2xx. On a 2-core machine the load generator
takes its share of the two cores in the second run, so this understates what two dedicated cores
give; instances behind a load balancer add their cores the same way (client_credentials needs no
database round trip). With --rounds N the pair of runs is repeated N times, each round's ratio
printed, the median deciding (the machine's speed drifts by more than the goal's margin within minutes).
"""

from __future__ import annotations

import argparse
import statistics
from typing import Any

from bench.common import CC_BODY, FORM, WARMUP_SECONDS, basic_auth, http, log
from bench.cpu import CORES, wait_for_quiet
from bench.load import run_load
from bench.report import Rows, errors, fmt_ratio, load_rows, print_block, ratio, summary
from bench.servers import Instance, create_client, issuer_instance, rate_limit_note, start_server

NAME = "scaling"
GOAL = 1.8


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workers", type=int, default=2, help="workers of the second run (default 2)")


def _children(pid: int) -> list[int]:
    """The supervisor's workers (not multiprocessing's resource tracker, also its child)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            children = [int(x) for x in f.read().split()]
        return [c for c in children if b"resource_tracker" not in open(f"/proc/{c}/cmdline", "rb").read()]
    except OSError:
        return []


def run(args: argparse.Namespace) -> dict[str, Any]:
    if CORES < 2:
        raise RuntimeError("scaling needs at least two cores")
    with issuer_instance(args) as inst:
        client_id, secret = create_client(inst)
        headers = {"Authorization": basic_auth(client_id, secret)}
        url = inst.base_url + "/oauth2/token"
        pairs: list[tuple[dict[str, Any], dict[str, Any]]] = []
        count = args.rounds or 1
        for number in range(1, count + 1):
            if count > 1:
                log(f"round {number} of {count}")
            runs = _pair(args, inst, url, headers)
            pairs.append((runs[1], runs[args.workers]))
    scales = [ratio(many["ok_per_s"], one["ok_per_s"]) or 0.0 for one, many in pairs]
    # The median round stands for the run (the lower of the middle two for an even count).
    one, many = pairs[sorted(range(len(pairs)), key=scales.__getitem__)[(len(pairs) - 1) // 2]]
    scale = statistics.median(scales)
    passed = scale >= GOAL and not any(errors(a) or errors(b) for a, b in pairs)
    rows: Rows = [
        ("rate limit", rate_limit_note(inst)),
        ("run 1", "1 worker pinned to cpu0 (taskset at exec), wrk on cpu1"),
        *load_rows(one, "tokens"),
        ("run 2", f"{args.workers} workers, the server on cpus 0-{CORES - 1}, wrk unpinned (shares the cores); "
                  "server CPU = supervisor + workers"),
        *load_rows(many, "tokens"),
    ]
    if len(pairs) > 1:
        rows.insert(1, ("rounds", f"{len(pairs)}; below, the median round, then each round"))
        for n, ((a, b), r) in enumerate(zip(pairs, scales, strict=True), 1):
            rows.append((f"round {n}", f"{a['ok_per_s']:,.0f} → {b['ok_per_s']:,.0f} tokens/s, "
                                       f"{errors(a) + errors(b)} errors: {fmt_ratio(r)}"))
    label = f"{args.workers} workers ÷ 1 pinned worker" + (f" (median of {len(pairs)})" if len(pairs) > 1 else "")
    rows.append((label, fmt_ratio(scale, f"≥ {GOAL}", passed)))
    print_block(f"scaling: client_credentials, 1 pinned worker vs {args.workers} workers", rows)
    return {"scenario": NAME, "one": summary(one), "many": summary(many), "workers": args.workers,
            "ratio": scale, "goal": GOAL, "passed": passed,
            "rounds": [{"one": summary(a), "many": summary(b), "ratio": r}
                       for (a, b), r in zip(pairs, scales, strict=True)]}


def _pair(args: argparse.Namespace, inst: Instance, url: str, headers: dict[str, str]) -> dict[int, dict[str, Any]]:
    """One worker pinned to cpu0 (load on cpu1), then --workers on every core (load unpinned)."""
    runs: dict[int, dict[str, Any]] = {}
    for workers, cpus, load_cpu in ((1, "0", 1), (args.workers, f"0-{CORES - 1}", None)):
        with start_server(inst, cpu=cpus, workers=workers) as server:
            status, body = http("POST", url, CC_BODY, {**FORM, **headers})
            if status != 200:
                raise RuntimeError(f"token request answered {status}: {body[:300]!r}")
            if args.wait_idle:
                wait_for_quiet(min(args.wait_idle, 10))
            log(f"{workers} worker(s) on cpus {cpus}: {WARMUP_SECONDS:g} s warm-up + {args.seconds:g} s")
            if workers == 1:
                res = run_load(args, url, CC_BODY, headers, inst.data_dir, cpu=load_cpu, watch_pid=server.pid)
            else:  # the supervisor and each worker process, summed below
                tree = {f"worker{i}": p for i, p in enumerate(_children(server.pid), 1)}
                res = run_load(args, url, CC_BODY, headers, inst.data_dir, cpu=load_cpu,
                               also_watch={"supervisor": server.pid, **tree})
                busy = sum(v for k, v in res["cores"].items() if k != "loadgen")
                res["server_cores"] = busy
                res["server_cpu_ms_per_req"] = busy * res["cpu_window_s"] / res["requests"] * 1e3
            runs[workers] = res
    return runs
