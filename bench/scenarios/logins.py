"""Password-grant logins/s at the configured argon2id cost, beside raw argon2-cffi hashes/s with the
same parameters (1 thread and ISSUER_PASSWORD_HASH_THREADS threads, before and after the load) and
Keycloak's sizing-guide figure of 15 logins/s per vCPU. ISSUER_ARGON2_* and
ISSUER_PASSWORD_HASH_THREADS of the calling shell are passed on.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from bench.baselines import argon2_rate
from bench.common import SCOPES, WARMUP_SECONDS, form_post, log, password_body
from bench.cpu import CORES, wait_for_quiet
from bench.load import run_gen
from bench.report import Rows, errors, fmt_ratio, fmt_us, gen_label, load_rows, print_block, ratio, summary
from bench.servers import (
    NO_RATE_LIMITS,
    create_public_client,
    create_user,
    hash_env_passthrough,
    instance_settings,
    issuer_instance,
    start_server,
)

NAME = "logins"
KEYCLOAK_LOGINS_PER_VCPU = 15.0


def add_arguments(p: argparse.ArgumentParser) -> None:
    pass


def _noise(a: float, b: float, others: tuple[float | None, float | None]) -> str:
    s = abs(a - b) / ((a + b) / 2)
    busy = max(x for x in (*others, 0.0) if x is not None)
    return ((f"   (spread {s:.0%})" if s > 0.15 else "")
            + (f"   (other processes up to {busy:.2f} cores meanwhile: noisy)" if busy > 0.15 else ""))


def run(args: argparse.Namespace) -> dict[str, Any]:
    server_cpu, load_cpu = (0, 1) if args.pin else (None, None)
    with issuer_instance(args, **NO_RATE_LIMITS, **hash_env_passthrough()) as inst:
        st = instance_settings(inst)
        t, m, p, threads = st.argon2_time_cost, st.argon2_memory_kib, st.argon2_parallelism, st.hash_threads
        public_id = create_public_client(inst, grant_types=("password", "refresh_token"))
        username, password = create_user(inst)
        token_url = inst.base_url + "/oauth2/token"
        with start_server(inst, cpu=server_cpu) as server:
            status, data = form_post(token_url, password_body(public_id, username, password))
            if status != 200:
                raise RuntimeError(f"password grant answered {status}: {data}")
            log(f"server pid {server.pid}; argon2id t={t} m={m} KiB p={p}, {threads} hash threads")
            if args.wait_idle:
                wait_for_quiet(args.wait_idle)
            log("raw argon2id hashes/s before load (1 thread, then N threads)")
            raw1_before, o1b, cpu1b = argon2_rate(t, m, p, 1)
            rawn_before, onb, _ = argon2_rate(t, m, p, threads)
            log(f"logins: {args.login_connections} connections, {WARMUP_SECONDS:g} s warm-up + {args.seconds:g} s")
            spec = {"mode": "login", "url": token_url, "client_id": public_id, "username": username,
                    "password": password, "scope": " ".join(SCOPES), "connections": args.login_connections,
                    "warmup": WARMUP_SECONDS, "seconds": args.seconds}
            load = run_gen(spec, inst.data_dir, load_cpu, "logingen", {"server": server.pid})
            time.sleep(0.5)
            if args.wait_idle:
                wait_for_quiet(min(args.wait_idle, 10))
            log("raw argon2id hashes/s after load")
            raw1_after, o1a, cpu1a = argon2_rate(t, m, p, 1)
            rawn_after, ona, _ = argon2_rate(t, m, p, threads)
            if server.poll() is not None:
                raise RuntimeError("the server died during the run")

    rate = load["ok_per_s"]
    raw1, rawn = (raw1_before + raw1_after) / 2, (rawn_before + rawn_after) / 2
    hash_cpu = (cpu1b + cpu1a) / 2  # CPU per hash: less sensitive to other processes than wall rates
    keycloak = KEYCLOAK_LOGINS_PER_VCPU * CORES
    cpu = load.get("server_cpu_ms_per_req")
    result: dict[str, Any] = {
        "scenario": NAME, **summary(load), "logins_per_s": rate, "errors": errors(load),
        "argon2": {"t": t, "m_kib": m, "p": p, "threads": threads}, "raw_hashes_1t": raw1, "raw_hashes_nt": rawn,
        "hash_cpu_ms": hash_cpu, "keycloak_logins_per_s": keycloak, "ratio_vs_keycloak": rate / keycloak,
        "ratio_vs_raw_nt": ratio(rate, rawn), "passed": errors(load) == 0, "database": inst.database,
    }
    rows: Rows = [
        ("argon2id parameters", f"t={t}, m={m} KiB ({m / 1024:.0f} MiB), p={p}; "
                                f"ISSUER_PASSWORD_HASH_THREADS={threads}"),
        ("server", f"1 uvicorn worker, {inst.database}, rate limits off"
                   + (" (server on cpu0, load on cpu1)" if args.pin else "")),
        ("load", gen_label(load) + " (closed loop; each request = password grant, public client)"),
        *load_rows(load, "logins"),
        ("  beyond one hash", "n/a" if not cpu else f"{fmt_us(cpu - hash_cpu)}   (one raw hash = "
                                                    f"{fmt_us(hash_cpu)} CPU, 1-thread runs)"),
        ("raw hashes/s, 1 thread", f"before {raw1_before:,.1f}   after {raw1_after:,.1f}   mean {raw1:,.1f}"
                                   + _noise(raw1_before, raw1_after, (o1b, o1a))),
        (f"raw hashes/s, {threads} threads", f"before {rawn_before:,.1f}   after {rawn_after:,.1f}   mean {rawn:,.1f}"
                                            + _noise(rawn_before, rawn_after, (onb, ona))),
        ("logins/s ÷ raw N-thread hashes/s", fmt_ratio(ratio(rate, rawn))),
        ("Keycloak sizing guide", f"{KEYCLOAK_LOGINS_PER_VCPU:g} logins/s per vCPU × {CORES} = {keycloak:g}/s "
                                  "(argon2 t=5, m=7 MiB there)"),
        ("logins/s ÷ Keycloak", f"{rate / keycloak:.2f}×"),
        ("result", f"{'PASS' if errors(load) == 0 else 'FAIL'} on errors only "
                   "(no throughput goal; the ratios are for reading)"),
    ]
    print_block("logins (password grant at the configured argon2id cost)", rows)
    return result
