#!/usr/bin/env python3
"""End-to-end throughput benchmark of the token issuer, against the raw signing ceiling of its own key.

Run from the repository with the project's venv:

    /work/venv/bin/python bench/bench.py [--seconds N] [--connections C] [--database-url URL]
                                         [--peer] [--pin] [--scenario NAME|all] [--loadgen auto|wrk|python]
                                         [--login-connections N] [--cc-rate R] [--pg-admin-url URL]

Scenarios: client_credentials (default), refresh, logins, flood; `--scenario all` runs them in turn.

Each scenario builds a throw-away issuer (temp data dir, fresh key-encryption key, one registered
client), starts ONE uvicorn worker as a subprocess on 127.0.0.1, drives it from a separate process
(wrk, or a small asyncio load generator when wrk is missing) and returns a dict of figures.

Each scenario prints its figures beside an in-run baseline and a CPU line (server, load generator,
PostgreSQL where used, and "other processes": anything above ~0.15 cores there means the machine was
busy and the figures are noisy).

``refresh``: refresh-token rotations/s on PostgreSQL (a throw-away database bench_<random>, created
through --pg-admin-url and dropped WITH (FORCE) afterwards, unless --database-url names one). Each of
--connections connections logs in once, then rotates its own chain (the new refresh token from each
response is the next one presented, so none is reused). Driven by the stateful asyncio generator
below (--_oauthgen, raw HTTP/1.1 keep-alive). Baseline: client_credentials tokens/s of the same
server measured just before (wrk). Goal >= 1,000 rotations/s with one worker and 0 errors.

``logins``: password-grant logins/s at the configured argon2id cost, beside raw argon2-cffi
hashes/s with the same parameters (1 thread and ISSUER_PASSWORD_HASH_THREADS threads, before and
after) and Keycloak's sizing-guide figure of 15 logins/s per vCPU.

``flood``: client_credentials at a fixed open-loop rate (--cc-rate, latency counted from the
scheduled send time), alone, then beside a flood of --login-connections concurrent password logins
from another process, then alone again. Goal: p99 with the flood <= 2x the p99 alone.

Rate limits (ISSUER_RATE_LIMIT_LOGIN_PER_USER/_PER_IP, _TOKEN_PER_CLIENT) are 0 in these three.
ISSUER_ARGON2_* and ISSUER_PASSWORD_HASH_THREADS of the calling shell are passed on to logins/flood.

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
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
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


# Stateful OAuth load: users, public clients, throw-away PostgreSQL, CPU accounting --------------

NO_RATE_LIMITS = {
    "ISSUER_RATE_LIMIT_LOGIN_PER_USER": "0",
    "ISSUER_RATE_LIMIT_LOGIN_PER_IP": "0",
    "ISSUER_RATE_LIMIT_TOKEN_PER_CLIENT": "0",
}
# Password-hashing settings a caller may set in the shell; issuer_instance drops ISSUER_* otherwise.
HASH_ENV = ("ISSUER_ARGON2_TIME_COST", "ISSUER_ARGON2_MEMORY_KIB", "ISSUER_ARGON2_PARALLELISM",
            "ISSUER_PASSWORD_HASH_THREADS")


def hash_env_passthrough() -> dict[str, str]:
    env = {k: os.environ[k] for k in HASH_ENV if os.environ.get(k)}
    if env:
        log(f"password hashing from the shell: {env}")
    return env


def create_public_client(inst: Instance, name: str = "bench-public",
                         grant_types: tuple[str, ...] = ("password", "refresh_token")) -> str:
    out = run_cli(inst, "clients", "create", "--public", "--name", name, "--grant-type", *grant_types,
                  "--scope", *SCOPES, "--audience", AUDIENCE, "--json")
    return json.loads(out)["client_id"]


def create_user(inst: Instance) -> tuple[str, str]:
    """A user with a random name and password (the CLI hashes it with the instance's argon2 settings)."""
    import secrets

    username, password = f"bench-{secrets.token_hex(4)}", secrets.token_urlsafe(18)
    run_cli(inst, "users", "create", "--username", username, "--password-stdin", stdin=password + "\n")
    return username, password


def password_body(client_id: str, username: str, password: str) -> str:
    return urllib.parse.urlencode({"grant_type": "password", "username": username, "password": password,
                                   "client_id": client_id, "scope": " ".join(SCOPES)})


def form_post(url: str, body: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    status, raw = http("POST", url, body, {"Content-Type": "application/x-www-form-urlencoded", **(headers or {})},
                       timeout=30.0)
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, {"raw": raw[:300].decode("latin-1")}


def instance_settings(inst: Instance) -> Any:
    """The Settings the server will see (same env, no .env file)."""
    from issuer.settings import Settings

    with _patched_environ(inst.env):
        return Settings(_env_file=None)


def _pg_execute(url: str, *statements: str) -> list[Any]:
    import asyncpg

    async def run() -> list[Any]:
        conn = await asyncpg.connect(url, timeout=10)
        try:
            return [await conn.fetch(sql) for sql in statements]
        finally:
            await conn.close()

    return asyncio.run(run())


@contextlib.contextmanager
def postgres_database(args: argparse.Namespace) -> Iterator[tuple[str, bool]]:
    """(database URL, throw_away). --database-url (PostgreSQL) is used as is; otherwise a database
    bench_<random> is created through --pg-admin-url and dropped WITH (FORCE) afterwards."""
    if args.database_url:
        if not args.database_url.startswith(("postgres://", "postgresql://")):
            raise RuntimeError("this scenario needs PostgreSQL; --database-url is not a postgresql:// URL")
        yield args.database_url, False
        return
    import secrets

    name = f"bench_{secrets.token_hex(6)}"
    try:
        _pg_execute(args.pg_admin_url, f'CREATE DATABASE "{name}"')
    except Exception as exc:  # noqa: BLE001 - report why PostgreSQL is unusable
        raise RuntimeError(f"cannot create a database through {args.pg_admin_url}: {exc}") from exc
    log(f"created PostgreSQL database {name}")
    try:
        yield urllib.parse.urlunsplit(urllib.parse.urlsplit(args.pg_admin_url)._replace(path="/" + name)), True
    finally:
        try:
            _pg_execute(args.pg_admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            log(f"dropped PostgreSQL database {name}")
        except Exception as exc:  # noqa: BLE001
            log(f"could not drop PostgreSQL database {name}: {exc}")


def _pg_probe(url: str) -> tuple[dict[int, str], dict[str, int]]:
    """PostgreSQL processes working for us: backends connected to this database (the server's pool)
    and the shared WAL writer / background writer / checkpointer (shared with anyone else's work);
    and this database's transaction counters (pg_stat_database; backends flush them about every
    second, so a delta over a window is approximate)."""
    dbname = urllib.parse.urlsplit(url).path.lstrip("/")
    rows, stats = _pg_execute(
        url, "SELECT pid, datname, backend_type FROM pg_stat_activity WHERE pid <> pg_backend_pid()",
        "SELECT xact_commit, xact_rollback, tup_inserted, tup_updated, tup_fetched FROM pg_stat_database"
        " WHERE datname = current_database()")
    out = {}
    for r in rows:
        if r["datname"] == dbname and r["backend_type"] == "client backend":
            out[r["pid"]] = "backend"
        elif r["backend_type"] in ("walwriter", "background writer", "checkpointer"):
            out[r["pid"]] = "aux"
    return out, dict(stats[0]) if stats else {}


@dataclass
class CpuWatch:
    """CPU snapshots of our own processes (label -> pid), optionally PostgreSQL's processes, and the
    whole machine; diff() turns two snapshots into cores busy per label plus "other processes"."""

    pids: dict[str, int]
    pg_url: str | None = None

    def snap(self) -> dict[str, Any]:
        pg: dict[int, tuple[str, float | None]] = {}
        pg_stats: dict[str, int] = {}
        if self.pg_url:
            with contextlib.suppress(Exception):
                pids, pg_stats = _pg_probe(self.pg_url)
                pg = {pid: (kind, cpu_seconds(pid)) for pid, kind in pids.items()}
        return {"t": time.monotonic(), "machine": machine_cpu(),
                "ours": {k: cpu_seconds(p) for k, p in self.pids.items()}, "pg": pg, "pg_stats": pg_stats}

    @staticmethod
    def diff(a: dict[str, Any], b: dict[str, Any], requests: int) -> dict[str, Any]:
        wall = b["t"] - a["t"]
        cores: dict[str, float] = {}
        for k, end in b["ours"].items():
            start = a["ours"].get(k)
            if start is not None and end is not None:
                cores[k] = (end - start) / wall
        res: dict[str, Any] = {"cores": cores, "cpu_window_s": wall}
        if a["pg"] or b["pg"]:
            pg = {"backend": 0.0, "aux": 0.0}
            for pid, (kind, end) in b["pg"].items():
                start = a["pg"].get(pid, (kind, 0.0))[1]  # a backend opened inside the window: all of it
                if end is not None and start is not None:
                    pg[kind] += end - start
            cores["postgres"] = (pg["backend"] + pg["aux"]) / wall
            res["pg_backend_cores"], res["pg_aux_cores"] = pg["backend"] / wall, pg["aux"] / wall
            if requests:
                res["pg_cpu_ms_per_req"] = (pg["backend"] + pg["aux"]) / requests * 1e3
                sa, sb = a.get("pg_stats") or {}, b.get("pg_stats") or {}
                if sa and sb:
                    res["pg_per_req"] = {k: (sb[k] - sa[k]) / requests for k in sb if k in sa}
        if a["machine"] and b["machine"]:
            ma, mb = a["machine"], b["machine"]
            res["machine_cores"] = (mb[0] - ma[0]) / max(1.0, mb[1] - ma[1]) * (os.cpu_count() or 1)
            res["other_cores"] = max(0.0, res["machine_cores"] - sum(cores.values()))
        if "server" in cores:
            res["server_cores"] = cores["server"]
            if requests:
                res["server_cpu_ms_per_req"] = cores["server"] * wall / requests * 1e3
        if "loadgen" in cores:
            res["loadgen_cores"] = cores["loadgen"]
            if requests:
                res["loadgen_cpu_ms_per_req"] = cores["loadgen"] * wall / requests * 1e3
        return res


def _cores_line(res: dict[str, Any]) -> str:
    if "machine_cores" not in res:
        return "n/a"
    parts = ", ".join(f"{k} {v:.2f}" for k, v in res["cores"].items())
    other = res.get("other_cores", 0.0)
    return (f"machine {res['machine_cores']:.2f} of {os.cpu_count()} cores: {parts}, other processes {other:.2f}"
            + ("   <-- other load: figures are noisy" if other > 0.15 else ""))


class GenProcess:
    """One run of this file's --_oauthgen load generator as a separate process (pinned with taskset
    when cpu is given). It prints "measure-start" and "measure-end" around its measured window, then
    one JSON line, so the caller can take CPU snapshots exactly over that window. Killed on exit."""

    def __init__(self, spec: dict[str, Any], workdir: Path, cpu: int | None, name: str) -> None:
        self.name = name
        self.errfile = workdir / f"{name}-{time.monotonic_ns()}.err"
        self._err = open(self.errfile, "wb")
        bound = spec.get("setup_timeout", 60) + spec["warmup"] + spec["seconds"] + 60
        self.proc = subprocess.Popen([*taskset(cpu), PYTHON, str(Path(__file__).resolve()), "--_oauthgen",
                                      json.dumps(spec)], stdout=subprocess.PIPE, stderr=self._err, text=True,
                                     start_new_session=True)
        import threading

        self._timer = threading.Timer(bound, lambda: stop_process(self.proc, name, grace=1.0))
        self._timer.daemon = True
        self._timer.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _stderr_tail(self) -> str:
        self._err.flush()
        with contextlib.suppress(OSError):
            return self.errfile.read_text(errors="replace")[-2000:]
        return ""

    def wait_for(self, marker: str) -> None:
        assert self.proc.stdout is not None
        for _ in range(100):
            line = self.proc.stdout.readline()
            if not line:
                self.proc.wait(timeout=10)
                raise RuntimeError(f"{self.name} exited ({self.proc.returncode}) before {marker}: "
                                   f"{self._stderr_tail()}")
            if line.strip() == marker:
                return
        raise RuntimeError(f"{self.name}: no {marker} line")

    def stop_early(self) -> None:
        """Ask it to end its measured window now (SIGUSR1), e.g. a background flood."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGUSR1)

    def result(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        rest = self.proc.stdout.read()
        self.proc.wait(timeout=30)
        if self.proc.returncode != 0:
            raise RuntimeError(f"{self.name} failed ({self.proc.returncode}): {self._stderr_tail()}")
        return json.loads(rest.strip().splitlines()[-1])

    def __enter__(self) -> GenProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()
        stop_process(self.proc, self.name, grace=2.0)
        self._err.close()


def run_gen(spec: dict[str, Any], workdir: Path, cpu: int | None, name: str, watch: dict[str, int],
            pg_url: str | None = None) -> dict[str, Any]:
    """Run a generator to completion; CPU figures cover its measured window only."""
    with GenProcess(spec, workdir, cpu, name) as gen:
        cw = CpuWatch({**watch, "loadgen": gen.pid}, pg_url)
        gen.wait_for("measure-start")
        a = cw.snap()
        gen.wait_for("measure-end")
        b = cw.snap()
        res = gen.result()
    res.update(CpuWatch.diff(a, b, res["requests"]))
    return res


def _errors_line(res: dict[str, Any]) -> str:
    n = res["non2xx"] + res["socket_errors"] + res.get("bad", 0) + res.get("setup_errors", 0)
    text = (f"{n}   (non-2xx {res['non2xx']}, socket {res['socket_errors']}, malformed {res.get('bad', 0)}"
            + (f", chains lost {res['chains_lost']}" if "chains_lost" in res else "")
            + (f", setup {res['setup_errors']}" if res.get("setup_errors") else "") + ")")
    if n or res.get("chains_lost"):
        text += "   <-- must be 0; first: " + "; ".join(res.get("first_errors", []))[:300]
    return text


def _latency_line(res: dict[str, Any]) -> str:
    return f"{_fmt_ms(res['p50_ms'])} / {_fmt_ms(res['p99_ms'])}   (max {_fmt_ms(res['max_ms'])})"


def _gen_label(res: dict[str, Any]) -> str:
    return res["loadgen"] + (f", {res['loadgen_cpu_ms_per_req']:.3f} ms loadgen CPU/request"
                             if res.get("loadgen_cpu_ms_per_req") else "")


def _argon2_rate(time_cost: int, memory_kib: int, parallelism: int, threads: int,
                 seconds: float = RAW_SIGN_SECONDS) -> tuple[float, float | None, float]:
    """(argon2-cffi PasswordHasher.hash per second with `threads` threads (argon2 releases the GIL),
    cores that other processes used meanwhile, CPU ms per hash)."""
    from concurrent.futures import ThreadPoolExecutor

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
    m1, own1 = machine_cpu(), time.process_time()
    other = None
    if m0 and m1:
        machine = (m1[0] - m0[0]) / max(1.0, m1[1] - m0[1]) * (os.cpu_count() or 1)
        other = max(0.0, machine - (own1 - own0) / wall)
    return total / wall, other, (own1 - own0) / total * 1e3


# Scenario: refresh-token rotation on PostgreSQL ----------------------------------------------------

REFRESH_GOAL = 1000.0


@scenario("refresh")
def scenario_refresh(args: argparse.Namespace) -> dict[str, Any]:
    server_cpu, load_cpu = (0, 1) if args.pin else (None, None)
    result: dict[str, Any] = {"scenario": "refresh"}
    with postgres_database(args) as (db_url, throwaway), \
            issuer_instance(args, database_url=db_url if throwaway else None, **NO_RATE_LIMITS) as inst:
        cc_id, cc_secret = create_client(inst)
        cc_headers = {"Authorization": basic_auth(cc_id, cc_secret)}
        public_id = create_public_client(inst)
        username, password = create_user(inst)
        token_url = inst.base_url + "/oauth2/token"
        with start_server(inst, cpu=server_cpu) as server:
            # By hand first: a login and two rotations must work, each giving a new refresh token.
            status, data = form_post(token_url, password_body(public_id, username, password))
            if status != 200 or "refresh_token" not in data:
                raise RuntimeError(f"password grant answered {status}: {data}")
            rt = data["refresh_token"]
            for _ in range(2):
                status, data = form_post(token_url, urllib.parse.urlencode(
                    {"grant_type": "refresh_token", "refresh_token": rt, "client_id": public_id}))
                if status != 200 or data.get("refresh_token") in (None, rt):
                    raise RuntimeError(f"refresh grant answered {status}: {data}")
                rt = data["refresh_token"]
            log(f"server pid {server.pid} on {inst.base_url}; PostgreSQL "
                f"{'throw-away ' if throwaway else ''}database {urllib.parse.urlsplit(db_url).path.lstrip('/')}")

            if args.wait_idle:
                wait_for_quiet(args.wait_idle)
            log(f"baseline: client_credentials, {WARMUP_SECONDS:g} s warm-up + {args.seconds:g} s")
            cc = run_load(args, token_url, CC_BODY, cc_headers, inst.data_dir, cpu=load_cpu, watch_pid=server.pid)
            consumed0 = _pg_execute(db_url, "SELECT count(*) AS n FROM refresh_tokens WHERE consumed_at IS NOT NULL"
                                    )[0][0]["n"]
            if args.wait_idle:
                wait_for_quiet(min(args.wait_idle, 10))
            log(f"refresh: {args.connections} chains (one login each), {WARMUP_SECONDS:g} s warm-up + "
                f"{args.seconds:g} s")
            spec = {"mode": "refresh", "url": token_url, "client_id": public_id, "username": username,
                    "password": password, "scope": " ".join(SCOPES), "connections": args.connections,
                    "warmup": WARMUP_SECONDS, "seconds": args.seconds}
            load = run_gen(spec, inst.data_dir, load_cpu, "refreshgen", {"server": server.pid}, pg_url=db_url)
            consumed1 = _pg_execute(db_url, "SELECT count(*) AS n FROM refresh_tokens WHERE consumed_at IS NOT NULL"
                                    )[0][0]["n"]
            if server.poll() is not None:
                raise RuntimeError("the server died during the run")

    rate = load["ok_per_s"]
    errors = load["non2xx"] + load["socket_errors"] + load["bad"] + load["setup_errors"] + load["chains_lost"]
    cc_ok = cc["non2xx"] == 0 and cc["socket_errors"] == 0
    passed = rate >= REFRESH_GOAL and errors == 0
    cc_cpu, rt_cpu = cc.get("server_cpu_ms_per_req"), load.get("server_cpu_ms_per_req")
    budget = (rt_cpu or 0.0) + (load.get("pg_cpu_ms_per_req") or 0.0) + (load.get("loadgen_cpu_ms_per_req") or 0.0)
    result.update(
        rotations_per_s=rate, requests=load["requests"], duration_s=load["duration_s"], p50_ms=load["p50_ms"],
        p99_ms=load["p99_ms"], errors=errors, server_cpu_ms_per_rotation=rt_cpu, server_cores=load.get("server_cores"),
        pg_cpu_ms_per_rotation=load.get("pg_cpu_ms_per_req"), pg_per_rotation=load.get("pg_per_req"),
        pg_cores=load.get("cores", {}).get("postgres"),
        loadgen_cores=load.get("loadgen_cores"), other_cores=load.get("other_cores"),
        cc_tokens_per_s=cc["ok_per_s"], cc_p50_ms=cc["p50_ms"], cc_p99_ms=cc["p99_ms"],
        cc_server_cpu_ms_per_req=cc_cpu, cc_other_cores=cc.get("other_cores"),
        cpu_budget_ms_per_rotation=budget or None, ceiling_one_worker=1e3 / rt_cpu if rt_cpu else None,
        consumed_in_db=consumed1 - consumed0, goal=REFRESH_GOAL, passed=passed, loadgen=load["loadgen"],
        database="postgresql (throw-away)" if throwaway else "postgresql (--database-url)",
    )
    rows = [
        ("server", f"1 uvicorn worker, {result['database']}, rate limits off"
                   + (" (server on cpu0, load on cpu1, PostgreSQL unpinned)" if args.pin else "")),
        ("baseline: client_credentials", f"{cc['ok_per_s']:,.1f} tokens/s   p50/p99 {_fmt_ms(cc['p50_ms'])} / "
                                         f"{_fmt_ms(cc['p99_ms'])}   ({cc['loadgen']}"
                                         + ("" if cc_ok else f"; ERRORS non-2xx {cc['non2xx']}") + ")"),
        ("  server CPU / token", _fmt_ms(cc_cpu) + (f"   ({cc['server_cores']:.2f} cores busy)"
                                                      if cc.get("server_cores") else "")),
        ("  CPU during baseline", _cpu_line(cc)),
        ("refresh load", _gen_label(load)),
        ("rotations/s", f"{rate:,.1f}   ({load['requests']:,} in {load['duration_s']:.2f} s; "
                        f"{consumed1 - consumed0:,} tokens consumed in the DB incl. warm-up)"),
        ("latency p50 / p99", _latency_line(load)),
        ("errors", _errors_line(load)),
        ("server CPU / rotation", _fmt_ms(rt_cpu) + (f"   ({load['server_cores']:.2f} cores busy)"
                                                      if load.get("server_cores") is not None else "")),
        ("  of which beyond a cc token", "n/a" if not (rt_cpu and cc_cpu) else
         f"{rt_cpu - cc_cpu:.3f} ms   (rotation ÷ cc CPU = {rt_cpu / cc_cpu:.2f}×: "
         "asyncpg round trips and the rest of the grant)"),
        ("PostgreSQL CPU / rotation", "n/a" if load.get("pg_cpu_ms_per_req") is None else
         f"{load['pg_cpu_ms_per_req']:.3f} ms   (backends {load['pg_backend_cores']:.2f} cores, "
         f"WAL/bg writer+checkpointer {load['pg_aux_cores']:.2f} cores)"),
        ("PostgreSQL work / rotation", "n/a" if not load.get("pg_per_req") else
         "≈ " + ", ".join(f"{v:.2f} {k}" for k, v in load["pg_per_req"].items())
         + "   (pg_stat_database; each statement outside a transaction block is its own xact)"),
        ("CPU during load", _cores_line(load)),
        ("ceiling from CPU / rotation", "n/a" if not (rt_cpu and load.get("pg_cpu_ms_per_req") is not None) else
         f"1 worker alone at 1 core: {1e3 / rt_cpu:,.0f}/s;   server+PostgreSQL+loadgen "
         f"{budget:.2f} ms → {(os.cpu_count() or 1) * 1e3 / budget:,.0f}/s on {os.cpu_count()} idle cores"),
        ("rotations/s ÷ cc tokens/s", f"{rate / cc['ok_per_s']:.3f}" if cc["ok_per_s"] else "n/a"),
        ("Keycloak sizing guide", f"120 refresh/s per vCPU → 240/s on 2 vCPU; ours {rate / 240:.1f}×"),
        ("rotations/s goal", f"≥ {REFRESH_GOAL:,.0f}   {'PASS' if passed else 'FAIL'}"),
    ]
    print_block("refresh (public client, refresh_token rotation, PostgreSQL)", rows)
    return result


# Scenario: password logins at the configured argon2id cost ---------------------------------------

KEYCLOAK_LOGINS_PER_VCPU = 15.0


@scenario("logins")
def scenario_logins(args: argparse.Namespace) -> dict[str, Any]:
    server_cpu, load_cpu = (0, 1) if args.pin else (None, None)
    result: dict[str, Any] = {"scenario": "logins"}
    with issuer_instance(args, **NO_RATE_LIMITS, **hash_env_passthrough()) as inst:
        st = instance_settings(inst)
        t, m, p, threads = st.argon2_time_cost, st.argon2_memory_kib, st.argon2_parallelism, st.hash_threads
        public_id = create_public_client(inst, grant_types=("password", "refresh_token"))
        username, password = create_user(inst)
        token_url = inst.base_url + "/oauth2/token"
        body = password_body(public_id, username, password)
        with start_server(inst, cpu=server_cpu) as server:
            status, data = form_post(token_url, body)
            if status != 200:
                raise RuntimeError(f"password grant answered {status}: {data}")
            log(f"server pid {server.pid}; argon2id t={t} m={m} KiB p={p}, {threads} hash threads")
            if args.wait_idle:
                wait_for_quiet(args.wait_idle)
            log("raw argon2id hashes/s before load (1 thread, then N threads)")
            raw1_before, o1b, cpu1b = _argon2_rate(t, m, p, 1)
            rawn_before, onb, _ = _argon2_rate(t, m, p, threads)
            log(f"logins: {args.login_connections} connections, {WARMUP_SECONDS:g} s warm-up + {args.seconds:g} s")
            spec = {"mode": "login", "url": token_url, "client_id": public_id, "username": username,
                    "password": password, "scope": " ".join(SCOPES), "connections": args.login_connections,
                    "warmup": WARMUP_SECONDS, "seconds": args.seconds}
            load = run_gen(spec, inst.data_dir, load_cpu, "logingen", {"server": server.pid})
            time.sleep(0.5)
            if args.wait_idle:
                wait_for_quiet(min(args.wait_idle, 10))
            log("raw argon2id hashes/s after load")
            raw1_after, o1a, cpu1a = _argon2_rate(t, m, p, 1)
            rawn_after, ona, _ = _argon2_rate(t, m, p, threads)
            if server.poll() is not None:
                raise RuntimeError("the server died during the run")

    rate = load["ok_per_s"]
    raw1, rawn = (raw1_before + raw1_after) / 2, (rawn_before + rawn_after) / 2
    hash_cpu = (cpu1b + cpu1a) / 2  # CPU per hash: less sensitive to other processes than wall rates
    errors = load["non2xx"] + load["socket_errors"] + load["bad"]
    cores = os.cpu_count() or 1
    keycloak = KEYCLOAK_LOGINS_PER_VCPU * cores
    cpu = load.get("server_cpu_ms_per_req")
    result.update(
        logins_per_s=rate, requests=load["requests"], p50_ms=load["p50_ms"], p99_ms=load["p99_ms"], errors=errors,
        argon2={"t": t, "m_kib": m, "p": p, "threads": threads}, raw_hashes_1t=raw1, raw_hashes_nt=rawn,
        raw_hashes_1t_before=raw1_before, raw_hashes_1t_after=raw1_after, raw_hashes_nt_before=rawn_before,
        raw_hashes_nt_after=rawn_after, raw_other_cores=[o1b, onb, o1a, ona], hash_cpu_ms=hash_cpu,
        server_cpu_ms_per_login=cpu, server_cores=load.get("server_cores"),
        other_cores=load.get("other_cores"), keycloak_logins_per_s=keycloak, ratio_vs_keycloak=rate / keycloak,
        ratio_vs_raw_nt=rate / rawn if rawn else None, passed=errors == 0, loadgen=load["loadgen"],
        database="sqlite" if inst.database_url.startswith("sqlite") else "postgresql",
    )

    def spread(a: float, b: float, oa: float | None, ob: float | None) -> str:
        s = abs(a - b) / ((a + b) / 2)
        busy = max(x for x in (oa, ob, 0.0) if x is not None)
        return ((f"   (spread {s:.0%})" if s > 0.15 else "")
                + (f"   (other processes up to {busy:.2f} cores meanwhile: noisy)" if busy > 0.15 else ""))

    rows = [
        ("argon2id parameters", f"t={t}, m={m} KiB ({m / 1024:.0f} MiB), p={p}; "
                                f"ISSUER_PASSWORD_HASH_THREADS={threads}"),
        ("server", f"1 uvicorn worker, {result['database']}, rate limits off"
                   + (" (server on cpu0, load on cpu1)" if args.pin else "")),
        ("load", _gen_label(load) + " (closed loop; each request = password grant, public client)"),
        ("logins/s", f"{rate:,.1f}   ({load['requests']:,} in {load['duration_s']:.2f} s)"),
        ("latency p50 / p99", _latency_line(load)),
        ("errors", _errors_line(load)),
        ("server CPU / login", _fmt_ms(cpu) + (f"   ({load['server_cores']:.2f} cores busy)"
                                                if load.get("server_cores") is not None else "")),
        ("  beyond one hash", "n/a" if not cpu else f"{cpu - hash_cpu:.2f} ms   (one raw hash = {hash_cpu:.2f} ms CPU, "
                                                    f"1-thread runs)"),
        ("CPU during load", _cores_line(load)),
        ("raw hashes/s, 1 thread", f"before {raw1_before:,.1f}   after {raw1_after:,.1f}   mean {raw1:,.1f}"
                                   + spread(raw1_before, raw1_after, o1b, o1a)),
        (f"raw hashes/s, {threads} threads", f"before {rawn_before:,.1f}   after {rawn_after:,.1f}   mean {rawn:,.1f}"
                                            + spread(rawn_before, rawn_after, onb, ona)),
        ("logins/s ÷ raw N-thread hashes/s", f"{rate / rawn:.3f}" if rawn else "n/a"),
        ("Keycloak sizing guide", f"{KEYCLOAK_LOGINS_PER_VCPU:g} logins/s per vCPU × {cores} = {keycloak:g}/s "
                                  f"(argon2 t=5, m=7 MiB there)"),
        ("logins/s ÷ Keycloak", f"{rate / keycloak:.2f}×"),
        ("result", f"{'PASS' if errors == 0 else 'FAIL'} on errors only "
                   "(no throughput goal; the ratios are for reading)"),
    ]
    print_block("logins (password grant at the configured argon2id cost)", rows)
    return result


# Scenario: client_credentials latency while a login flood runs ------------------------------------

FLOOD_GOAL = 2.0


@scenario("flood")
def scenario_flood(args: argparse.Namespace) -> dict[str, Any]:
    server_cpu, load_cpu = (0, 1) if args.pin else (None, None)
    result: dict[str, Any] = {"scenario": "flood"}
    with issuer_instance(args, **NO_RATE_LIMITS, **hash_env_passthrough()) as inst:
        st = instance_settings(inst)
        cc_id, cc_secret = create_client(inst)
        public_id = create_public_client(inst, grant_types=("password", "refresh_token"))
        username, password = create_user(inst)
        token_url = inst.base_url + "/oauth2/token"
        with start_server(inst, cpu=server_cpu) as server:
            for body, hdrs in ((CC_BODY, {"Authorization": basic_auth(cc_id, cc_secret)}),
                               (password_body(public_id, username, password), {})):
                status, data = form_post(token_url, body, hdrs)
                if status != 200:
                    raise RuntimeError(f"token endpoint answered {status}: {data}")
            cc_spec = {"mode": "open", "url": token_url, "body": CC_BODY,
                       "headers": {"Authorization": basic_auth(cc_id, cc_secret)}, "rate": args.cc_rate,
                       "connections": 16, "warmup": WARMUP_SECONDS, "seconds": args.seconds}
            flood_spec = {"mode": "login", "url": token_url, "client_id": public_id, "username": username,
                          "password": password, "scope": " ".join(SCOPES), "connections": args.login_connections,
                          "warmup": 1.0, "seconds": WARMUP_SECONDS + args.seconds + 30}
            watch = {"server": server.pid}

            def alone(label: str) -> dict[str, Any]:
                if args.wait_idle:
                    wait_for_quiet(min(args.wait_idle, 15))
                log(f"client_credentials alone ({label}): {args.cc_rate:g} req/s open loop, "
                    f"{WARMUP_SECONDS:g} s warm-up + {args.seconds:g} s")
                return run_gen(cc_spec, inst.data_dir, load_cpu, "ccgen", watch)

            before = alone("before")
            log(f"client_credentials with a login flood of {args.login_connections} connections")
            with GenProcess(flood_spec, inst.data_dir, load_cpu, "floodgen") as flood:
                flood.wait_for("measure-start")
                flooded = run_gen(cc_spec, inst.data_dir, load_cpu, "ccgen", {**watch, "flood": flood.pid})
                flood.stop_early()
                flood.wait_for("measure-end")
                flood_res = flood.result()
            after = alone("after")
            if server.poll() is not None:
                raise RuntimeError("the server died during the run")

    base_p99 = (before["p99_ms"] + after["p99_ms"]) / 2
    ratio = flooded["p99_ms"] / base_p99 if base_p99 else math.inf
    errors = sum(r["non2xx"] + r["socket_errors"] + r.get("unfinished", 0) for r in (before, flooded, after))
    passed = ratio <= FLOOD_GOAL and errors == 0
    result.update(
        cc_rate=args.cc_rate, login_connections=args.login_connections,
        alone_before={k: before.get(k) for k in ("ok_per_s", "p50_ms", "p99_ms", "other_cores", "server_cores")},
        alone_after={k: after.get(k) for k in ("ok_per_s", "p50_ms", "p99_ms", "other_cores", "server_cores")},
        flooded={k: flooded.get(k) for k in ("ok_per_s", "p50_ms", "p99_ms", "other_cores", "server_cores")},
        flood_logins_per_s=flood_res["ok_per_s"], flood_errors=flood_res["non2xx"] + flood_res["socket_errors"],
        p99_ratio=ratio, goal=FLOOD_GOAL, errors=errors, passed=passed,
        argon2={"t": st.argon2_time_cost, "m_kib": st.argon2_memory_kib, "p": st.argon2_parallelism,
                "threads": st.hash_threads},
        database="sqlite" if inst.database_url.startswith("sqlite") else "postgresql",
    )

    def line(r: dict[str, Any]) -> str:
        return (f"p50 {_fmt_ms(r['p50_ms'])}   p99 {_fmt_ms(r['p99_ms'])}   (max {_fmt_ms(r['max_ms'])}; "
                f"{r['ok_per_s']:,.1f} ok/s of {args.cc_rate:g} scheduled; errors "
                f"{r['non2xx'] + r['socket_errors'] + r.get('unfinished', 0)})")

    rows = [
        ("server", f"1 uvicorn worker, {result['database']}, rate limits off, argon2id t={st.argon2_time_cost} "
                   f"m={st.argon2_memory_kib} KiB p={st.argon2_parallelism}, {st.hash_threads} hash threads"
                   + (" (server on cpu0, loads on cpu1)" if args.pin else "")),
        ("cc load", f"{before['loadgen']}; latency from the scheduled send time"),
        ("login flood", f"{flood_res['loadgen']} (closed loop, separate process)"),
        ("cc alone, before", line(before)),
        ("  CPU", _cores_line(before)),
        ("cc with login flood", line(flooded)),
        ("  CPU", _cores_line(flooded)),
        ("  flood achieved", f"{flood_res['ok_per_s']:,.1f} logins/s, p50 {_fmt_ms(flood_res['p50_ms'])}, "
                             f"errors {flood_res['non2xx'] + flood_res['socket_errors']}"),
        ("cc alone, after", line(after)),
        ("  CPU", _cores_line(after)),
        ("p50 flood ÷ alone", f"{flooded['p50_ms'] / ((before['p50_ms'] + after['p50_ms']) / 2):.2f}×"),
        ("p99 flood ÷ alone (mean)", f"{ratio:.2f}×   (vs before {flooded['p99_ms'] / before['p99_ms']:.2f}×, "
                                     f"vs after {flooded['p99_ms'] / after['p99_ms']:.2f}×)   goal ≤ {FLOOD_GOAL:g}×   "
                                     f"{'PASS' if passed else 'FAIL'}"),
    ]
    print_block("flood (client_credentials p99 at a fixed rate, with and without a login flood)", rows)
    return result


# Stateful asyncio load generator (runs in its own process via --_oauthgen) -------------------------


def _oauthgen_main(spec_json: str) -> int:
    """Modes: "login" (closed loop of password grants), "refresh" (each connection logs in once, then
    rotates its own refresh token in a chain, never reusing one), "open" (a fixed request rate,
    latency measured from each request's scheduled send time, so a slow server is not hidden)."""
    spec = json.loads(spec_json)
    parts = urllib.parse.urlsplit(spec["url"])
    if parts.hostname != HOST:
        raise SystemExit("loopback only")
    port, path, mode = parts.port or 80, parts.path or "/", spec["mode"]
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    extra = "".join(f"{k}: {v}\r\n" for k, v in spec.get("headers", {}).items())
    prefix = (f"POST {path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
              f"Content-Type: application/x-www-form-urlencoded\r\n{extra}").encode()
    counts = {"ok": 0, "non2xx": 0, "socket_errors": 0, "bad": 0, "setup_errors": 0, "chains_lost": 0,
              "unfinished": 0}
    latencies: list[float] = []
    first_errors: list[str] = []
    state = {"measuring": False, "stop": False}

    def note(msg: str) -> None:
        if len(first_errors) < 3:
            first_errors.append(msg[:200])

    class Conn:
        def __init__(self) -> None:
            self.reader: asyncio.StreamReader | None = None
            self.writer: asyncio.StreamWriter | None = None

        def close(self) -> None:
            if self.writer is not None:
                self.writer.close()
            self.reader = self.writer = None

        async def post(self, body: bytes) -> tuple[int, bytes]:
            try:
                if self.writer is None:
                    self.reader, self.writer = await asyncio.open_connection(HOST, port)
                assert self.reader is not None
                self.writer.write(prefix + b"Content-Length: %d\r\n\r\n" % len(body) + body)
                status_line = await self.reader.readline()
                if not status_line:
                    raise ConnectionError("connection closed by the server")
                status = int(status_line.split()[1])
                length, close = 0, False
                for _ in range(200):
                    line = await self.reader.readline()
                    if line in (b"\r\n", b""):
                        break
                    name, _, value = line.partition(b":")
                    name = name.strip().lower()
                    if name == b"content-length":
                        length = int(value)
                    elif name == b"connection" and value.strip().lower() == b"close":
                        close = True
                    elif name == b"transfer-encoding":
                        raise ValueError("chunked responses are not supported here")
                data = await self.reader.readexactly(length)
                if close:
                    self.close()
                return status, data
            except BaseException:
                self.close()
                raise

    net_errors = (OSError, ValueError, IndexError, asyncio.IncompleteReadError)

    def login_body() -> bytes:
        return password_body(spec["client_id"], spec["username"], spec["password"]).encode()

    async def closed_loop(conn: Conn, body: bytes) -> None:
        for _ in range(10_000_000):
            if state["stop"]:
                return
            t0 = time.perf_counter()
            try:
                status, data = await conn.post(body)
            except net_errors as exc:
                if state["measuring"]:
                    counts["socket_errors"] += 1
                note(f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(0.01)
                continue
            if state["measuring"]:
                latencies.append(time.perf_counter() - t0)
                if status == 200:
                    counts["ok"] += 1
                else:
                    counts["non2xx"] += 1
                    note(f"{status} {data[:150]!r}")

    async def login_once(conn: Conn) -> str | None:
        for _ in range(3):
            try:
                status, data = await conn.post(login_body())
            except net_errors as exc:
                note(f"login: {type(exc).__name__}: {exc}")
                continue
            if status == 200:
                return json.loads(data)["refresh_token"]  # type: ignore[no-any-return]
            note(f"login {status} {data[:150]!r}")
        counts["setup_errors"] += 1
        return None

    async def refresh_chain(conn: Conn, rt: str) -> None:
        head = f"grant_type=refresh_token&client_id={urllib.parse.quote(spec['client_id'], safe='')}&refresh_token="
        head_b = head.encode()
        for _ in range(10_000_000):
            if state["stop"]:
                return
            body = head_b + urllib.parse.quote(rt, safe="").encode()
            t0 = time.perf_counter()
            try:
                status, data = await conn.post(body)
            except net_errors as exc:
                # The retry presents the same token: within ISSUER_REFRESH_REUSE_GRACE it gets the same successor.
                if state["measuring"]:
                    counts["socket_errors"] += 1
                note(f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(0.01)
                continue
            elapsed = time.perf_counter() - t0
            new = None
            if status == 200:
                with contextlib.suppress(ValueError, AttributeError):
                    new = json.loads(data).get("refresh_token")
            if state["measuring"]:
                latencies.append(elapsed)
                if status != 200:
                    counts["non2xx"] += 1
                elif not new or new == rt:
                    counts["bad"] += 1
                else:
                    counts["ok"] += 1
            if status != 200 or not new or new == rt:
                note(f"refresh {status} {data[:150]!r}")
                counts["chains_lost"] += 1  # a refused token cannot be presented again: this chain ends
                return
            rt = new

    async def open_loop(conns: list[Conn]) -> list[asyncio.Task[None]]:
        rate = float(spec["rate"])
        queue: asyncio.Queue[tuple[float, bool] | None] = asyncio.Queue()
        body = spec["body"].encode()

        async def worker(conn: Conn) -> None:
            for _ in range(10_000_000):
                item = await queue.get()
                if item is None:
                    return
                scheduled, measured = item
                try:
                    status, data = await conn.post(body)
                except net_errors as exc:
                    if measured:
                        counts["socket_errors"] += 1
                    note(f"{type(exc).__name__}: {exc}")
                    continue
                if measured:
                    latencies.append(time.perf_counter() - scheduled)
                    if status == 200:
                        counts["ok"] += 1
                    else:
                        counts["non2xx"] += 1
                        note(f"{status} {data[:150]!r}")

        async def scheduler() -> None:
            start = time.perf_counter()
            for i in range(100_000_000):
                if state["stop"]:
                    break
                due = start + i / rate
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                queue.put_nowait((due, state["measuring"]))
            for _ in conns:
                queue.put_nowait(None)

        workers = [asyncio.create_task(worker(c)) for c in conns]
        return [asyncio.create_task(scheduler()), *workers]

    async def main() -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        stop_early = asyncio.Event()
        loop.add_signal_handler(signal.SIGUSR1, stop_early.set)
        conns = [Conn() for _ in range(spec["connections"])]
        if mode == "refresh":
            tokens = await asyncio.wait_for(asyncio.gather(*(login_once(c) for c in conns)),
                                            spec.get("setup_timeout", 60))
            tasks = [asyncio.create_task(refresh_chain(c, rt)) for c, rt in zip(conns, tokens, strict=True) if rt]
            label = f"python asyncio raw HTTP/1.1 keep-alive, {len(tasks)} connections each rotating its own chain"
        elif mode == "login":
            tasks = [asyncio.create_task(closed_loop(c, login_body())) for c in conns]
            label = f"python asyncio raw HTTP/1.1 keep-alive, {len(conns)} connections of password logins"
        elif mode == "open":
            tasks = await open_loop(conns)
            label = (f"python asyncio raw HTTP/1.1 keep-alive, open loop {spec['rate']:g} req/s over "
                     f"{len(conns)} connections")
        else:
            raise SystemExit(f"unknown mode {mode}")
        await asyncio.sleep(spec["warmup"])
        cpu0 = time.process_time()
        print("measure-start", flush=True)
        state["measuring"] = True
        t0 = time.perf_counter()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop_early.wait(), spec["seconds"])
        state["measuring"] = False
        duration = time.perf_counter() - t0
        print("measure-end", flush=True)
        cpu1 = time.process_time()
        state["stop"] = True
        _, pending = await asyncio.wait(tasks, timeout=15)  # open loop: requests scheduled in the window finish
        counts["unfinished"] = len(pending) if mode == "open" else 0  # workers still busy after 15 s
        for t in pending:
            t.cancel()
        for c in conns:
            c.close()
        lat = sorted(latencies)

        def pct(p: float) -> float | None:
            return lat[min(len(lat) - 1, int(p / 100 * len(lat)))] * 1e3 if lat else None

        requests = counts["ok"] + counts["non2xx"] + counts["bad"]
        if mode != "refresh":
            del counts["chains_lost"], counts["setup_errors"]
        if mode != "open":
            del counts["unfinished"]
        return {"requests": requests, "duration_s": duration, "requests_per_s": requests / duration,
                "ok_per_s": counts["ok"] / duration, "p50_ms": pct(50), "p75_ms": pct(75), "p90_ms": pct(90),
                "p99_ms": pct(99), "max_ms": lat[-1] * 1e3 if lat else None, **counts,
                "first_errors": first_errors, "loadgen": label, "loadgen_self_cpu_s": cpu1 - cpu0}

    print(json.dumps(asyncio.run(main())), flush=True)
    return 0



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
    p.add_argument("--database-url", default="",
                   help="ISSUER_DATABASE_URL (default: SQLite in the temp dir; 'refresh' makes a throw-away "
                        "PostgreSQL database instead)")
    p.add_argument("--pg-admin-url", default=PG_ADMIN_URL,
                   help=f"where 'refresh' runs CREATE/DROP DATABASE bench_<random> (default {PG_ADMIN_URL})")
    p.add_argument("--login-connections", type=int, default=16,
                   help="concurrent password logins in 'logins' and in the 'flood' flood (default 16)")
    p.add_argument("--cc-rate", type=float, default=200.0,
                   help="fixed client_credentials request rate of 'flood', req/s (default 200)")
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
    if not 1 <= args.login_connections <= 1000:
        p.error("--login-connections must be 1..1000")
    if not 1 <= args.cc_rate <= 5000:
        p.error("--cc-rate must be 1..5000")
    if urllib.parse.urlsplit(args.pg_admin_url).hostname not in (HOST, "localhost"):
        p.error("--pg-admin-url must point at a local PostgreSQL")
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
    if argv[:1] == ["--_oauthgen"]:
        return _oauthgen_main(argv[1])
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
