"""The one load generator: wrk when it is on PATH, else the asyncio generator of bench.asyncgen.

Both run in a separate process (pinned with taskset when a cpu is given) and return the same
figures: requests, duration_s, ok_per_s, p50/p99_ms, non2xx, socket_errors, and the CPU of the
watched server and of the generator over the measured window only (see bench.cpu.CpuWatch.diff).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any

from bench import ROOT
from bench.common import FORM, HOST, PYTHON, WARMUP_SECONDS, log, stop_process, taskset
from bench.cpu import CpuWatch, children_cpu

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
        "p50_ms": lat["50"], "p75_ms": lat["75"], "p90_ms": lat["90"], "p99_ms": lat["99"], "max_ms": None,
        "non2xx": non2xx_n,
        "socket_errors": sum(int(x) for x in sock.groups()) if sock else 0,
    }


def wrk_run(url: str, method: str, body: str | list[str], headers: dict[str, str], connections: int,
            seconds: float, workdir: Path, cpu: int | None) -> dict[str, Any]:
    """One `wrk -t1 -cC -dNs --latency` run with a generated Lua script. A list of bodies is sent
    in turn, one per request (wrk sets each one's Content-Length)."""
    assert urllib.parse.urlsplit(url).hostname == HOST
    wrk = shutil.which("wrk")
    assert wrk
    lua = [f"wrk.method = {json.dumps(method)}"]
    lua += [f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items()]
    if isinstance(body, str):
        lua.append(f"wrk.body = {json.dumps(body)}")
    else:  # JSON strings of ASCII text are valid Lua string literals
        lua += ["local bodies = {" + ",".join(json.dumps(b) for b in body) + "}", "local i = 0",
                "request = function() i = i % #bodies + 1; return wrk.format(nil, nil, nil, bodies[i]) end"]
    script = workdir / f"load-{os.getpid()}-{time.monotonic_ns()}.lua"
    script.write_text("\n".join(lua) + "\n")
    cmd = [*taskset(cpu), wrk, "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency",
           "--timeout", "10s", "-s", str(script), url]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=seconds + 60)
    finally:
        stop_process(proc, "wrk", grace=2.0)
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}):\n{out}")
    return parse_wrk(out)


class GenProcess:
    """One run of `python -m bench.asyncgen` as a separate process, killed on exit. It prints
    "measure-start" and "measure-end" around its measured window, then one JSON line."""

    def __init__(self, spec: dict[str, Any], workdir: Path, cpu: int | None, name: str) -> None:
        self.name = name
        self.errfile = workdir / f"{name}-{time.monotonic_ns()}.err"
        self._err = open(self.errfile, "wb")
        bound = spec.get("setup_timeout", 60) + spec["warmup"] + spec["seconds"] + 60
        # The spec (client secrets, passwords) goes through stdin, not argv where `ps` shows it.
        self.proc = subprocess.Popen([*taskset(cpu), PYTHON, "-m", "bench.asyncgen"], cwd=ROOT, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self._err, text=True, start_new_session=True)
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(spec))
        self.proc.stdin.close()
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
        return dict(json.loads(rest.strip().splitlines()[-1]))

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


def use_wrk(args: argparse.Namespace) -> bool:
    if args.loadgen == "wrk" and not shutil.which("wrk"):
        raise RuntimeError("wrk not found on PATH (apt-get install -y wrk)")
    return args.loadgen == "wrk" or (args.loadgen == "auto" and shutil.which("wrk") is not None)


def run_load(args: argparse.Namespace, url: str, body: str | list[str], headers: dict[str, str], workdir: Path,
             method: str = "POST", cpu: int | None = None, watch_pid: int | None = None,
             also_watch: dict[str, int] | None = None) -> dict[str, Any]:
    """A closed-loop load of args.connections keep-alive connections repeating one request: a
    WARMUP_SECONDS warm-up (discarded), then args.seconds measured. With watch_pid, the figures
    include that process's CPU per request over the measured run only (server_cpu_ms_per_req);
    also_watch adds more labelled processes (e.g. each worker of a multi-worker server)."""
    hdrs = {**FORM, **headers}
    watch = {**(also_watch or {}), **({"server": watch_pid} if watch_pid else {})}
    if not use_wrk(args):
        if not isinstance(body, str):
            raise RuntimeError("a request body per request needs wrk (apt-get install wrk)")
        if args.loadgen == "auto":
            log("wrk not found on PATH; using the asyncio load generator (it costs more CPU per request)")
        spec = {"mode": "closed", "url": url, "method": method, "body": body, "headers": hdrs,
                "connections": args.connections, "warmup": WARMUP_SECONDS, "seconds": args.seconds}
        return run_gen(spec, workdir, cpu, "loadgen", watch)
    wrk_run(url, method, body, hdrs, args.connections, WARMUP_SECONDS, workdir, cpu)
    cw = CpuWatch(watch)
    kids0, a = children_cpu(), cw.snap()
    res = wrk_run(url, method, body, hdrs, args.connections, args.seconds, workdir, cpu)
    kids1, b = children_cpu(), cw.snap()
    res.update(CpuWatch.diff(a, b, res["requests"]))
    wall = res["cpu_window_s"]
    res["cores"]["loadgen"] = res["loadgen_cores"] = (kids1 - kids0) / wall  # wrk has exited: its rusage
    res["other_cores"] = max(0.0, res.get("machine_cores", 0.0) - sum(res["cores"].values()))
    res["loadgen_cpu_ms_per_req"] = (kids1 - kids0) / res["requests"] * 1e3 if res["requests"] else None
    res["loadgen"] = f"wrk -t1 -c{args.connections} -d{max(1, round(args.seconds))}s --latency"
    return res
