"""client_credentials tokens/s against the raw signing rate of the same key, in the same run.

Raw signs/s: one thread signing the same claims with the SAME private key the server signs with (read
from the server's database), while the server is idle, before and after the load; with --pin on
the server's core; "raw" is the bare cryptography primitive over the token's signing input. Goal:
tokens/s >= 0.75 x mean raw signs/s, 0 non-2xx (the per-client rate limit is off). With --peer, the
same load against node-oidc-provider, pinned the same way; with --baseline-src DIR, the same load
against a server running DIR's code on the same data (an in-run A/B).

With --rounds N the measurement is repeated N times on the same server: raw signs/s, our load, raw
signs/s again and, with --peer, the peer's load right after ours. Every round is printed; the goal
lines use the median round, so one slow minute of a noisy machine (it happens here: the same load
has cost 583 and 856 µs per token a few minutes apart, with the raw rate unchanged) decides nothing
alone, and each peer ratio compares two loads a few seconds apart.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.baselines import RAW_SECONDS, Rate, load_active_key, raw_sign_rate, rfc9068_payload
from bench.common import CC_BODY, FORM, WARMUP_SECONDS, basic_auth, http, jwt_segment, log
from bench.cpu import wait_for_quiet
from bench.load import run_load
from bench.peer import run_peer
from bench.report import Rows, errors, fmt_ratio, fmt_us, load_rows, print_block, ratio, summary
from bench.servers import Instance, create_client, issuer_instance, rate_limit_note, start_server

NAME = "client_credentials"
GOAL = 0.75


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--peer", action="store_true", help="also load node-oidc-provider the same way")
    p.add_argument("--peers-dir", metavar="DIR",
                   help="the peer recipes (default $BENCH_PEERS_DIR, else ../shared/peers beside the repository)")


@dataclass
class Round:
    before: Rate
    after: Rate
    load: dict[str, Any]
    status_after: int
    peer: dict[str, Any] | None = None

    @property
    def raw_mean(self) -> float:
        return (self.before.per_s + self.after.per_s) / 2

    @property
    def ratio(self) -> float:
        return float(self.load["ok_per_s"]) / self.raw_mean

    @property
    def peer_ratio(self) -> float | None:
        if self.peer is None or "skipped" in self.peer:
            return None
        return ratio(self.load["ok_per_s"], self.peer["ok_per_s"])


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
            rounds: list[Round] = []
            count = args.rounds or 1
            for number in range(1, count + 1):
                if count > 1:
                    log(f"round {number} of {count}")
                if args.wait_idle:
                    wait_for_quiet(args.wait_idle)
                log(f"raw signs/s before load ({RAW_SECONDS:g} s, idle server)")
                before = raw_sign_rate(header, key, payload, cpu=server_cpu)
                log(f"load: {WARMUP_SECONDS:g} s warm-up + {args.seconds:g} s, {args.connections} connections")
                load = run_load(args, token_url, CC_BODY, headers, inst.data_dir, cpu=load_cpu, watch_pid=server.pid)
                time.sleep(0.5)
                status_after, _ = http("POST", token_url, CC_BODY, {**FORM, **headers})
                log(f"raw signs/s after load ({RAW_SECONDS:g} s, idle server)")
                after = raw_sign_rate(header, key, payload, cpu=server_cpu)
                peer = peer_load(args) if args.peer else None  # ours idles meanwhile
                rounds.append(Round(before, after, load, status_after, peer))
            if server.poll() is not None:
                raise RuntimeError("the server died during the run")
        base = baseline_load(args, inst, headers) if args.baseline_src else None

    # The median round by ratio stands for the run (the only round when --rounds is 1; the lower
    # of the middle two for an even count, whose ratios the goal line averages).
    chosen = sorted(rounds, key=lambda r: r.ratio)[(len(rounds) - 1) // 2]
    before, after, load, status_after = chosen.before, chosen.after, chosen.load, chosen.status_after
    raw_before, raw_after = before.per_s, after.per_s
    raw_mean = chosen.raw_mean
    sign_cpu = (before.cpu_ms + after.cpu_ms) / 2
    tokens_per_s = load["ok_per_s"]
    sign_ratio = statistics.median(r.ratio for r in rounds)
    cpu = load.get("server_cpu_ms_per_req")
    ok_status = all(errors(r.load) == 0 and r.status_after == 200 for r in rounds)
    passed = sign_ratio >= GOAL and ok_status
    result: dict[str, Any] = {
        "scenario": NAME, **summary(load), "tokens_per_s": tokens_per_s, "raw_signs_before": raw_before,
        "raw_signs_after": raw_after, "raw_signs_mean": raw_mean, "raw_sign_cpu_ms": sign_cpu,
        "cpu_ratio": sign_cpu / cpu if cpu else None, "ratio": sign_ratio, "goal": GOAL,
        "passed": passed, "alg": header["alg"], "kid": header["kid"], "database": inst.database,
        "non2xx": sum(int(r.load.get("non2xx") or 0) for r in rounds),
        "rounds": [{**summary(r.load), "raw_signs_mean": r.raw_mean, "ratio": r.ratio,
                    "peer": None if r.peer is None else {k: r.peer.get(k) for k in ("ok_per_s", "server_cpu_ms_per_req",
                                                                                      "non2xx", "skipped")},
                    "ratio_vs_peer": r.peer_ratio} for r in rounds],
    }
    spread = abs(raw_before - raw_after) / raw_mean
    rows: Rows = [
        ("load", f"{load['loadgen']}, after a {WARMUP_SECONDS:g} s warm-up"
                 + (" (server on cpu0, load on cpu1)" if args.pin else "")),
        ("server", f"1 uvicorn worker, {inst.database}, {header['alg']} kid {header['kid'][:16]}…, "
                   f"log level {inst.env['ISSUER_LOG_LEVEL']}"),
        ("rate limit", rate_limit_note(inst)),
        *load_rows(load, "tokens"),
        ("raw signs/s (1 thread, primitive)", f"before {raw_before:,.0f}  after {raw_after:,.0f}  mean {raw_mean:,.0f}"
                                   + (f"   (spread {spread:.0%}: noisy)" if spread > 0.15 else "")),
        ("raw sign CPU ÷ server CPU/token", "n/a" if not cpu else
         f"{sign_cpu / cpu:.3f}   ({fmt_us(sign_cpu)} of {fmt_us(cpu)} is the signature; CPU times, so "
         "this is the ratio a quiet core would give)"),
        ("tokens/s ÷ raw signs/s" + (f" (median of {len(rounds)} rounds)" if len(rounds) > 1 else ""),
         fmt_ratio(sign_ratio, f"≥ {GOAL}", passed)),
    ]
    if len(rounds) > 1:
        rows.insert(3, ("rounds", f"{len(rounds)}, interleaved with the peer's loads; below, the median round "
                                  "by tokens/s ÷ raw signs/s, then each round"))
        rows += round_rows(rounds)
    if base is not None:
        rows += ab_rows(args, result, load, base, raw_mean, sign_cpu)
    if args.peer:
        rows += peer_rows(result, chosen, rounds)
    print_block(f"client_credentials (client_secret_basic → {header['alg']} at+jwt)", rows)
    return result


def baseline_load(args: argparse.Namespace, inst: Instance, headers: dict[str, str]) -> dict[str, Any]:
    """The same load on the same data (key, client), served by --baseline-src's code, pinned alike."""
    log(f"baseline server: issuer code from {args.baseline_src}")
    with start_server(inst, cpu=0 if args.pin else None, source=args.baseline_src) as server:
        token_url = inst.base_url + "/oauth2/token"
        status, body = http("POST", token_url, CC_BODY, {**FORM, **headers})
        if status != 200:
            raise RuntimeError(f"baseline token request answered {status}: {body[:300]!r}")
        if args.wait_idle:
            wait_for_quiet(min(args.wait_idle, 10))
        return run_load(args, token_url, CC_BODY, headers, inst.data_dir, cpu=1 if args.pin else None,
                        watch_pid=server.pid)


