"""CPU accounting from /proc: per process, PostgreSQL's processes, the whole machine.

"Other processes" (machine minus ours) above ~0.15 cores means the machine was busy and the
figures are noisy; every report prints it.
"""

from __future__ import annotations

import contextlib
import os
import resource
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import log, pg_execute

CORES = os.cpu_count() or 1


def cpu_seconds(pid: int) -> float | None:
    """utime+stime of a live process (all its threads), from /proc/<pid>/stat."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()  # after "pid (comm)"; state is fields[0] (= field 3)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu() -> float:
    """CPU time of our waited-for children (the finished wrk / load-generator runs)."""
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


def busy_cores(a: tuple[float, float] | None, b: tuple[float, float] | None) -> float | None:
    if not a or not b:
        return None
    return (b[0] - a[0]) / max(1.0, b[1] - a[1]) * CORES


def wait_for_quiet(max_wait: float, threshold: float = 0.25) -> float | None:
    """Sample machine CPU in 1 s windows until under `threshold` cores busy (our servers are idle at
    this point, so that is other people's work) or `max_wait` s have passed; returns the last sample."""
    busy = None
    deadline = time.monotonic() + max_wait
    for i in range(int(max_wait) + 1):
        a = machine_cpu()
        time.sleep(1.0)
        busy = busy_cores(a, machine_cpu())
        if busy is None:
            return None
        if busy < threshold or time.monotonic() >= deadline:
            break
        if i == 0:
            log(f"machine busy ({busy:.2f} cores used by other processes); waiting up to {max_wait:g} s for quiet")
    if busy is not None and busy >= threshold:
        log(f"still {busy:.2f} cores busy elsewhere; measuring anyway (expect noise)")
    return busy


def pg_probe(url: str) -> tuple[dict[int, str], dict[str, int]]:
    """PostgreSQL processes working for us: backends connected to this database (the server's pool)
    and the shared WAL writer / background writer / checkpointer (shared with anyone else's work);
    and this database's transaction counters (pg_stat_database; backends flush them about every
    second, so a delta over a window is approximate)."""
    dbname = urllib.parse.urlsplit(url).path.lstrip("/")
    rows, stats = pg_execute(
        url,
        "SELECT pid, datname, backend_type FROM pg_stat_activity WHERE pid <> pg_backend_pid()",
        "SELECT xact_commit, xact_rollback, tup_inserted, tup_updated, tup_fetched FROM pg_stat_database"
        " WHERE datname = current_database()",
    )
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
                pids, pg_stats = pg_probe(self.pg_url)
                pg = {pid: (kind, cpu_seconds(pid)) for pid, kind in pids.items()}
        ours = {k: cpu_seconds(p) for k, p in self.pids.items()}
        return {"t": time.monotonic(), "machine": machine_cpu(), "ours": ours, "pg": pg, "pg_stats": pg_stats}

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
        machine = busy_cores(a["machine"], b["machine"])
        if machine is not None:
            res["machine_cores"] = machine
            res["other_cores"] = max(0.0, machine - sum(cores.values()))
        for label in ("server", "loadgen"):
            if label in cores:
                res[f"{label}_cores"] = cores[label]
                if requests:
                    res[f"{label}_cpu_ms_per_req"] = cores[label] * wall / requests * 1e3
        return res
