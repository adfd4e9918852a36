"""Every per-core goal of the performance issue in one run, then one table of goal, measured and
PASS/FAIL: client_credentials RS256 against raw signs/s and node-oidc-provider (--peer is implied;
--rounds 3 by default, ours and the peer's loads interleaved, the median round deciding),
ES256, introspection and JWKS (reads), refresh rotations on PostgreSQL, two workers against one
(scaling), and the RSS of one worker after --memory-tokens tokens. Use --pin (the goals are per
core). The runs are the scenarios themselves, in turn, with the options given here; about 10
minutes with the default 1,000,000 tokens of the memory run (signed with --memory-alg, ES256 by
default: what grows per token does not depend on the algorithm, and RS256 takes 3× longer).
"""

from __future__ import annotations

import argparse
import copy
from collections.abc import Callable
from typing import Any

from bench.common import log
from bench.report import Rows, fmt_ratio, print_block
from bench.scenarios import client_credentials, memory, reads, refresh, scaling

NAME = "goals"
IN_ALL = False  # it runs the others itself


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--peers-dir", metavar="DIR",
                   help="the peer recipes (default $BENCH_PEERS_DIR, else ../shared/peers beside the repository)")
    p.add_argument("--memory-tokens", type=int, default=1_000_000, help="tokens of the memory run (default 1,000,000)")
    p.add_argument("--memory-alg", choices=("RS256", "ES256"), default="ES256",
                   help="signing algorithm of the memory run (default ES256)")


def _run(name: str, fn: Callable[[argparse.Namespace], dict[str, Any]], args: argparse.Namespace,
         **options: Any) -> dict[str, Any]:
    log(f"goals: {name}")
    given = copy.copy(args)
    for key, value in options.items():
        setattr(given, key, value)
    try:
        return fn(given)
    except Exception as exc:  # noqa: BLE001 - report it in the table and go on
        log(f"goals: {name} failed: {exc}")
        return {"error": str(exc)}


def _mark(ok: bool | None) -> str:
    return "ERROR" if ok is None else ("PASS" if ok else "FAIL")


def run(args: argparse.Namespace) -> dict[str, Any]:
    args.rounds = args.rounds or 3  # the RS256 run (ours, then the peer's, per round) and the scaling pair
    rs = _run("client_credentials RS256 + peer", client_credentials.run, args, alg="RS256", peer=True,
              baseline_src=None, rounds=args.rounds)
    es = _run("client_credentials ES256", client_credentials.run, args, alg="ES256", peer=False, baseline_src=None)
    rd = _run("reads", reads.run, args, alg="RS256", baseline_src=None)
    rf = _run("refresh", refresh.run, args, alg="RS256")
    sc = _run("scaling", scaling.run, args, alg="RS256", workers=2)
    mem = _run("memory", memory.run, args, alg=args.memory_alg, tokens=args.memory_tokens)

    def get(res: dict[str, Any], *path: str) -> Any:
        for key in path:
            res = res.get(key) if isinstance(res, dict) else None  # type: ignore[assignment]
        return res

    def per_core(res: dict[str, Any], *path: str) -> float | None:
        cpu = get(res, *path, "server_cpu_ms_per_req")
        return 1e3 / cpu if cpu else None

    def num(value: float | None, fmt: str = "{:,.0f}") -> str:
        return "n/a" if value is None else fmt.format(value)

    intro, jwks = get(rd, "introspect", "ok_per_s"), get(rd, "jwks_304", "ok_per_s")
    peer_ratio = get(rs, "ratio_vs_peer")
    rows: Rows = [
        ("RS256 tokens/s ÷ raw signs/s ≥ 0.75 (median round)", f"{fmt_ratio(get(rs, 'ratio'))}   "
         f"(CPU ratio {fmt_ratio(get(rs, 'cpu_ratio'))})   {_mark(get(rs, 'passed'))}"),
        ("RS256 ours ÷ node-oidc-provider ≥ 1.5 (median round)", f"{fmt_ratio(peer_ratio)}   "
         f"{_mark(None if peer_ratio is None else peer_ratio >= 1.5)}"),
        ("RS256 / peer / ES256 non-2xx = 0",
         f"{num(get(rs, 'non2xx'))} / {num(get(rs, 'peer_non2xx'))} / {num(get(es, 'non2xx'))}"),
        ("ES256 tokens/s (CPU per token)", f"{num(get(es, 'tokens_per_s'))}   "
         f"({num(get(es, 'server_cpu_ms_per_req'), '{:.3f} ms')})"),
        ("introspection ≥ 10,000/s per worker", f"{num(intro)}/s; {num(per_core(rd, 'introspect'))}/s per "
         f"fully used core   {_mark(None if intro is None else intro >= reads.INTROSPECT_GOAL)}"),
        ("JWKS with ETag ≥ 15,000/s per worker", f"{num(jwks)}/s; {num(per_core(rd, 'jwks_304'))}/s per "
         f"fully used core   {_mark(None if jwks is None else jwks >= reads.JWKS_GOAL)}"),
        ("refresh ≥ 1,500/s per worker (PostgreSQL)", f"{num(get(rf, 'rotations_per_s'))}/s; "
         f"{num(per_core(rf))}/s per fully used core   {_mark(get(rf, 'passed'))}"),
        ("2 workers ÷ 1 pinned worker ≥ 1.8 (median round)",
         f"{fmt_ratio(get(sc, 'ratio'))}   {_mark(get(sc, 'passed'))}"),
        (f"RSS ≤ 80 MB after {args.memory_tokens:,} {args.memory_alg} tokens",
         f"{num(get(mem, 'rss_mb'), '{:.1f} MB')}   {_mark(get(mem, 'passed'))}"),
    ]
    print_block("goals (issue 11), measured in this run", rows)
    results = {"client_credentials_rs256": rs, "client_credentials_es256": es, "reads": rd,
               "refresh": rf, "scaling": sc, "memory": mem}
    return {"scenario": NAME, **results,
            "passed": all(r.get("passed") is True for r in (rs, rd, rf, sc, mem))}

