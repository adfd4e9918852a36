"""client_credentials at a fixed open-loop rate (--cc-rate, latency counted from the scheduled send
time), alone, then beside a flood of --login-connections concurrent password logins from another
process, then alone again. Goal: p99 with the flood <= 2x the p99 alone.
"""

from __future__ import annotations

import argparse
import math
from typing import Any

from bench.common import CC_BODY, SCOPES, WARMUP_SECONDS, basic_auth, form_post, log, password_body
from bench.cpu import wait_for_quiet
from bench.load import GenProcess, run_gen
from bench.report import Rows, cores_line, errors, fmt_ms, print_block, summary
from bench.servers import (
    NO_RATE_LIMITS,
    create_client,
    create_public_client,
    create_user,
    hash_env_passthrough,
    instance_settings,
    issuer_instance,
    start_server,
)

NAME = "flood"
GOAL = 2.0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cc-rate", type=float, default=200.0,
                   help="fixed client_credentials request rate of 'flood', req/s (default 200)")


def run(args: argparse.Namespace) -> dict[str, Any]:
    if not 1 <= args.cc_rate <= 5000:
        raise RuntimeError("--cc-rate must be 1..5000")
    server_cpu, load_cpu = (0, 1) if args.pin else (None, None)
    with issuer_instance(args, **NO_RATE_LIMITS, **hash_env_passthrough()) as inst:
        st = instance_settings(inst)
        cc_id, cc_secret = create_client(inst)
        cc_headers = {"Authorization": basic_auth(cc_id, cc_secret)}
        public_id = create_public_client(inst, grant_types=("password", "refresh_token"))
        username, password = create_user(inst)
        token_url = inst.base_url + "/oauth2/token"
        with start_server(inst, cpu=server_cpu) as server:
            for body, hdrs in ((CC_BODY, cc_headers), (password_body(public_id, username, password), {})):
                status, data = form_post(token_url, body, hdrs)
                if status != 200:
                    raise RuntimeError(f"token endpoint answered {status}: {data}")
            cc_spec = {"mode": "open", "url": token_url, "body": CC_BODY, "headers": cc_headers,
                       "rate": args.cc_rate, "connections": 16, "warmup": WARMUP_SECONDS, "seconds": args.seconds}
            flood_spec = {"mode": "login", "url": token_url, "client_id": public_id, "username": username,
                          "password": password, "scope": " ".join(SCOPES), "connections": args.login_connections,
                          "warmup": 1.0, "seconds": WARMUP_SECONDS + args.seconds + 30}
            watch = {"server": server.pid}

            def alone(label: str) -> dict[str, Any]:
                if args.wait_idle:
                    wait_for_quiet(min(args.wait_idle, 15))
                log(f"client_credentials alone ({label}): {args.cc_rate:g} req/s open loop, "
                    f"{WARMUP_SECONDS:g} s warm-up + {args.seconds:g} s")
                return run_gen(cc_spec, inst.data_dir, load_cpu, "ccgen", watch)

            before = alone("before")
            log(f"client_credentials with a login flood of {args.login_connections} connections")
            with GenProcess(flood_spec, inst.data_dir, load_cpu, "floodgen") as flood:
                flood.wait_for("measure-start")
                flooded = run_gen(cc_spec, inst.data_dir, load_cpu, "ccgen", {**watch, "flood": flood.pid})
                flood.stop_early()
                flood.wait_for("measure-end")
                flood_res = flood.result()
            after = alone("after")
            if server.poll() is not None:
                raise RuntimeError("the server died during the run")

    base_p99 = (before["p99_ms"] + after["p99_ms"]) / 2
    p99_ratio = flooded["p99_ms"] / base_p99 if base_p99 else math.inf
    n_errors = sum(errors(r) for r in (before, flooded, after))
    passed = p99_ratio <= GOAL and n_errors == 0
    result: dict[str, Any] = {
        "scenario": NAME, "cc_rate": args.cc_rate, "login_connections": args.login_connections,
        "alone_before": summary(before), "flooded": summary(flooded), "alone_after": summary(after),
        "flood_logins_per_s": flood_res["ok_per_s"], "flood_errors": errors(flood_res), "p99_ratio": p99_ratio,
        "goal": GOAL, "errors": n_errors, "passed": passed, "database": inst.database,
        "argon2": {"t": st.argon2_time_cost, "m_kib": st.argon2_memory_kib, "p": st.argon2_parallelism,
                   "threads": st.hash_threads},
    }

    def line(r: dict[str, Any]) -> str:
        return (f"p50 {fmt_ms(r['p50_ms'])}   p99 {fmt_ms(r['p99_ms'])}   (max {fmt_ms(r['max_ms'])}; "
                f"{r['ok_per_s']:,.1f} ok/s of {args.cc_rate:g} scheduled; non-2xx and errors {errors(r)})")

    rows: Rows = [
        ("server", f"1 uvicorn worker, {inst.database}, rate limits off, argon2id t={st.argon2_time_cost} "
                   f"m={st.argon2_memory_kib} KiB p={st.argon2_parallelism}, {st.hash_threads} hash threads"
                   + (" (server on cpu0, loads on cpu1)" if args.pin else "")),
        ("cc load", f"{before['loadgen']}; latency from the scheduled send time"),
        ("login flood", f"{flood_res['loadgen']} (closed loop, separate process)"),
        ("cc alone, before", line(before)),
        ("  CPU", cores_line(before)),
        ("cc with login flood", line(flooded)),
        ("  CPU", cores_line(flooded)),
        ("  flood achieved", f"{flood_res['ok_per_s']:,.1f} logins/s, p50 {fmt_ms(flood_res['p50_ms'])}, "
                             f"errors {errors(flood_res)}"),
        ("cc alone, after", line(after)),
        ("  CPU", cores_line(after)),
        ("p50 flood ÷ alone", f"{flooded['p50_ms'] / ((before['p50_ms'] + after['p50_ms']) / 2):.2f}×"),
        ("p99 flood ÷ alone (mean)", f"{p99_ratio:.2f}×   (vs before {flooded['p99_ms'] / before['p99_ms']:.2f}×, "
                                     f"vs after {flooded['p99_ms'] / after['p99_ms']:.2f}×)   goal ≤ {GOAL:g}×   "
                                     f"{'PASS' if passed else 'FAIL'}"),
    ]
    print_block("flood (client_credentials p99 at a fixed rate, with and without a login flood)", rows)
    return result
