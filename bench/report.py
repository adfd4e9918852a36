"""The one report: each scenario prints a block of rows built from the same load figures (rate,
p50/p99, non-2xx, CPU µs per request, where the CPU went) and its ratios to the in-run baseline."""

from __future__ import annotations

import math
from typing import Any

from bench.cpu import CORES

Rows = list[tuple[str, str]]
NOISY_CORES = 0.15  # other processes above this during a window: the figures are noisy


def print_block(title: str, rows: Rows) -> None:
    width = max(len(k) for k, _ in rows)
    print(f"\n=== {title} " + "=" * max(3, 74 - len(title)))
    for k, v in rows:
        print(f"  {k.ljust(width)}  {v}")
    print("=" * 80, flush=True)


def fmt_ms(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.2f} ms"


def fmt_us(ms: float | None) -> str:
    return "n/a" if ms is None else f"{ms * 1e3:,.0f} µs"


def ratio(ours: float | None, baseline: float | None) -> float | None:
    return ours / baseline if ours is not None and baseline else None


def fmt_ratio(value: float | None, goal: str = "", passed: bool | None = None) -> str:
    """A ratio rounded down (never flatter than measured), its goal and PASS/FAIL."""
    if value is None:
        return "n/a"
    text = f"{math.floor(value * 1000) / 1000:.3f}"
    text += f"   goal {goal}" if goal else ""
    return text + ("" if passed is None else f"   {'PASS' if passed else 'FAIL'}")


def cores_line(res: dict[str, Any]) -> str:
    """Where the CPU went during the measured window, and whether other processes made it noisy."""
    if "machine_cores" not in res:
        return "n/a"
    parts = ", ".join(f"{k} {v:.2f}" for k, v in res.get("cores", {}).items())
    other = res.get("other_cores", 0.0)
    return (f"machine {res['machine_cores']:.2f} of {CORES} cores: {parts}, other processes {other:.2f}"
            + ("   <-- other load: figures are noisy" if other > NOISY_CORES else ""))


def errors(res: dict[str, Any]) -> int:
    keys = ("non2xx", "socket_errors", "bad", "setup_errors", "chains_lost", "unfinished")
    return sum(int(res.get(k) or 0) for k in keys)


def errors_line(res: dict[str, Any]) -> str:
    n = errors(res)
    text = (f"{n}   (non-2xx {res['non2xx']}, socket {res['socket_errors']}, malformed {res.get('bad', 0)}"
            + (f", chains lost {res['chains_lost']}" if "chains_lost" in res else "")
            + (f", setup {res['setup_errors']}" if res.get("setup_errors") else "")
            + (f", unfinished {res['unfinished']}" if res.get("unfinished") else "") + ")")
    if n:
        text += "   <-- must be 0; first: " + "; ".join(res.get("first_errors", []))[:300]
    return text


def latency_line(res: dict[str, Any]) -> str:
    text = f"{fmt_ms(res['p50_ms'])} / {fmt_ms(res['p99_ms'])}"
    return text + (f"   (max {fmt_ms(res['max_ms'])})" if res.get("max_ms") is not None else "")


def gen_label(res: dict[str, Any]) -> str:
    per_req = res.get("loadgen_cpu_ms_per_req")
    return str(res["loadgen"]) + (f", {fmt_us(per_req)} load-generator CPU/request" if per_req else "")


def load_rows(res: dict[str, Any], unit: str, prefix: str = "") -> Rows:
    """The standard rows of one measured load: rate, latency, errors, server CPU per request, cores."""
    busy = f"   ({res['server_cores']:.2f} cores busy)" if res.get("server_cores") is not None else ""
    cpu = res.get("server_cpu_ms_per_req")
    if cpu:  # what the CPU per request allows on one core nobody else uses: steadier than the rate
        busy += f"   → {1e3 / cpu:,.0f}/s per fully used core"
    return [
        (f"{prefix}{unit}/s", f"{res['ok_per_s']:,.1f}   ({res['requests']:,} requests in {res['duration_s']:.2f} s)"),
        (f"{prefix}latency p50 / p99", latency_line(res)),
        (f"{prefix}non-2xx and errors", errors_line(res)),
        (f"{prefix}server CPU / request", fmt_us(res.get("server_cpu_ms_per_req")) + busy),
        (f"{prefix}CPU during load", cores_line(res)),
    ]


def summary(res: dict[str, Any], *keys: str) -> dict[str, Any]:
    """The figures of a load worth keeping in the JSON results."""
    keep = keys or ("ok_per_s", "requests", "duration_s", "p50_ms", "p99_ms", "non2xx", "socket_errors",
                    "server_cpu_ms_per_req", "server_cores", "loadgen_cores", "other_cores", "loadgen")
    return {k: res.get(k) for k in keep}
