"""client_credentials tokens/s against the raw signing rate of the same key, in the same run.

Raw signs/s: one thread signing the same claims with the SAME private key the server signs with (read
from the server's database), while the server is idle, before and after the load; with --pin on
the server's core. Goal: tokens/s >= 0.75 x mean raw signs/s, 0 non-2xx. With --peer, the same
load against node-oidc-provider, pinned the same way.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.baselines import RAW_SECONDS, load_active_key, raw_sign_rate, rfc9068_payload
from bench.common import CC_BODY, FORM, WARMUP_SECONDS, basic_auth, http, jwt_segment, log
from bench.cpu import wait_for_quiet
from bench.load import run_load
from bench.peer import run_peer
from bench.report import Rows, errors, fmt_ratio, fmt_us, load_rows, print_block, ratio, summary
from bench.servers import create_client, issuer_instance, start_server

NAME = "client_credentials"
GOAL = 0.75


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--peer", action="store_true", help="also load node-oidc-provider the same way")
    p.add_argument("--peers-dir", metavar="DIR",
                   help="the peer recipes (default $BENCH_PEERS_DIR, else ../shared/peers beside the repository)")


def run(args: argparse.Namespace) -> dict[str, Any]:
    server_cpu, load_cpu = (0, 1) if args.pin else (None, None)
    with issuer_instance(args) as inst:
        client_id, secret = create_client(inst)
        headers = {"Authorization": basic_auth(client_id, secret)}
        token_url = inst.base_url + "/oauth2/token"
        with start_server(inst, cpu=server_cpu) as server:
            # One request by hand: it must succeed and be signed by the key we are about to benchmark.
            status, body = http("POST", token_url, CC_BODY, {**FORM, **headers})
            if status != 200:
                raise RuntimeError(f"token request answered {status}: {body[:500]!r}")
            token = json.loads(body)["access_token"]
            header, key = load_active_key(inst)
            from joserfc import jws

            jws.deserialize_compact(token, key, algorithms=[header["alg"]])  # raises unless same key
            if jwt_segment(token, 0).get("kid") != header["kid"]:
                raise RuntimeError(f"server signs with {jwt_segment(token, 0).get('kid')}, database: {header['kid']}")
            payload = rfc9068_payload(inst.base_url, client_id)
            log(f"server pid {server.pid} on {inst.base_url}; key {header['alg']} kid {header['kid'][:12]}…")
            if args.wait_idle:
                wait_for_quiet(args.wait_idle)
            log(f"raw signs/s before load ({RAW_SECONDS:g} s, idle server)")
            raw_before = raw_sign_rate(header, key, payload, cpu=server_cpu)
            log(f"load: {WARMUP_SECONDS:g} s warm-up + {args.seconds:g} s, {args.connections} connections")
            load = run_load(args, token_url, CC_BODY, headers, inst.data_dir, cpu=load_cpu, watch_pid=server.pid)
            time.sleep(0.5)
            status_after, _ = http("POST", token_url, CC_BODY, {**FORM, **headers})
            log(f"raw signs/s after load ({RAW_SECONDS:g} s, idle server)")
            raw_after = raw_sign_rate(header, key, payload, cpu=server_cpu)
            if server.poll() is not None:
                raise RuntimeError("the server died during the run")

    raw_mean = (raw_before + raw_after) / 2
    tokens_per_s = load["ok_per_s"]
    sign_ratio = tokens_per_s / raw_mean
    ok_status = errors(load) == 0 and status_after == 200
    passed = sign_ratio >= GOAL and ok_status
    result: dict[str, Any] = {
        "scenario": NAME, **summary(load), "tokens_per_s": tokens_per_s, "raw_signs_before": raw_before,
        "raw_signs_after": raw_after, "raw_signs_mean": raw_mean, "ratio": sign_ratio, "goal": GOAL,
        "passed": passed, "alg": header["alg"], "kid": header["kid"], "database": inst.database,
    }
    spread = abs(raw_before - raw_after) / raw_mean
    cpu = load.get("server_cpu_ms_per_req")
    rows: Rows = [
        ("load", f"{load['loadgen']}, after a {WARMUP_SECONDS:g} s warm-up"
                 + (" (server on cpu0, load on cpu1)" if args.pin else "")),
        ("server", f"1 uvicorn worker, {inst.database}, {header['alg']} kid {header['kid'][:16]}…"),
        *load_rows(load, "tokens"),
        ("raw signs/s (1 thread)", f"before {raw_before:,.0f}   after {raw_after:,.0f}   mean {raw_mean:,.0f}"
                                   + (f"   (spread {spread:.0%}: noisy)" if spread > 0.15 else "")),
        ("one signature ÷ server CPU/token", "n/a" if not cpu else
         f"{1e3 / raw_mean / cpu:.2f}   ({fmt_us(1e3 / raw_mean)} of {fmt_us(cpu)} is the signature)"),
        ("tokens/s ÷ raw signs/s", fmt_ratio(sign_ratio, f"≥ {GOAL}", passed)),
    ]
    if args.peer:
        rows += peer_rows(args, result, tokens_per_s)
    print_block("client_credentials (client_secret_basic → RS256 at+jwt)", rows)
    return result


def peer_rows(args: argparse.Namespace, result: dict[str, Any], tokens_per_s: float) -> Rows:
    log("peer: node-oidc-provider")
    with tempfile.TemporaryDirectory(prefix="issuer-bench-peer-") as tmp:
        peer = run_peer(args, Path(tmp))
    if "skipped" in peer:
        result["peer"] = peer
        return [("peer", f"SKIPPED: {peer['skipped']}")]
    result["peer"] = {**summary(peer), "version": peer["version"], "token_header": peer["token_header"]}
    result["ratio_vs_peer"] = ratio(tokens_per_s, peer["ok_per_s"])
    hdr = peer["token_header"]
    return [
        ("peer", f"node-oidc-provider ({peer['version']}), {hdr.get('alg')} {hdr.get('typ')}, same load"),
        *load_rows(peer, "tokens", prefix="peer "),
        ("ours ÷ peer tokens/s", fmt_ratio(result["ratio_vs_peer"])),
    ]
