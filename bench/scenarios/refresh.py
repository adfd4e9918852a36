"""Refresh-token rotations/s on PostgreSQL, beside client_credentials tokens/s of the same server.

A throw-away database bench_<random> is created through --pg-admin-url and dropped WITH (FORCE)
afterwards, unless --database-url names one. Each of --connections connections logs in once, then
rotates its own chain (the new refresh token from each response is the next one presented, so none
is reused). Goal >= 1,500 rotations/s with one worker and 0 errors. With --baseline-src DIR, the
same refresh load again on a server running DIR's code (same database, user and client, after ours).
"""

from __future__ import annotations

import argparse
import urllib.parse
from typing import Any

from bench.common import CC_BODY, SCOPES, WARMUP_SECONDS, basic_auth, form_post, log, password_body, pg_execute
from bench.cpu import CORES, wait_for_quiet
from bench.load import run_gen, run_load
from bench.report import Rows, errors, fmt_ratio, fmt_us, gen_label, load_rows, print_block, ratio, summary
from bench.servers import (
    NO_RATE_LIMITS,
    create_client,
    create_public_client,
    create_user,
    issuer_instance,
    postgres_database,
    start_server,
)

NAME = "refresh"
GOAL = 1500.0  # per worker (issue 11)
CONSUMED = "SELECT count(*) AS n FROM refresh_tokens WHERE consumed_at IS NOT NULL"


def add_arguments(p: argparse.ArgumentParser) -> None:
    pass


def _check_by_hand(token_url: str, public_id: str, username: str, password: str) -> None:
    """A login and two rotations must work, each giving a new refresh token."""
    status, data = form_post(token_url, password_body(public_id, username, password))
    if status != 200 or "refresh_token" not in data:
        raise RuntimeError(f"password grant answered {status}: {data}")
    rt = data["refresh_token"]
    for _ in range(2):
        status, data = form_post(token_url, urllib.parse.urlencode(
            {"grant_type": "refresh_token", "refresh_token": rt, "client_id": public_id}))
        if status != 200 or data.get("refresh_token") in (None, rt):
            raise RuntimeError(f"refresh grant answered {status}: {data}")
        rt = data["refresh_token"]


