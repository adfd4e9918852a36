"""Browser sign-in on a throw-away PostgreSQL database (as 'refresh'): authorization-code exchanges/s
beside client_credentials tokens/s of the same server, and the login page's p99 at a fixed rate,
alone and during a flood of wrong-password sign-ins.

(a) A first-party public web client; each of --connections browsers (httpx, own cookies) signs in
once through /oauth2/authorize and /login, then loops: GET /oauth2/authorize (SSO, 303 with a code)
+ POST /oauth2/token (authorization_code, PKCE) answered 200 with access, ID and refresh tokens.
(b) GET /login?ticket=… at --page-rate (open loop, latency from the scheduled send time), alone, with
--login-connections browsers posting wrong passwords to /login (login rate limits off, so the flood
reaches the password-hash budget), then alone again. The in-process httpx load is on this process.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import os
import re
import secrets
import time
import urllib.parse
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import httpx

from bench.common import AUDIENCE, CC_BODY, SCOPES, WARMUP_SECONDS, basic_auth, free_port, log
from bench.cpu import CpuWatch, wait_for_quiet
from bench.load import run_load
from bench.report import Rows, cores_line, errors, fmt_ms, fmt_ratio, fmt_us, gen_label, load_rows, print_block, summary
from bench.servers import NO_RATE_LIMITS, create_client, create_user, hash_env_passthrough, run_cli, start_server
from bench.servers import issuer_instance as instance
from bench.servers import postgres_database as pg_database

NAME = "signin"
SCOPE = "openid profile " + SCOPES[0]
PAGE_CONNECTIONS = 8


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--page-rate", type=float, default=50.0, help="fixed GET /login rate of 'signin' (default 50/s)")


class Load:
    """One in-process load: its workers loop until `stop`; only the measured window counts."""

    def __init__(self, label: str) -> None:
        self.label, self.measuring, self.stop = label, False, False
        self.lat: list[float] = []
        self.counts: Counter[str] = Counter()
        self.first_errors: list[str] = []

    async def loop(self, step: Callable[[], Awaitable[tuple[str, str]]], every: float = 0.0, at: float = 0.0) -> None:
        """`step` until stopped: back to back, or (every > 0) on a fixed schedule with latency from
        each scheduled send time, so a late answer is counted, not hidden."""
        start = time.perf_counter() + at
        for i in range(100_000_000):
            if self.stop:
                return
            t0 = start + i * every if every else time.perf_counter()
            await asyncio.sleep(max(0.0, t0 - time.perf_counter()))
            try:
                outcome, detail = await step()
            except httpx.HTTPError as exc:
                outcome, detail = "socket_errors", f"{type(exc).__name__}: {exc}"
            if detail and len(self.first_errors) < 3:
                self.first_errors.append(detail[:200])
            if self.measuring:
                self.lat.append(time.perf_counter() - t0)
                self.counts[outcome] += 1

    def result(self, a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
        lat, dur = sorted(self.lat), b["t"] - a["t"]
        pct = {p: lat[min(len(lat) - 1, int(p / 100 * len(lat)))] * 1e3 if lat else None for p in (50, 99, 100)}
        return {"requests": len(lat), "duration_s": dur, "ok_per_s": self.counts["ok"] / dur, "p50_ms": pct[50],
                "p99_ms": pct[99], "max_ms": pct[100], "loadgen": self.label, "first_errors": self.first_errors,
                "non2xx": 0, "socket_errors": 0, **self.counts, **CpuWatch.diff(a, b, len(lat))}


@dataclass
class Flow:
    """The web client and the user; every browser is an httpx client with its own cookies."""

    base: str
    client_id: str
    redirect: str
    user: str
    password: str

    def authorize_url(self) -> tuple[str, str]:
        """(URL, PKCE verifier) of a new authorization request."""
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        return "/oauth2/authorize?" + urllib.parse.urlencode({
            "response_type": "code", "client_id": self.client_id, "redirect_uri": self.redirect, "scope": SCOPE,
            "state": secrets.token_hex(4), "nonce": secrets.token_hex(4), "code_challenge": challenge,
            "code_challenge_method": "S256"}), verifier

    async def login_form(self, c: httpx.AsyncClient) -> tuple[str, dict[str, str]]:
        """Without a session: the login page's URL (/login?ticket=…) and its hidden fields."""
        r = await c.get(self.authorize_url()[0])
        where = r.headers.get("location", "")
        if r.status_code != 303 or not where.startswith("/login?"):
            raise RuntimeError(f"authorize answered {r.status_code} {where!r}: {r.text[:200]}")
        page = await c.get(where)
        fields = {k: re.search(rf'name="{k}" value="([^"]*)"', page.text) for k in ("csrf", "ticket")}
        if page.status_code != 200 or not all(fields.values()):
            raise RuntimeError(f"login page answered {page.status_code} without its hidden fields")
        return where, {k: m.group(1).replace("&amp;", "&") for k, m in fields.items() if m}

    async def sign_in(self, c: httpx.AsyncClient) -> None:
        r = await c.post("/login", data={**(await self.login_form(c))[1], "username": self.user,
                                         "password": self.password})
        if r.status_code != 303 or not r.headers["location"].startswith(self.redirect):
            raise RuntimeError(f"sign-in answered {r.status_code} {r.headers.get('location')!r}")

    async def exchange(self, c: httpx.AsyncClient) -> tuple[str, str]:
        """SSO authorize (303 with a code), then the code for tokens."""
        url, verifier = self.authorize_url()
        r = await c.get(url)
        code = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(r.headers.get("location", "")).query))
        if r.status_code != 303 or "code" not in code:
            return "non2xx", f"authorize {r.status_code} {r.headers.get('location')!r}"
        t = await c.post("/oauth2/token", data={
            "grant_type": "authorization_code", "code": code["code"], "redirect_uri": self.redirect,
            "client_id": self.client_id, "code_verifier": verifier})
        if t.status_code != 200:
            return "non2xx", f"token {t.status_code} {t.text[:150]}"
        missing = {"access_token", "id_token", "refresh_token"} - t.json().keys()
        return ("bad", f"token response lacks {sorted(missing)}") if missing else ("ok", "")

    async def wrong_password(self, c: httpx.AsyncClient, form: dict[str, str]) -> tuple[str, str]:
        """401 is the expected answer ("ok" here), 503 the password-hash budget refusing more."""
        r = await c.post("/login", data={**form, "username": self.user, "password": secrets.token_hex(8)})
        outcome = {401: "ok", 503: "busy"}.get(r.status_code, "non2xx")
        return outcome, "" if outcome != "non2xx" else f"flood {r.status_code}"


