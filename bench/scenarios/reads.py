"""Introspection and JWKS: the read paths resource servers call, each against an in-run baseline.

One server (pinned with --pin), one confidential client registered with the audience of its tokens
(so it may introspect them). Introspection: POST /oauth2/introspect of one unrevoked access token
(no database access: claims and the in-memory revocation cache; the signature was verified at its
first introspection and is remembered, as for a resource server introspecting the token of each
request), then of 2,000 distinct tokens in turn (more than the keyring remembers, so each request
verifies a signature); baseline: joserfc
verifies/s of the same token with the same key, one thread, on the server's core. JWKS: GET
/.well-known/jwks.json with If-None-Match of its current ETag (304) and without (200); baseline:
GET /healthz on the same server (the HTTP stack alone). With --baseline-src DIR, introspection again on
a server running DIR's code (same data, token and pinning, after ours): an A/B of a change. Goals per
worker: introspection >= 10,000/s, JWKS with ETag >= 15,000/s, 0 non-2xx.
"""

from __future__ import annotations

import argparse
import urllib.parse
from typing import Any

from bench.baselines import load_active_key, raw_verify_rate
from bench.common import CC_BODY, WARMUP_SECONDS, basic_auth, form_post, http, log, response_header
from bench.cpu import wait_for_quiet
from bench.load import run_load
from bench.report import Rows, errors, fmt_ratio, fmt_us, load_rows, print_block, ratio, summary
from bench.servers import create_client, issuer_instance, rate_limit_note, start_server

NAME = "reads"
INTROSPECT_GOAL = 10_000.0
# More than keys.keyring.VERIFIED_CACHE_SIZE, sent in turn: every introspection verifies a signature.
DISTINCT_TOKENS = 2_000
JWKS_GOAL = 15_000.0


def add_arguments(p: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> dict[str, Any]:
    server_cpu, load_cpu = (0, 1) if args.pin else (None, None)
    with issuer_instance(args) as inst:
        client_id, secret = create_client(inst)
        auth = {"Authorization": basic_auth(client_id, secret)}
        with start_server(inst, cpu=server_cpu) as server:
            status, data = form_post(inst.base_url + "/oauth2/token", CC_BODY, auth)
            if status != 200:
                raise RuntimeError(f"token request answered {status}: {data}")
            token = str(data["access_token"])
            introspect_url = inst.base_url + "/oauth2/introspect"
            body = urllib.parse.urlencode({"token": token, "token_type_hint": "access_token"})
            status, data = form_post(introspect_url, body, auth)
            if status != 200 or data.get("active") is not True:
                raise RuntimeError(f"introspection answered {status}: {data}")
            jwks_url = inst.base_url + "/.well-known/jwks.json"
            etag = _etag(jwks_url)
            header, key = load_active_key(inst)
            if args.wait_idle:
                wait_for_quiet(args.wait_idle)

            def load(url: str, method: str, body: str | list[str], headers: dict[str, str],
                     pid: int = server.pid) -> Any:
                log(f"{method} {urllib.parse.urlsplit(url).path}: {WARMUP_SECONDS:g} s warm-up + {args.seconds:g} s")
                return run_load(args, url, body, headers, inst.data_dir, method, load_cpu, pid)

            log(f"issuing {DISTINCT_TOKENS:,} more tokens for the distinct-token run")
            bodies = [urllib.parse.urlencode({"token": t, "token_type_hint": "access_token"})
                      for t in _tokens(inst.base_url, auth, DISTINCT_TOKENS)]
            verify = raw_verify_rate(token, key, header["alg"], cpu=server_cpu)
            intro = load(introspect_url, "POST", body, auth)
            distinct = load(introspect_url, "POST", bodies, auth)
            health = load(inst.base_url + "/healthz", "GET", "", {})
            cached = load(jwks_url, "GET", "", {"If-None-Match": etag})
            full = load(jwks_url, "GET", "", {})
            if server.poll() is not None:
                raise RuntimeError("the server died during the run")
        base: dict[str, Any] | None = None
        if args.baseline_src:
            log(f"baseline server: issuer code from {args.baseline_src}")
            with start_server(inst, cpu=server_cpu, source=args.baseline_src) as baseline:
                base = load(introspect_url, "POST", body, auth, baseline.pid)
    passed = (intro["ok_per_s"] >= INTROSPECT_GOAL and cached["ok_per_s"] >= JWKS_GOAL
              and not any(errors(r) for r in (intro, distinct, health, cached, full)))
    result = {"scenario": NAME, "introspect": summary(intro), "introspect_distinct": summary(distinct),
              "raw_verify_per_s": verify.per_s,
              "healthz": summary(health), "jwks_304": summary(cached), "jwks_200": summary(full), "passed": passed}
    if base is not None:
        result["baseline_src"] = {"introspect": summary(base), "source": str(args.baseline_src)}
    where = " (server on cpu0, load on cpu1)" if args.pin else ""
    rows: Rows = [
        ("server", f"1 uvicorn worker, {inst.database}, {header['alg']}{where}"),
        ("rate limit", rate_limit_note(inst)),
        *load_rows(intro, "introspections"),
        ("raw verifies/s (joserfc, 1 thread)", f"{verify.per_s:,.0f}   ({fmt_us(verify.cpu_ms)} CPU each)"),
        ("introspections ÷ raw verifies", fmt_ratio(ratio(intro["ok_per_s"], verify.per_s))),
        ("introspections/s goal", _goal(intro["ok_per_s"], INTROSPECT_GOAL)),
        *load_rows(distinct, f"introspections of {DISTINCT_TOKENS:,} distinct tokens in turn"),
        *(load_rows(base, "introspections", prefix=f"baseline {args.baseline_src}: ") if base else []),
        *load_rows(cached, "JWKS 304 (If-None-Match)"),
        *load_rows(full, "JWKS 200"),
        *load_rows(health, "healthz (baseline)"),
        ("JWKS 304 ÷ healthz", fmt_ratio(ratio(cached["ok_per_s"], health["ok_per_s"]))),
        ("JWKS with ETag goal", _goal(cached["ok_per_s"], JWKS_GOAL)),
    ]
    print_block("reads: introspection, JWKS (ETag), against verify/s and /healthz", rows)
    return result


def _tokens(base_url: str, auth: dict[str, str], count: int) -> list[str]:
    tokens = []
    for _ in range(count):
        status, data = form_post(base_url + "/oauth2/token", CC_BODY, auth)
        if status != 200:
            raise RuntimeError(f"token request answered {status}: {data}")
        tokens.append(str(data["access_token"]))
    return tokens


def _goal(value: float, goal: float) -> str:
    return f"≥ {goal:,.0f}/s   {'PASS' if value >= goal else 'FAIL'}"


def _etag(url: str) -> str:
    tag = response_header(url, "ETag")
    if not tag:
        raise RuntimeError("the JWKS answer has no ETag")
    status, _ = http("GET", url, headers={"If-None-Match": tag})
    if status != 304:
        raise RuntimeError(f"If-None-Match of the current ETag answered {status}, not 304")
    return tag