def run(args: argparse.Namespace) -> dict[str, Any]:
    server_cpu, load_cpu = (0, 1) if args.pin else (None, None)
    with postgres_database(args) as (db_url, throwaway), \
            issuer_instance(args, database_url=db_url if throwaway else None, **NO_RATE_LIMITS) as inst:
        cc_id, cc_secret = create_client(inst)
        public_id = create_public_client(inst)
        username, password = create_user(inst)
        token_url = inst.base_url + "/oauth2/token"
        with start_server(inst, cpu=server_cpu) as server:
            _check_by_hand(token_url, public_id, username, password)
            log(f"server pid {server.pid} on {inst.base_url}; PostgreSQL "
                f"{'throw-away ' if throwaway else ''}database {urllib.parse.urlsplit(db_url).path.lstrip('/')}")
            if args.wait_idle:
                wait_for_quiet(args.wait_idle)
            log(f"baseline: client_credentials, {WARMUP_SECONDS:g} s warm-up + {args.seconds:g} s")
            cc = run_load(args, token_url, CC_BODY, {"Authorization": basic_auth(cc_id, cc_secret)}, inst.data_dir,
                          cpu=load_cpu, watch_pid=server.pid)
            consumed0 = pg_execute(db_url, CONSUMED)[0][0]["n"]
            if args.wait_idle:
                wait_for_quiet(min(args.wait_idle, 10))
            log(f"refresh: {args.connections} chains (one login each), {WARMUP_SECONDS:g} s warm-up + "
                f"{args.seconds:g} s")
            spec = {"mode": "refresh", "url": token_url, "client_id": public_id, "username": username,
                    "password": password, "scope": " ".join(SCOPES), "connections": args.connections,
                    "warmup": WARMUP_SECONDS, "seconds": args.seconds}
            load = run_gen(spec, inst.data_dir, load_cpu, "refreshgen", {"server": server.pid}, pg_url=db_url)
            consumed = pg_execute(db_url, CONSUMED)[0][0]["n"] - consumed0
            if server.poll() is not None:
                raise RuntimeError("the server died during the run")
        base = None
        if args.baseline_src:
            log(f"baseline server: issuer code from {args.baseline_src}, the same refresh load")
            with start_server(inst, cpu=server_cpu, source=args.baseline_src) as baseline:
                base = run_gen(spec, inst.data_dir, load_cpu, "refreshgen", {"server": baseline.pid}, pg_url=db_url)

    rate = load["ok_per_s"]
    passed = rate >= GOAL and errors(load) == 0
    cc_cpu, rt_cpu = cc.get("server_cpu_ms_per_req"), load.get("server_cpu_ms_per_req")
    pg_cpu = load.get("pg_cpu_ms_per_req")
    budget = (rt_cpu or 0.0) + (pg_cpu or 0.0) + (load.get("loadgen_cpu_ms_per_req") or 0.0)
    database = "postgresql (throw-away)" if throwaway else "postgresql (--database-url)"
    result: dict[str, Any] = {
        "scenario": NAME, **summary(load), "rotations_per_s": rate, "errors": errors(load),
        "pg_cpu_ms_per_rotation": pg_cpu, "pg_per_rotation": load.get("pg_per_req"),
        "baseline_client_credentials": summary(cc), "consumed_in_db": consumed, "goal": GOAL, "passed": passed,
        "database": database,
    }
    rows: Rows = [
        ("server", f"1 uvicorn worker, {database}, rate limits off"
                   + (" (server on cpu0, load on cpu1, PostgreSQL unpinned)" if args.pin else "")),
        ("baseline load", gen_label(cc)),
        *load_rows(cc, "client_credentials tokens", prefix="baseline: "),
        ("refresh load", gen_label(load)),
        *load_rows(load, "rotations"),
        ("tokens consumed in the DB", f"{consumed:,} (including the warm-up)"),
        ("  of which beyond a cc token", "n/a" if not (rt_cpu and cc_cpu) else
         f"{fmt_us(rt_cpu - cc_cpu)}   (rotation ÷ cc CPU = {rt_cpu / cc_cpu:.2f}×: "
         "asyncpg round trips and the rest of the grant)"),
        ("PostgreSQL CPU / rotation", "n/a" if pg_cpu is None else
         f"{fmt_us(pg_cpu)}   (backends {load['pg_backend_cores']:.2f} cores, "
         f"WAL/bg writer+checkpointer {load['pg_aux_cores']:.2f} cores)"),
        ("PostgreSQL work / rotation", "n/a" if not load.get("pg_per_req") else
         "≈ " + ", ".join(f"{v:.2f} {k}" for k, v in load["pg_per_req"].items())
         + "   (pg_stat_database; each statement outside a transaction block is its own xact)"),
        ("ceiling from CPU / rotation", "n/a" if not (rt_cpu and pg_cpu is not None) else
         f"1 worker alone at 1 core: {1e3 / rt_cpu:,.0f}/s;   server+PostgreSQL+loadgen "
         f"{fmt_us(budget)} → {CORES * 1e3 / budget:,.0f}/s on {CORES} idle cores"),
        ("rotations/s ÷ cc tokens/s", fmt_ratio(ratio(rate, cc["ok_per_s"]))),
        ("Keycloak sizing guide", f"120 refresh/s per vCPU → {120 * CORES}/s on {CORES} vCPU; "
                                  f"ours {rate / (120 * CORES):.1f}×"),
        ("rotations/s goal", f"≥ {GOAL:,.0f}   {'PASS' if passed else 'FAIL'}"),
    ]
    if base is not None:
        base_cpu = base.get("server_cpu_ms_per_req")
        result["baseline_src"] = {**summary(base), "source": str(args.baseline_src)}
        rows += [
            *load_rows(base, "rotations", prefix=f"baseline {args.baseline_src}: "),
            ("server CPU/rotation ours − baseline", "n/a" if not (rt_cpu and base_cpu) else
             f"{(rt_cpu - base_cpu) * 1e3:+,.0f} µs   ({fmt_us(rt_cpu)} vs {fmt_us(base_cpu)})"),
        ]
    print_block("refresh (public client, refresh_token rotation, PostgreSQL)", rows)
    return result
