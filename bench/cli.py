"""``python -m bench <scenario> [options]``: parse, run the scenario(s), print a summary, write JSON."""

from __future__ import annotations

import argparse
import json
import sys
import urllib.parse
from pathlib import Path
from typing import Any

from bench.common import HOST, PG_ADMIN_URL, PYTHON, log
from bench.report import print_block
from bench.scenarios import SCENARIOS, load_scenarios


def _load_options() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("load options (shared by the load scenarios)")
    g.add_argument("--seconds", type=float, default=10.0, help="measured load duration (default 10)")
    g.add_argument("--connections", type=int, default=32, help="keep-alive connections (default 32)")
    g.add_argument("--database-url", default="",
                   help="ISSUER_DATABASE_URL (default: SQLite in the temp dir; 'refresh' makes a throw-away "
                        "PostgreSQL database instead)")
    g.add_argument("--pg-admin-url", default=PG_ADMIN_URL,
                   help=f"where 'refresh' runs CREATE/DROP DATABASE bench_<random> (default {PG_ADMIN_URL})")
    g.add_argument("--login-connections", type=int, default=16,
                   help="concurrent password logins in 'logins' and in the 'flood' flood (default 16)")
    g.add_argument("--loadgen", choices=("auto", "wrk", "python"), default="auto",
                   help="wrk if on PATH (auto), or force one")
    g.add_argument("--pin", action="store_true",
                   help="pin servers and raw signing to cpu0 and the load generator to cpu1 (taskset)")
    g.add_argument("--alg", choices=("RS256", "ES256"), default="RS256",
                   help="signing algorithm of the server's key (ISSUER_SIGNING_ALG; default RS256)")
    g.add_argument("--log-level", choices=("WARNING", "INFO"), default="INFO",
                   help="the server's ISSUER_LOG_LEVEL (default INFO, the product's default, which writes one "
                        "access-log line per request; WARNING leaves them out)")
    g.add_argument("--token-rate-limit", type=int, default=0, metavar="N",
                   help="ISSUER_RATE_LIMIT_TOKEN_PER_CLIENT (default 0: off, and every report says so)")
    g.add_argument("--redis-url", default="", help="ISSUER_REDIS_URL of the servers (default: none, in-process state)")
    g.add_argument("--baseline-src", type=Path, metavar="DIR",
                   help="also load a server whose issuer code comes from DIR (e.g. `git archive main | "
                        "tar -x -C DIR`), same data, key, client and pinning, in the same run: an A/B of a change")
    g.add_argument("--rounds", type=int, default=None, metavar="N",
                   help="client_credentials and scaling: measure N times, interleaved (with --peer, the peer's load "
                        "right after ours in each round); every round is printed, the goal lines use the median "
                        "round (default 1; goals: 3)")
    g.add_argument("--wait-idle", type=float, default=30.0, metavar="S",
                   help="before measuring, wait up to S seconds for other processes to go quiet (default 30; 0: off)")
    return p


def _output_options() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    p.add_argument("--keep", action="store_true", help="keep the temp data dir(s) and server logs")
    return p


def build_parser() -> argparse.ArgumentParser:
    import bench

    parser = argparse.ArgumentParser(prog="python -m bench", description=bench.__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="scenario", required=True, metavar="scenario")
    load, out = _load_options(), _output_options()
    for name, module in SCENARIOS.items():
        parents = [load, out] if getattr(module, "LOAD_OPTIONS", True) else [out]
        doc = module.__doc__ or ""
        p = sub.add_parser(name, parents=parents, help=doc.split("\n")[0], description=doc,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(p)
    p = sub.add_parser("all", parents=[load, out], help=f"{', '.join(load_scenarios())} in turn")
    for name in load_scenarios():
        SCENARIOS[name].add_arguments(p)
    return parser


def check(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if not hasattr(args, "seconds"):
        return
    if not 1 <= args.connections <= 10_000:
        parser.error("--connections must be 1..10000")
    if not 1 <= args.seconds <= 3600:
        parser.error("--seconds must be 1..3600")
    if args.redis_url and urllib.parse.urlsplit(args.redis_url).hostname not in (HOST, "localhost"):
        parser.error("--redis-url must point at a local Redis")
    if not 0 <= args.token_rate_limit <= 10_000_000:
        parser.error("--token-rate-limit must be 0..10000000")
    if args.baseline_src is not None and not (args.baseline_src / "issuer" / "__init__.py").is_file():
        parser.error("--baseline-src must be a directory holding issuer/ (a checkout or `git archive` of it)")
    if args.rounds is not None and not 1 <= args.rounds <= 50:
        parser.error("--rounds must be 1..50")
    if not 0 <= args.wait_idle <= 600:
        parser.error("--wait-idle must be 0..600")
    if not 1 <= args.login_connections <= 1000:
        parser.error("--login-connections must be 1..1000")
    if urllib.parse.urlsplit(args.pg_admin_url).hostname not in (HOST, "localhost"):
        parser.error("--pg-admin-url must point at a local PostgreSQL")
    if args.database_url.startswith(("postgres://", "postgresql://")):
        if urllib.parse.urlsplit(args.database_url).hostname not in (HOST, "localhost", None, ""):
            parser.error("--database-url must point at a local database")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    check(parser, args)
    try:
        import issuer  # noqa: F401
    except ImportError:
        print(f"cannot import issuer with {PYTHON}; run with the project's .venv/bin/python", file=sys.stderr)
        return 2
    names = load_scenarios() if args.scenario == "all" else [args.scenario]
    results: list[dict[str, Any]] = []
    for name in names:
        log(f"scenario {name}")
        try:
            res = SCENARIOS[name].run(args)
        except KeyboardInterrupt:
            log("interrupted; subprocesses stopped")
            return 130
        except Exception as exc:  # noqa: BLE001 - report and go on with the other scenarios
            log(f"scenario {name} failed: {exc}")
            res = {"scenario": name, "error": str(exc), "passed": False}
        results.append(res)
    if len(results) > 1:
        print_block("summary", [(r["scenario"], "ERROR" if "error" in r else ("PASS" if r.get("passed", True)
                                                                             else "FAIL")) for r in results])
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str))
    return 0 if all(r.get("passed", True) for r in results) else 1