def ab_rows(args: argparse.Namespace, result: dict[str, Any], ours: dict[str, Any], base: dict[str, Any],
            raw_mean: float, sign_cpu: float) -> Rows:
    ours_cpu, base_cpu = ours.get("server_cpu_ms_per_req"), base.get("server_cpu_ms_per_req")
    result["baseline_src"] = {**summary(base), "source": str(args.baseline_src)}
    result["ratio_vs_baseline_src"] = ratio(ours["ok_per_s"], base["ok_per_s"])
    return [
        ("baseline code", f"{args.baseline_src} (same data, key, client, load and pinning; run after ours)"),
        *load_rows(base, "tokens", prefix="baseline "),
        ("baseline tokens/s ÷ raw signs/s", fmt_ratio(ratio(base["ok_per_s"], raw_mean))),
        ("baseline raw sign CPU ÷ CPU/token", fmt_ratio(ratio(sign_cpu, base_cpu))),
        ("ours ÷ baseline tokens/s", fmt_ratio(result["ratio_vs_baseline_src"])),
        ("server CPU/token ours − baseline", "n/a" if not (ours_cpu and base_cpu) else
         f"{(ours_cpu - base_cpu) * 1e3:+,.0f} µs   ({fmt_us(ours_cpu)} vs {fmt_us(base_cpu)})"),
    ]


