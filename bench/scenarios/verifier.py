"""Resource-server verifications/s of issuer_verifier on one core, against the raw RS256 verify rate of
the same key in the same run.

A real issuer (idle after minting one token) serves the metadata and the JWKS; the verifier fetches
them once. Then, pinned to one core, one thread measures per CPU-second, in alternating turns: raw
``jws.deserialize_compact`` of the token with the same key, ``Verifier.verify_sync`` and ``await
Verifier.verify`` (header checks, key cache lookup, signature, claims). Goal: verifier ≥ 0.75 × raw
verifies/s (the header, cache and claims checks cost about 10 µs beside the signature).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

from bench.common import AUDIENCE, CC_BODY, FORM, basic_auth, http, log
from bench.report import Rows, fmt_ratio, print_block
from bench.servers import create_client, issuer_instance, start_server

NAME = "verifier"
GOAL = 0.75


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cpu", type=int, default=0, help="the core the measurements run on (default 0)")


def _interleaved(calls: dict[str, Callable[[], float]], seconds: float) -> dict[str, float]:
    """Calls per CPU-second of each measurement, taken in turns of 0.25 s for ``seconds`` each. The
    thread's CPU time, not wall time: other processes on the core do not count against us. Each
    callable runs a batch of 50 and returns the CPU seconds it took."""
    spent = dict.fromkeys(calls, 0.0)
    done = dict.fromkeys(calls, 0)
    while min(spent.values()) < seconds:
        for name, batch in calls.items():
            turn = 0.0
            while turn < 0.25:
                turn += batch()
                done[name] += 50
            spent[name] += turn
    return {name: done[name] / spent[name] for name in calls}


def _batch(call: Callable[[], object]) -> Callable[[], float]:
    def run() -> float:
        start = time.thread_time()
        for _ in range(50):
            call()
        return time.thread_time() - start

    return run


def _async_batch(loop: asyncio.AbstractEventLoop, call: Callable[[], Awaitable[object]]) -> Callable[[], float]:
    async def batch() -> float:
        start = time.thread_time()
        for _ in range(50):
            await call()
        return time.thread_time() - start

    return lambda: loop.run_until_complete(batch())


def run(args: argparse.Namespace) -> dict[str, Any]:
    from joserfc import jws

    from issuer_verifier import Verifier

    seconds = max(1.0, args.seconds / 2)
    with issuer_instance(args) as inst:
        client_id, secret = create_client(inst)
        with start_server(inst) as server:
            status, body = http("POST", inst.base_url + "/oauth2/token", CC_BODY,
                                {**FORM, "Authorization": basic_auth(client_id, secret)})
            if status != 200:
                raise RuntimeError(f"token request answered {status}: {body[:500]!r}")
            token = json.loads(body)["access_token"]
            verifier = Verifier(inst.base_url, AUDIENCE)
            claims = verifier.verify_sync(token)  # the one JWKS fetch, not measured
            key = verifier.keyset.keys[claims.kid]
            log(f"server pid {server.pid}; key {key.alg} kid {key.kid[:12]}…; measuring on cpu{args.cpu}")
            old_affinity = os.sched_getaffinity(0)
            os.sched_setaffinity(0, {args.cpu})
            loop = asyncio.new_event_loop()
            try:
                rates = _interleaved(
                    {
                        "raw": _batch(lambda: jws.deserialize_compact(token, key.key, algorithms=[key.alg])),
                        "sync": _batch(lambda: verifier.verify_sync(token)),
                        "async": _async_batch(loop, lambda: verifier.verify(token)),
                    },
                    seconds,
                )
            finally:
                loop.close()
                os.sched_setaffinity(0, old_affinity)
    raw, sync, asynchronous = rates["raw"], rates["sync"], rates["async"]
    sync_ratio, async_ratio = sync / raw, asynchronous / raw
    passed = min(sync_ratio, async_ratio) >= GOAL
    rows: Rows = [
        ("key", f"{key.alg} kid {key.kid[:16]}…, one core (cpu{args.cpu}), {seconds:g} s each in 0.25 s turns"),
        ("raw verifies/s", f"{raw:,.0f}   ({1e6 / raw:.0f} µs each; jws.deserialize_compact, same key and token)"),
        ("verify_sync/s", f"{sync:,.0f}   ({1e6 / sync:.0f} µs each)"),
        ("await verify/s", f"{asynchronous:,.0f}   ({1e6 / asynchronous:.0f} µs each)"),
        ("verifier ÷ raw", fmt_ratio(min(sync_ratio, async_ratio), f"≥ {GOAL}", passed)),
        ("JWKS fetches", json.dumps(verifier.keyset.fetches)),
    ]
    print_block("verifier (issuer_verifier, RS256 at+jwt)", rows)
    return {
        "scenario": NAME, "raw_verifies_per_s": raw, "sync_per_s": sync,
        "async_per_s": asynchronous, "ratio_sync": sync_ratio, "ratio_async": async_ratio, "goal": GOAL,
        "passed": passed, "fetches": verifier.keyset.fetches,
    }
