"""In-run baselines: raw RS256/ES256 signs/s (the bare primitive) and verifies/s with the server's own
key, raw argon2id hashes/s."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from bench.common import AUDIENCE, SCOPES, patched_environ
from bench.cpu import busy_cores, machine_cpu
from bench.servers import Instance

RAW_SECONDS = 3.0


def load_active_key(inst: Instance) -> tuple[dict[str, str], Any]:
    """(JWS header, private key) of the key the server signs with, read from its database exactly as
    Keyring.load does: open_services(Settings()) with the same env, refresh the keyring, decrypt."""
    from issuer.services import open_services
    from issuer.settings import Settings
    from keys.generate import load_private_key
    from keys.keyring import private_key_aad

    async def read() -> tuple[dict[str, str], Any]:
        services = await open_services(Settings(_env_file=None))
        try:
            await services.keyring.refresh()
            kid = services.keyring.active_kid
            if kid is None:
                raise RuntimeError("the server's database has no active signing key")
            active = next(k for k in services.keyring.keys if k.kid == kid)
            der = services.envelope.decrypt(active.private_ciphertext, private_key_aad(kid))
            header = {"alg": active.alg, "typ": "at+jwt", "kid": kid}
            return header, load_private_key(active.alg, der)
        finally:
            await services.close()

    with patched_environ(inst.env):
        return asyncio.run(read())


def rfc9068_payload(issuer: str, client_id: str) -> str:
    """The claims the issuer mints for client_credentials (issuer.tokens.access), same encoding."""
    now = int(time.time())
    claims = {"iss": issuer, "sub": client_id, "aud": AUDIENCE, "exp": now + 900, "iat": now,
              "jti": secrets.token_urlsafe(16), "client_id": client_id, "scope": " ".join(SCOPES)}
    return json.dumps(claims, separators=(",", ":"))


@dataclass(frozen=True)
class Rate:
    """Calls per second of wall time, and CPU ms per call (thread CPU time: unlike the wall rate, it
    hardly moves when other processes share the core)."""

    per_s: float
    cpu_ms: float


def rate(fn: Callable[[], object], seconds: float = RAW_SECONDS, cpu: int | None = None) -> Rate:
    """Calls of `fn` in one thread, bounded by time and count, on `cpu` if given."""
    old_affinity = os.sched_getaffinity(0) if cpu is not None else None
    try:
        if cpu is not None:
            os.sched_setaffinity(0, {cpu})
        for _ in range(20):  # warm caches
            fn()
        n, start, cpu0 = 0, time.perf_counter(), time.thread_time()
        deadline = start + seconds
        while n < 10_000_000:
            for _ in range(50):
                fn()
            n += 50
            if time.perf_counter() >= deadline:
                break
        return Rate(n / (time.perf_counter() - start), (time.thread_time() - cpu0) / n * 1e3)
    finally:
        if old_affinity is not None:
            os.sched_setaffinity(0, old_affinity)


def raw_signer(header: dict[str, str], key: Any, payload: str) -> Callable[[], object]:
    """The bare signature primitive over a token's signing input, with the server's own key object:
    ``cryptography``'s RSA PKCS#1 v1.5 or ECDSA P-256 sign with SHA-256, no JOSE library, no JSON."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding

    from keys.signer import b64url

    data = b64url(json.dumps(header, separators=(",", ":")).encode()) + b"." + b64url(payload.encode())
    private = key.private_key
    if header["alg"] == "RS256":
        pkcs1, sha256 = padding.PKCS1v15(), hashes.SHA256()
        return lambda: private.sign(data, pkcs1, sha256)
    ecdsa = ec.ECDSA(hashes.SHA256())
    return lambda: private.sign(data, ecdsa)


def raw_sign_rate(header: dict[str, str], key: Any, payload: str, seconds: float = RAW_SECONDS,
                  cpu: int | None = None) -> Rate:
    """Raw signs/s of the server's key in one thread (see raw_signer), on `cpu` if given."""
    return rate(raw_signer(header, key, payload), seconds, cpu)


def raw_verify_rate(token: str, key: Any, alg: str, seconds: float = RAW_SECONDS, cpu: int | None = None) -> Rate:
    """joserfc deserialize_compact (signature check + JSON) of one token per second, one thread."""
    from joserfc import jws

    return rate(lambda: jws.deserialize_compact(token, key, algorithms=[alg]), seconds, cpu)


def argon2_rate(time_cost: int, memory_kib: int, parallelism: int, threads: int,
                seconds: float = RAW_SECONDS) -> tuple[float, float | None, float]:
    """(argon2-cffi PasswordHasher.hash per second with `threads` threads (argon2 releases the GIL),
    cores that other processes used meanwhile, CPU ms per hash)."""
    from argon2 import PasswordHasher

    ph = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism)
    ph.hash("warm-up")
    m0, own0 = machine_cpu(), time.process_time()
    start = time.perf_counter()
    deadline = start + seconds

    def worker() -> int:
        n = 0
        while n < 100_000 and time.perf_counter() < deadline:
            ph.hash("correct horse battery staple")
            n += 1
        return n

    with ThreadPoolExecutor(threads) as pool:
        total = sum(f.result() for f in [pool.submit(worker) for _ in range(threads)])
    wall = time.perf_counter() - start
    own1 = time.process_time()
    machine = busy_cores(m0, machine_cpu())
    other = None if machine is None else max(0.0, machine - (own1 - own0) / wall)
    return total / wall, other, (own1 - own0) / total * 1e3