def peer_load(args: argparse.Namespace) -> dict[str, Any]:
    log("peer: node-oidc-provider")
    with tempfile.TemporaryDirectory(prefix="issuer-bench-peer-") as tmp:
        return run_peer(args, Path(tmp))


def round_rows(rounds: list[Round]) -> Rows:
    rows: Rows = []
    for number, r in enumerate(rounds, 1):
        cpu = r.load.get("server_cpu_ms_per_req")
        text = (f"{r.load['ok_per_s']:,.0f} tokens/s, {fmt_us(cpu)} per token, {errors(r.load)} errors; "
                f"raw {r.raw_mean:,.0f} signs/s; ratio {fmt_ratio(r.ratio)}")
        if r.peer_ratio is not None and r.peer is not None:
            text += (f"; peer {r.peer['ok_per_s']:,.0f} tokens/s, {fmt_us(r.peer.get('server_cpu_ms_per_req'))}, "
                     f"{errors(r.peer)} errors: ours ÷ peer {fmt_ratio(r.peer_ratio)}")
        rows.append((f"round {number}", text))
    return rows


def peer_rows(result: dict[str, Any], chosen: Round, rounds: list[Round]) -> Rows:
    peer = chosen.peer or {}
    if "skipped" in peer:
        result["peer"] = peer
        return [("peer", f"SKIPPED: {peer['skipped']}")]
    ratios = [r.peer_ratio for r in rounds if r.peer_ratio is not None]
    result["peer"] = {**summary(peer), "version": peer["version"], "token_header": peer["token_header"]}
    result["ratio_vs_peer"] = statistics.median(ratios) if ratios else None
    result["peer_non2xx"] = sum(errors(r.peer) for r in rounds if r.peer is not None and "skipped" not in r.peer)
    hdr = peer["token_header"]
    rows: Rows = [
        ("peer", f"node-oidc-provider ({peer['version']}), {hdr.get('alg')} {hdr.get('typ')}, same load"
                 + (", right after ours in the same round" if len(rounds) > 1 else "")),
        *load_rows(peer, "tokens", prefix="peer "),
    ]
    label = "ours ÷ peer tokens/s" + (f" (median of {len(ratios)} rounds)" if len(ratios) > 1 else "")
    rows.append((label, fmt_ratio(result["ratio_vs_peer"])))
    return rows
