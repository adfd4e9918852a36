#!/usr/bin/env python3
"""End-to-end throughput benchmark of the token issuer, against the raw signing ceiling of its own key.

Run from the repository with the project's venv:

    /work/venv/bin/python bench/bench.py [--seconds N] [--connections C] [--database-url URL]
                                         [--peer] [--pin] [--scenario NAME|all] [--loadgen auto|wrk|python]

Each scenario builds a throw-away issuer (temp data dir, fresh key-encryption key, one registered
client), starts ONE uvicorn worker as a subprocess on 127.0.0.1, drives it from a separate process
(wrk, or a small asyncio load generator when wrk is missing) and returns a dict of figures.

``client_credentials`` also measures, in the same run and while the server is idle, how many RS256
signatures per second one thread makes with the SAME private key the server signs with (read from the
server's database), before and after the load. The goal is tokens/s >= 0.75 x mean raw signs/s.

Adding a scenario: write ``def scenario_x(args) -> dict`` decorated with ``@scenario("x")``, built
from the helpers below (``issuer_instance``, ``create_client``, ``start_server``, ``wrk_lua``,
``run_load``, ``raw_sign_rate``, ``print_block``). ``--scenario all`` runs every registered scenario.
Only loopback traffic; every loop is bounded in time and count; every subprocess is killed in a finally.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
PYTHON = sys.executable
GOAL_RATIO = 0.75
WARMUP_SECONDS = 2.0
RAW_SIGN_SECONDS = 3.0
PEER_DIR = Path("/tmp/peer-oidc")
PEER_SRC = Path("/work/shared/peers/oidc-provider/server.mjs")
PEER_PORT = 3000
PEER_CLIENT = ("s6BhdRkqt3", "gX1fBat3bV")
SCOPES = ("read:orders", "write:orders")
AUDIENCE = "https://api.example.com"
CC_BODY = urllib.parse.urlencode({"grant_type": "client_credentials", "scope": " ".join(SCOPES)})

# Scenario registry ----------------------------------------------------------------------------

Scenario = Callable[[argparse.Namespace], dict[str, Any]]
SCENARIOS: dict[str, Scenario] = {}


def scenario(name: str) -> Callable[[Scenario], Scenario]:
    def register(fn: Scenario) -> Scenario:
        SCENARIOS[name] = fn
        return fn

    return register


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# Small utilities ------------------------------------------------------------------------------

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never route loopback via a proxy


def http(method: str, url: str, body: str | None = None, headers: dict[str, str] | None = None,
         timeout: float = 5.0) -> tuple[int, bytes]:
    assert urllib.parse.urlsplit(url).hostname == HOST, "benchmark traffic goes to 127.0.0.1 only"
    req = urllib.request.Request(url, data=body.encode() if body is not None else None, method=method,
                                 headers=headers or {})
    try:
        with _NO_PROXY.open(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def basic_auth(client_id: str, secret: str) -> str:
    """RFC 6749 §2.3.1: form-urlencode id and secret, then base64 "id:secret"."""
    raw = f"{urllib.parse.quote_plus(client_id)}:{urllib.parse.quote_plus(secret)}"
    return "Basic " + base64.b64encode(raw.encode()).decode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def port_in_use(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((HOST, port)) == 0


def cpu_seconds(pid: int) -> float | None:
    """utime+stime of a live process (all its threads), from /proc/<pid>/stat."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()  # fields after "pid (comm)"; state is fields[0] (= field 3)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def taskset(cpu: int | None) -> list[str]:
    return ["taskset", "-c", str(cpu)] if cpu is not None and shutil.which("taskset") else []


def stop_process(proc: subprocess.Popen | None, name: str, grace: float = 10.0) -> None:
    """SIGTERM the process group we created (start_new_session), then SIGKILL after `grace` s."""
    if proc is None or proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            log(f"{name} (pid {proc.pid}) ignored {sig.name}")


def wait_http_ok(url: str, proc: subprocess.Popen, timeout: float, name: str, logfile: Path | None) -> None:
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / 0.1) + 1):
        if proc.poll() is not None:
            tail = logfile.read_text()[-3000:] if logfile and logfile.exists() else ""
            raise RuntimeError(f"{name} exited with {proc.returncode} before becoming healthy:\n{tail}")
        with contextlib.suppress(OSError):
            status, _ = http("GET", url, timeout=1.0)
            if status == 200:
                return
        if time.monotonic() > deadline:
            break
        time.sleep(0.1)
    raise RuntimeError(f"{name} did not answer 200 on {url} within {timeout:.0f}s")