async def _page(c: httpx.AsyncClient, url: str) -> tuple[str, str]:
    r = await c.get(url)
    return ("ok", "") if r.status_code == 200 and 'name="password"' in r.text else ("non2xx", f"page {r.status_code}")


async def _window(cw: CpuWatch, seconds: float, loads: list[Load], work: Sequence[Awaitable[None]]) -> list[Any]:
    tasks = [asyncio.ensure_future(w) for w in work]
    await asyncio.sleep(WARMUP_SECONDS)
    a = await asyncio.to_thread(cw.snap)
    for ld in loads:
        ld.measuring = True
    await asyncio.sleep(seconds)
    for ld in loads:
        ld.measuring, ld.stop = False, True
    b = await asyncio.to_thread(cw.snap)
    await asyncio.gather(*tasks)
    return [ld.result(a, b) for ld in loads]


async def _drive(args: argparse.Namespace, flow: Flow, cw: CpuWatch) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    n_ex, n_fl = args.connections, args.login_connections
    browsers = [httpx.AsyncClient(base_url=flow.base, trust_env=False, timeout=30.0) for _ in
                range(n_ex + PAGE_CONNECTIONS + n_fl)]
    ex, pb, fb = browsers[:n_ex], browsers[n_ex:n_ex + PAGE_CONNECTIONS], browsers[n_ex + PAGE_CONNECTIONS:]
    try:
        for c in ex:  # one at a time, within the password-hash budget
            await flow.sign_in(c)
        log(f"code exchanges: {n_ex} signed-in browsers, {WARMUP_SECONDS:g} s warm-up + {args.seconds:g} s")
        load = Load(f"python httpx in-process, {n_ex} browsers (authorize + token per round trip)")
        out["exchanges"], = await _window(cw, args.seconds, [load], [load.loop(partial(flow.exchange, c)) for c in ex])
        pages = [(c, (await flow.login_form(c))[0]) for c in pb]
        forms = [(c, (await flow.login_form(c))[1]) for c in fb]
        for name in ("before", "flooded", "after"):
            if args.wait_idle and name != "flooded":
                wait_for_quiet(min(args.wait_idle, 10))
            log(f"login page {name}: {args.page_rate:g} req/s" + (f", {n_fl} browsers posting wrong passwords"
                                                                 if name == "flooded" else ""))
            page = Load(f"python httpx in-process, {args.page_rate:g} req/s on a fixed schedule over "
                        f"{PAGE_CONNECTIONS} browsers; latency from the scheduled send time")
            flood = Load(f"python httpx in-process, {n_fl} browsers posting wrong passwords (closed loop)")
            every = PAGE_CONNECTIONS / args.page_rate
            loads, work = [page], [page.loop(partial(_page, c, url), every, k / args.page_rate)
                                   for k, (c, url) in enumerate(pages)]
            if name == "flooded":
                loads.append(flood)
                work += [flood.loop(partial(flow.wrong_password, c, f)) for c, f in forms]
            res = await _window(cw, args.seconds, loads, work)
            out[name], out["flood"] = res[0], res[-1] if name == "flooded" else out.get("flood", {})
    finally:
        await asyncio.gather(*(c.aclose() for c in browsers))
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    if not 1 <= args.page_rate <= 2000:
        raise RuntimeError("--page-rate must be 1..2000")
    server_cpu, load_cpu = (0, 1) if args.pin else (None, None)
    redirect = f"http://127.0.0.1:{free_port()}/cb"
    with pg_database(args) as (db_url, throwaway), \
            instance(args, database_url=db_url if throwaway else None, **NO_RATE_LIMITS,
                            **hash_env_passthrough()) as inst:
        cc_id, cc_secret = create_client(inst)
        client_id = str(json.loads(run_cli(
            inst, "clients", "create", "--public", "--first-party", "--name", "bench-web", "--grant-type",
            "authorization_code", "refresh_token", "--scope", SCOPES[0], "--audience", AUDIENCE,
            "--redirect-uri", redirect, "--json"))["client_id"])
        user, password = create_user(inst)
        with start_server(inst, cpu=server_cpu) as server:
            if args.wait_idle:
                wait_for_quiet(args.wait_idle)
            log(f"baseline: client_credentials, {WARMUP_SECONDS:g} s warm-up + {args.seconds:g} s")
            cc = run_load(args, inst.base_url + "/oauth2/token", CC_BODY,
                          {"Authorization": basic_auth(cc_id, cc_secret)}, inst.data_dir, cpu=load_cpu,
                          watch_pid=server.pid)
            cw = CpuWatch({"server": server.pid, "loadgen": os.getpid()}, db_url)
            old = os.sched_getaffinity(0)
            try:
                if load_cpu is not None:
                    os.sched_setaffinity(0, {load_cpu})
                r = asyncio.run(_drive(args, Flow(inst.base_url, client_id, redirect, user, password), cw))
            finally:
                os.sched_setaffinity(0, old)
            if server.poll() is not None:
                raise RuntimeError("the server died during the run")

    ex, before, flooded, after, flood = r["exchanges"], r["before"], r["flooded"], r["after"], r["flood"]
    base_p99 = ((before["p99_ms"] or 0.0) + (after["p99_ms"] or 0.0)) / 2
    p99_ratio = flooded["p99_ms"] / base_p99 if base_p99 and flooded["p99_ms"] else None
    n_errors = sum(errors(x) for x in (ex, before, flooded, after, flood))
    database = "postgresql (throw-away)" if throwaway else "postgresql (--database-url)"
    result: dict[str, Any] = {
        "scenario": NAME, **summary(ex), "exchanges_per_s": ex["ok_per_s"], "errors": n_errors, "database": database,
        "pg_cpu_ms_per_exchange": ex.get("pg_cpu_ms_per_req"), "baseline_client_credentials": summary(cc),
        **{f"page_{k}": summary(r[k]) for k in ("before", "flooded", "after")}, "page_p99_ratio": p99_ratio,
        "flood": {**summary(flood), "busy_503": flood.get("busy", 0)}, "passed": n_errors == 0}

    def page(x: dict[str, Any]) -> str:
        return (f"p50 {fmt_ms(x['p50_ms'])}   p99 {fmt_ms(x['p99_ms'])}   (max {fmt_ms(x['max_ms'])}; "
                f"{x['ok_per_s']:,.1f} ok/s of {args.page_rate:g}; errors {errors(x)})")

    rows: Rows = [
        ("server", f"1 uvicorn worker, {database}, login and token rate limits OFF"
                   + (" (server on cpu0, load on cpu1, PostgreSQL unpinned)" if args.pin else "")),
        ("baseline load", gen_label(cc)),
        *load_rows(cc, "client_credentials tokens", prefix="baseline: "),
        ("exchange load", ex["loadgen"]),
        *load_rows(ex, "code exchanges"),
        ("PostgreSQL CPU / exchange", fmt_us(ex.get("pg_cpu_ms_per_req"))),
        ("exchanges/s ÷ cc tokens/s", fmt_ratio(ex["ok_per_s"] / cc["ok_per_s"] if cc["ok_per_s"] else None)
         + "   (different load generators: compare the server CPU per request)"),
        ("login page load", before["loadgen"]),
        ("login page alone, before", page(before)),
        ("login page with the flood", page(flooded)),
        ("  CPU", cores_line(flooded)),
        ("  flood", f"{flood['loadgen']}: {flood['ok_per_s']:,.1f} refusals (401)/s, "
                    f"{flood.get('busy', 0):,} answered 503 (hash budget full), errors {errors(flood)}"),
        ("login page alone, after", page(after)),
        ("page p99 flood ÷ alone", "n/a" if p99_ratio is None else f"{p99_ratio:.2f}×   (mean of before and after)"),
        ("result", f"{'PASS' if n_errors == 0 else 'FAIL'} on errors only (no goal; the ratios are for reading)"),
    ]
    print_block("signin (authorization code + PKCE on PostgreSQL; login page under a login flood)", rows)
    return result