def jwt_header(token: str) -> dict[str, Any]:
    seg = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(seg + "=" * (-len(seg) % 4)))


def jwt_claims(token: str) -> dict[str, Any]:
    seg = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(seg + "=" * (-len(seg) % 4)))


# Issuer instance: temp data dir, env, CLI ------------------------------------------------------


@dataclass
class Instance:
    data_dir: Path
    env: dict[str, str]
    database_url: str
    port: int
    logs: list[Path] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"


def run_cli(inst: Instance, *argv: str, timeout: float = 120.0, stdin: str | None = None) -> str:
    proc = subprocess.run([PYTHON, "-m", "issuer.cli", *argv], env=inst.env, cwd=inst.data_dir,
                          capture_output=True, text=True, timeout=timeout, input=stdin)
    if proc.returncode != 0:
        raise RuntimeError(f"issuer {' '.join(argv[:2])} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


@contextlib.contextmanager
def issuer_instance(args: argparse.Namespace, database_url: str | None = None, **extra_env: str
                    ) -> Iterator[Instance]:
    """A temp data dir and the environment the CLI and server share. Other ISSUER_* variables of the
    calling shell are dropped so nothing leaks in; ISSUER_KEY_ENCRYPTION_KEYS is kept only with
    --database-url (a persistent PostgreSQL already holds keys wrapped under some KEK).
    `database_url` (a throw-away database made by the scenario) wins over --database-url and gets a
    fresh KEK."""
    data_dir = Path(tempfile.mkdtemp(prefix="issuer-bench-"))
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ISSUER_")}
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        port = free_port()
        persistent = not database_url and bool(args.database_url)
        database_url = database_url or args.database_url or f"sqlite:///{data_dir / 'issuer.sqlite3'}"
        env.update({
            "ISSUER_DATA_DIR": str(data_dir),
            "ISSUER_DATABASE_URL": database_url,
            "ISSUER_URL": f"http://{HOST}:{port}",
            "ISSUER_RATE_LIMIT_TOKEN_PER_CLIENT": "0",
            "ISSUER_LOG_LEVEL": "WARNING",
        })
        inst = Instance(data_dir, env, database_url, port)
        kek = os.environ.get("ISSUER_KEY_ENCRYPTION_KEYS") if persistent else None
        env["ISSUER_KEY_ENCRYPTION_KEYS"] = kek or run_cli(inst, "keys", "new-kek").strip()
        env.update(extra_env)
        run_cli(inst, "migrate")  # a no-op on a fresh SQLite file; needed on PostgreSQL
        yield inst
    finally:
        if args.keep:
            log(f"kept {data_dir}")
        else:
            shutil.rmtree(data_dir, ignore_errors=True)


def create_client(inst: Instance, name: str = "bench", grant_types: tuple[str, ...] = ("client_credentials",),
                  scopes: tuple[str, ...] = SCOPES, audience: str = AUDIENCE) -> tuple[str, str]:
    out = run_cli(inst, "clients", "create", "--name", name, "--grant-type", *grant_types,
                  "--scope", *scopes, "--audience", audience, "--json")
    data = json.loads(out)
    return data["client_id"], data["client_secret"]


@contextlib.contextmanager
def start_server(inst: Instance, cpu: int | None = None, startup_timeout: float = 60.0
                 ) -> Iterator[subprocess.Popen]:
    """`issuer serve` with ONE uvicorn worker (which runs in that same process), waited on /healthz."""
    logfile = inst.data_dir / f"server-{inst.port}.log"
    inst.logs.append(logfile)
    proc = None
    with open(logfile, "wb") as out:
        try:
            proc = subprocess.Popen(
                [*taskset(cpu), PYTHON, "-m", "issuer.cli", "serve", "--host", HOST, "--port", str(inst.port),
                 "--workers", "1"],
                env=inst.env, cwd=inst.data_dir, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
            wait_http_ok(inst.base_url + "/healthz", proc, startup_timeout, "issuer", logfile)
            yield proc
        finally:
            stop_process(proc, "issuer")


# Load generation -------------------------------------------------------------------------------


def wrk_lua(method: str, body: str, headers: dict[str, str]) -> str:
    lines = [f"wrk.method = {json.dumps(method)}", f"wrk.body = {json.dumps(body)}"]
    lines += [f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items()]
    return "\n".join(lines) + "\n"


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def _ms(value: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", value.strip())
    if not m:
        raise ValueError(f"cannot parse wrk time {value!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_wrk(text: str) -> dict[str, Any]:
    """Figures from `wrk --latency` output. wrk's "Non-2xx or 3xx" line counts statuses >= 400; it is
    absent when there were none."""
    def grab(pattern: str) -> re.Match[str]:
        m = re.search(pattern, text)
        if not m:
            raise ValueError(f"wrk output lacks {pattern!r}:\n{text}")
        return m

    total = grab(r"(\d+) requests in ([\d.]+\w+),")
    requests, duration_s = int(total.group(1)), _ms(total.group(2)) / 1e3
    lat = {p: _ms(grab(rf"\n\s+{p}%\s+(\S+)").group(1)) for p in ("50", "75", "90", "99")}
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    non2xx_n = int(non2xx.group(1)) if non2xx else 0
    return {
        "requests": requests,
        "duration_s": duration_s,
        "requests_per_s": float(grab(r"Requests/sec:\s+([\d.]+)").group(1)),
        "ok_per_s": (requests - non2xx_n) / duration_s if duration_s else 0.0,
        "p50_ms": lat["50"], "p75_ms": lat["75"], "p90_ms": lat["90"], "p99_ms": lat["99"],
        "non2xx": non2xx_n,
        "socket_errors": sum(int(x) for x in sock.groups()) if sock else 0,
    }


def wrk_available() -> str | None:
    return shutil.which("wrk") or ("/usr/bin/wrk" if os.access("/usr/bin/wrk", os.X_OK) else None)


def wrk_run(url: str, lua: str, connections: int, seconds: float, workdir: Path, cpu: int | None = None
            ) -> dict[str, Any]:
    """One `wrk -t1 -cC -dNs --latency` run (no warm-up; run_load does that)."""
    assert urllib.parse.urlsplit(url).hostname == HOST
    script = workdir / f"load-{os.getpid()}-{time.monotonic_ns()}.lua"
    script.write_text(lua)
    wrk = wrk_available()
    assert wrk
    cmd = [*taskset(cpu), wrk, "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency",
           "--timeout", "10s", "-s", str(script), url]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=seconds + 60)
    finally:
        stop_process(proc, "wrk", grace=2.0)
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}):\n{out}")
    result = parse_wrk(out)
    result["raw_output"] = out
    return result


def pyload_run(url: str, method: str, body: str, headers: dict[str, str], connections: int, seconds: float,
               warmup: float, cpu: int | None = None) -> dict[str, Any]:
    """Fallback: the asyncio keep-alive load generator below, in a separate process."""
    spec = {"url": url, "method": method, "body": body, "headers": headers, "connections": connections,
            "seconds": seconds, "warmup": warmup}
    proc = subprocess.Popen([*taskset(cpu), PYTHON, str(Path(__file__).resolve()), "--_loadgen", json.dumps(spec)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=warmup + seconds + 60)
    finally:
        stop_process(proc, "loadgen", grace=2.0)
    if proc.returncode != 0:
        raise RuntimeError(f"load generator failed ({proc.returncode}): {err[-2000:]}")
    return json.loads(out)


def run_load(args: argparse.Namespace, url: str, body: str, headers: dict[str, str], workdir: Path,
             method: str = "POST", cpu: int | None = None, watch_pid: int | None = None) -> dict[str, Any]:
    """A 2 s warm-up run (discarded), then the measured run of args.seconds with args.connections
    keep-alive connections. With watch_pid, adds that process's CPU time per request over the
    measured run only (server_cpu_ms_per_req) and the cores it kept busy (server_cores)."""
    if args.loadgen == "wrk" and not wrk_available():
        raise RuntimeError("wrk not found (apt-get install -y wrk)")
    use_wrk = args.loadgen == "wrk" or (args.loadgen == "auto" and wrk_available())
    hdrs = {"Content-Type": "application/x-www-form-urlencoded", **headers}
    if use_wrk:
        lua = wrk_lua(method, body, hdrs)

        def once(seconds: float) -> dict[str, Any]:
            return wrk_run(url, lua, args.connections, seconds, workdir, cpu)

        label = f"wrk -t1 -c{args.connections} -d{max(1, round(args.seconds))}s --latency"
    else:
        if args.loadgen == "auto":
            log("wrk not found (apt-get install -y wrk); using the asyncio load generator (it costs more CPU)")

        def once(seconds: float) -> dict[str, Any]:
            return pyload_run(url, method, body, hdrs, args.connections, seconds, 0.0, cpu)

        label = f"python asyncio keep-alive generator, {args.connections} connections, {args.seconds:g}s"
    once(WARMUP_SECONDS)
    cpu0 = cpu_seconds(watch_pid) if watch_pid else None
    kids0, sys0, t0 = _children_cpu(), machine_cpu(), time.monotonic()
    res = once(args.seconds)
    cpu1 = cpu_seconds(watch_pid) if watch_pid else None
    kids1, sys1, t1 = _children_cpu(), machine_cpu(), time.monotonic()
    wall = t1 - t0
    res["loadgen"] = label
    res["loadgen_cores"] = (kids1 - kids0) / wall
    if sys0 and sys1:
        res["machine_cores"] = (sys1[0] - sys0[0]) / (sys1[1] - sys0[1]) * (os.cpu_count() or 1)
    if cpu0 is not None and cpu1 is not None and res["requests"]:
        res["server_cpu_s"] = cpu1 - cpu0
        res["server_cores"] = (cpu1 - cpu0) / wall
        res["server_cpu_ms_per_req"] = (cpu1 - cpu0) / res["requests"] * 1e3
        if "machine_cores" in res:  # what else ran meanwhile (other people's tests, ...): noise indicator
            res["other_cores"] = max(0.0, res["machine_cores"] - res["server_cores"] - res["loadgen_cores"])
    return res


def wait_for_quiet(max_wait: float, threshold: float = 0.25) -> float | None:
    """Sample machine CPU in 1 s windows until under `threshold` cores busy (our servers are idle at
    this point, so that is other people's work) or `max_wait` s have passed; returns the last sample."""
    busy = None
    deadline = time.monotonic() + max_wait
    for i in range(int(max_wait) + 1):
        a = machine_cpu()
        time.sleep(1.0)
        b = machine_cpu()
        if not a or not b:
            return None
        busy = (b[0] - a[0]) / max(1.0, b[1] - a[1]) * (os.cpu_count() or 1)
        if busy < threshold or time.monotonic() >= deadline:
            break
        if i == 0:
            log(f"machine busy ({busy:.2f} cores used by other processes); waiting up to {max_wait:g} s for quiet")
    if busy is not None and busy >= threshold:
        log(f"still {busy:.2f} cores busy elsewhere; measuring anyway (expect noise)")
    return busy


def _children_cpu() -> float:
    """CPU time of our waited-for children (the finished wrk / load-generator runs)."""
    import resource

    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def machine_cpu() -> tuple[float, float] | None:
    """(busy, total) jiffies of all CPUs, from /proc/stat."""
    try:
        vals = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    idle = vals[3] + (vals[4] if len(vals) > 4 else 0)
    return float(sum(vals[:8]) - idle), float(sum(vals[:8]))


# Raw signing rate of the server's own key --------------------------------------------------------


@contextlib.contextmanager
def _patched_environ(env: dict[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


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

    with _patched_environ(inst.env):
        return asyncio.run(read())


def rfc9068_payload(issuer: str, client_id: str) -> str:
    """The claims the issuer mints for client_credentials (issuer.tokens.access), same encoding."""
    import secrets

    now = int(time.time())
    claims = {"iss": issuer, "sub": client_id, "aud": AUDIENCE, "exp": now + 900, "iat": now,
              "jti": secrets.token_urlsafe(16), "client_id": client_id, "scope": " ".join(SCOPES)}
    return json.dumps(claims, separators=(",", ":"))


def raw_sign_rate(header: dict[str, str], key: Any, payload: str, seconds: float = RAW_SIGN_SECONDS,
                  cpu: int | None = None) -> float:
    """Single-thread joserfc jws.serialize_compact signs/s, bounded by time and count."""
    from joserfc import jws

    algs = [header["alg"]]
    old_affinity = os.sched_getaffinity(0) if cpu is not None else None
    try:
        if cpu is not None:
            os.sched_setaffinity(0, {cpu})
        for _ in range(20):  # warm caches
            jws.serialize_compact(header, payload, key, algorithms=algs)
        n, start = 0, time.perf_counter()
        deadline = start + seconds
        while n < 10_000_000:
            for _ in range(50):
                jws.serialize_compact(header, payload, key, algorithms=algs)
            n += 50
            if time.perf_counter() >= deadline:
                break
        return n / (time.perf_counter() - start)
    finally:
        if old_affinity is not None:
            os.sched_setaffinity(0, old_affinity)


# Output ------------------------------------------------------------------------------------------


def print_block(title: str, rows: list[tuple[str, str]]) -> None:
    width = max(len(k) for k, _ in rows)
    print(f"\n=== {title} " + "=" * max(3, 74 - len(title)))
    for k, v in rows:
        print(f"  {k.ljust(width)}  {v}")
    print("=" * 80, flush=True)


def _cpu_line(load: dict[str, Any]) -> str:
    if "machine_cores" not in load:
        return "n/a"
    other = load.get("other_cores")
    text = (f"machine {load['machine_cores']:.2f} of {os.cpu_count()} cores: server {load.get('server_cores', 0):.2f}, "
            f"load generator {load['loadgen_cores']:.2f}, other processes {other:.2f}" if other is not None
            else f"machine {load['machine_cores']:.2f} cores busy")
    return text + ("   <-- other load: figures are noisy" if other and other > 0.15 else "")


def _fmt_ms(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.2f} ms"


# The peer: panva/node-oidc-provider --------------------------------------------------------------


def _pkg_version(path: Path) -> str | None:
    with contextlib.suppress(OSError, ValueError):
        return json.loads(path.read_text())["version"]
    return None


def setup_peer() -> tuple[Path | None, str]:
    """npm-install oidc-provider@9 and jose@6 into a scratch dir outside the repo; (dir, note) or
    (None, why it was skipped)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        return None, "node/npm not found"
    if not PEER_SRC.exists():
        return None, f"{PEER_SRC} missing"
    PEER_DIR.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(PEER_SRC, PEER_DIR / "server.mjs")
    op = _pkg_version(PEER_DIR / "node_modules/oidc-provider/package.json")
    jose = _pkg_version(PEER_DIR / "node_modules/jose/package.json")
    if not (op and op.startswith("9.") and jose and jose.startswith("6.")):
        log(f"npm install oidc-provider@9 jose@6 in {PEER_DIR}")
        try:
            proc = subprocess.run([npm, "install", "--no-audit", "--no-fund", "oidc-provider@9", "jose@6"],
                                  cwd=PEER_DIR, capture_output=True, text=True, timeout=300)
        except subprocess.TimeoutExpired:
            return None, "npm install timed out after 300 s"
        if proc.returncode != 0:
            return None, f"npm install failed ({proc.returncode}): {(proc.stderr or proc.stdout).strip()[-600:]}"
        op = _pkg_version(PEER_DIR / "node_modules/oidc-provider/package.json")
        jose = _pkg_version(PEER_DIR / "node_modules/jose/package.json")
        if not op:
            return None, "npm install did not produce node_modules/oidc-provider"
    node_v = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=10).stdout.strip()
    return PEER_DIR, f"oidc-provider {op}, jose {jose}, node {node_v}"


def run_peer(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """The same client_credentials load against node-oidc-provider (RS256 at+jwt, in-memory)."""
    peer_dir, note = setup_peer()
    if peer_dir is None:
        return {"skipped": note}
    if port_in_use(PEER_PORT):
        return {"skipped": f"port {PEER_PORT} is already in use on {HOST}"}
    url = f"http://{HOST}:{PEER_PORT}"
    logfile = workdir / "peer.log"
    proc = None
    with open(logfile, "wb") as out:
        try:
            proc = subprocess.Popen([*taskset(0 if args.pin else None), "node", "server.mjs"], cwd=peer_dir,
                                    env={**os.environ, "NODE_ENV": "production"}, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)
            try:
                wait_http_ok(url + "/.well-known/openid-configuration", proc, 30, "oidc-provider", logfile)
            except RuntimeError as exc:
                return {"skipped": str(exc)}
            headers = {"Authorization": basic_auth(*PEER_CLIENT)}
            if args.wait_idle:
                wait_for_quiet(args.wait_idle)
            status, body = http("POST", url + "/token", CC_BODY,
                                {"Content-Type": "application/x-www-form-urlencoded", **headers})
            if status != 200:
                return {"skipped": f"peer token request answered {status}: {body[:300]!r}"}
            token = json.loads(body)["access_token"]
            hdr = jwt_header(token)
            res = run_load(args, url + "/token", CC_BODY, headers, workdir, cpu=1 if args.pin else None,
                           watch_pid=proc.pid)
            res.update(version=note, token_header=hdr, token_bytes=len(token))
            return res
        finally:
            stop_process(proc, "oidc-provider", grace=5.0)


# Scenarios -----------------------------------------------------------------------------------------


@scenario("client_credentials")
def scenario_client_credentials(args: argparse.Namespace) -> dict[str, Any]:
    server_cpu = 0 if args.pin else None
    load_cpu = 1 if args.pin else None
    result: dict[str, Any] = {"scenario": "client_credentials"}
    with issuer_instance(args) as inst:
        client_id, secret = create_client(inst)
        headers = {"Authorization": basic_auth(client_id, secret)}
        token_url = inst.base_url + "/oauth2/token"
        with start_server(inst, cpu=server_cpu) as server:
            # One request by hand: it must succeed and be signed by the key we are about to benchmark.
            status, body = http("POST", token_url, CC_BODY,
                                {"Content-Type": "application/x-www-form-urlencoded", **headers})
            if status != 200:
                raise RuntimeError(f"token request answered {status}: {body[:500]!r}")
            token = json.loads(body)["access_token"]
            tok_header = jwt_header(token)

            header, key = load_active_key(inst)
            from joserfc import jws

            jws.deserialize_compact(token, key, algorithms=[header["alg"]])  # raises unless same key
            if tok_header.get("kid") != header["kid"]:
                raise RuntimeError(f"server signs with {tok_header.get('kid')}, database says {header['kid']}")
            payload = rfc9068_payload(inst.base_url, client_id)
            log(f"server pid {server.pid} on {inst.base_url}; key {header['alg']} kid {header['kid'][:12]}…; "
                f"payload {len(payload)} B (server's token payload {len(token.split('.')[1]) * 3 // 4} B)")

            if args.wait_idle:
                wait_for_quiet(args.wait_idle)
            log(f"raw signs/s before load ({RAW_SIGN_SECONDS:g} s, idle server)")
            raw_before = raw_sign_rate(header, key, payload, cpu=server_cpu)
            log(f"load: {WARMUP_SECONDS:g} s warm-up + {args.seconds:g} s, {args.connections} connections")
            load = run_load(args, token_url, CC_BODY, headers, inst.data_dir, cpu=load_cpu, watch_pid=server.pid)
            time.sleep(0.5)
            status_after, _ = http("POST", token_url, CC_BODY,
                                   {"Content-Type": "application/x-www-form-urlencoded", **headers})
            log(f"raw signs/s after load ({RAW_SIGN_SECONDS:g} s, idle server)")
            raw_after = raw_sign_rate(header, key, payload, cpu=server_cpu)
            if server.poll() is not None:
                raise RuntimeError("the server died during the run")

    raw_mean = (raw_before + raw_after) / 2
    tokens_per_s = load["ok_per_s"]
    ratio = tokens_per_s / raw_mean
    ok_status = load["non2xx"] == 0 and load["socket_errors"] == 0 and status_after == 200
    passed = ratio >= GOAL_RATIO and ok_status
    result.update(
        tokens_per_s=tokens_per_s, requests=load["requests"], duration_s=load["duration_s"],
        p50_ms=load["p50_ms"], p99_ms=load["p99_ms"], non2xx=load["non2xx"], socket_errors=load["socket_errors"],
        server_cpu_ms_per_req=load.get("server_cpu_ms_per_req"), server_cores=load.get("server_cores"),
        loadgen_cores=load.get("loadgen_cores"), other_cores=load.get("other_cores"),
        raw_signs_before=raw_before, raw_signs_after=raw_after, raw_signs_mean=raw_mean,
        ratio=ratio, goal=GOAL_RATIO, passed=passed, loadgen=load["loadgen"], alg=header["alg"],
        kid=header["kid"], database="sqlite" if inst.database_url.startswith("sqlite") else "postgresql",
    )
    spread = abs(raw_before - raw_after) / raw_mean
    rows = [
        ("load", f"{load['loadgen']}, after a {WARMUP_SECONDS:g} s warm-up"
                 + (" (server on cpu0, load on cpu1)" if args.pin else "")),
        ("server", f"1 uvicorn worker, {result['database']}, {header['alg']} kid {header['kid'][:16]}…"),
        ("tokens/s", f"{tokens_per_s:,.1f}   ({load['requests']:,} requests in {load['duration_s']:.2f} s)"),
        ("latency p50 / p99", f"{_fmt_ms(load['p50_ms'])} / {_fmt_ms(load['p99_ms'])}"),
        ("non-2xx responses", f"{load['non2xx']}   (socket errors {load['socket_errors']})"
                              + ("" if ok_status else "   <-- must be 0")),
        ("server CPU / request", f"{_fmt_ms(result['server_cpu_ms_per_req'])}"
                                 + (f"   ({result['server_cores']:.2f} cores busy)" if result["server_cores"] else "")),
        ("CPU during load", _cpu_line(load)),
        ("raw signs/s (1 thread)", f"before {raw_before:,.0f}   after {raw_after:,.0f}   mean {raw_mean:,.0f}"
                                   + (f"   (spread {spread:.0%}: noisy)" if spread > 0.15 else "")),
        ("sign cost ÷ server CPU/token", "n/a" if not result["server_cpu_ms_per_req"] else
         f"{1e3 / raw_mean / result['server_cpu_ms_per_req']:.2f}   (share of the server's CPU that is the signature)"),
        ("tokens/s ÷ raw signs/s", f"{math.floor(ratio * 1000) / 1000:.3f}   goal ≥ {GOAL_RATIO}   {'PASS' if passed else 'FAIL'}"),
    ]
    if args.peer:
        log("peer: node-oidc-provider")
        with tempfile.TemporaryDirectory(prefix="issuer-bench-peer-") as tmp:
            peer = run_peer(args, Path(tmp))
        peer.pop("raw_output", None)
        result["peer"] = peer
        if "skipped" in peer:
            rows.append(("peer", f"SKIPPED: {peer['skipped']}"))
        else:
            result["ratio_vs_peer"] = tokens_per_s / peer["ok_per_s"] if peer["ok_per_s"] else None
            rows += [
                ("peer", f"node-oidc-provider ({peer['version']}), {peer['token_header'].get('alg')} "
                         f"{peer['token_header'].get('typ')}, same load"),
                ("peer tokens/s", f"{peer['ok_per_s']:,.1f}   ({peer['requests']:,} requests, "
                                  f"non-2xx {peer['non2xx']}, socket errors {peer['socket_errors']})"),
                ("peer p50 / p99", f"{_fmt_ms(peer['p50_ms'])} / {_fmt_ms(peer['p99_ms'])}"),
                ("peer CPU / request", f"{_fmt_ms(peer.get('server_cpu_ms_per_req'))}"
                                       + (f"   ({peer['server_cores']:.2f} cores busy)"
                                          if peer.get("server_cores") else "")),
                ("peer CPU during load", _cpu_line(peer)),
                ("ours ÷ peer tokens/s", f"{result['ratio_vs_peer']:.3f}"),
            ]
    print_block("client_credentials (client_secret_basic → RS256 at+jwt)", rows)
    return result


# Fallback load generator (runs in its own process via --_loadgen) ----------------------------------


def _loadgen_main(spec_json: str) -> int:
    spec = json.loads(spec_json)
    parts = urllib.parse.urlsplit(spec["url"])
    if parts.hostname != HOST:
        raise SystemExit("loopback only")
    port, path = parts.port or 80, parts.path or "/"
    body = spec["body"].encode()
    head = [f"{spec['method']} {path} HTTP/1.1", f"Host: {parts.netloc}", f"Content-Length: {len(body)}"]
    head += [f"{k}: {v}" for k, v in spec["headers"].items()]
    request = ("\r\n".join(head) + "\r\n\r\n").encode() + body
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()

    latencies: list[float] = []
    counts = {"ok": 0, "non2xx": 0, "errors": 0}
    state = {"measuring": False, "stop": False}

    async def conn_loop() -> None:
        reader = writer = None
        for _ in range(10_000_000):
            if state["stop"]:
                break
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection(HOST, port)
                t0 = time.perf_counter()
                writer.write(request)
                status_line = await reader.readline()
                status = int(status_line.split()[1])
                length, close = 0, False
                for _ in range(200):
                    line = await reader.readline()
                    if line in (b"\r\n", b""):
                        break
                    name, _, value = line.decode("latin-1").partition(":")
                    name = name.strip().lower()
                    if name == "content-length":
                        length = int(value)
                    elif name == "connection" and value.strip().lower() == "close":
                        close = True
                await reader.readexactly(length)
                if state["measuring"]:
                    latencies.append(time.perf_counter() - t0)
                    counts["ok" if 200 <= status < 300 else "non2xx"] += 1
                if close:
                    writer.close()
                    reader = writer = None
            except (OSError, ValueError, IndexError, asyncio.IncompleteReadError):
                if state["measuring"]:
                    counts["errors"] += 1
                if writer is not None:
                    writer.close()
                reader = writer = None
                await asyncio.sleep(0.01)
        if writer is not None:
            writer.close()

    async def main() -> dict[str, Any]:
        tasks = [asyncio.create_task(conn_loop()) for _ in range(spec["connections"])]
        await asyncio.sleep(spec["warmup"])
        state["measuring"] = True
        t0 = time.perf_counter()
        await asyncio.sleep(spec["seconds"])
        state["measuring"] = False
        duration = time.perf_counter() - t0
        state["stop"] = True
        await asyncio.wait(tasks, timeout=15)
        for t in tasks:
            t.cancel()
        lat = sorted(latencies)

        def pct(p: float) -> float | None:
            return lat[min(len(lat) - 1, int(p / 100 * len(lat)))] * 1e3 if lat else None

        requests = counts["ok"] + counts["non2xx"]
        return {"requests": requests, "duration_s": duration, "requests_per_s": requests / duration,
                "ok_per_s": counts["ok"] / duration, "p50_ms": pct(50), "p75_ms": pct(75), "p90_ms": pct(90),
                "p99_ms": pct(99), "non2xx": counts["non2xx"], "socket_errors": counts["errors"]}

    print(json.dumps(asyncio.run(main())))
    return 0


# CLI -------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=10.0, help="measured load duration (default 10)")
    p.add_argument("--connections", type=int, default=32, help="keep-alive connections (default 32)")
    p.add_argument("--database-url", default="", help="ISSUER_DATABASE_URL (default: SQLite in the temp dir)")
    p.add_argument("--peer", action="store_true", help="also load node-oidc-provider the same way")
    p.add_argument("--scenario", default="client_credentials",
                   help=f"one of {', '.join(SCENARIOS)}, or 'all' (default client_credentials)")
    p.add_argument("--loadgen", choices=("auto", "wrk", "python"), default="auto",
                   help="wrk if present (auto), or force one")
    p.add_argument("--pin", action="store_true",
                   help="pin servers and raw signing to cpu0 and the load generator to cpu1 (taskset)")
    p.add_argument("--wait-idle", type=float, default=30.0, metavar="S",
                   help="before measuring, wait up to S seconds for other processes to go quiet (default 30; 0: off)")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    p.add_argument("--keep", action="store_true", help="keep the temp data dir(s) and server logs")
    args = p.parse_args(argv)
    if not 1 <= args.connections <= 10_000:
        p.error("--connections must be 1..10000")
    if not 1 <= args.seconds <= 3600:
        p.error("--seconds must be 1..3600")
    if not 0 <= args.wait_idle <= 600:
        p.error("--wait-idle must be 0..600")
    if args.scenario != "all" and args.scenario not in SCENARIOS:
        p.error(f"unknown scenario {args.scenario!r}; known: {', '.join(SCENARIOS)}, all")
    if args.database_url and args.database_url.startswith(("postgres://", "postgresql://")):
        host = urllib.parse.urlsplit(args.database_url).hostname
        if host not in (HOST, "localhost", None, ""):
            p.error("--database-url must point at a local database")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--_loadgen"]:
        return _loadgen_main(argv[1])
    args = parse_args(argv)
    try:
        import issuer  # noqa: F401
    except ImportError:
        print(f"cannot import issuer with {PYTHON}; run with /work/venv/bin/python", file=sys.stderr)
        return 2
    names = list(SCENARIOS) if args.scenario == "all" else [args.scenario]
    results, failed = [], False
    for name in names:
        log(f"scenario {name}")
        try:
            res = SCENARIOS[name](args)
        except KeyboardInterrupt:
            log("interrupted; subprocesses stopped")
            return 130
        except Exception as exc:  # noqa: BLE001 - report and go on with the other scenarios
            log(f"scenario {name} failed: {exc}")
            res = {"scenario": name, "error": str(exc), "passed": False}
        results.append(res)
        failed |= not res.get("passed", True)
    if len(results) > 1:
        print_block("summary", [(r["scenario"], "ERROR" if "error" in r else ("PASS" if r.get("passed", True)
                                                                             else "FAIL")) for r in results])
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
