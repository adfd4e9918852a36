"""How the CLI prints: times, tables and JSON, the same for every command."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any


def when(ts: float | None) -> str:
    """Every time the CLI prints: UTC, to the second (``2026-11-30 14:05:09Z``)."""
    return "-" if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def iso(value: str | None) -> str:
    return "-" if value is None else when(datetime.fromisoformat(value).timestamp())


def relative(ts: float, now: float) -> str:
    delta = abs(ts - now)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if delta >= size:
            amount = f"{delta / size:.0f}{unit}"
            break
    else:
        amount = f"{delta:.0f}s"
    return f"in {amount}" if ts >= now else f"{amount} ago"


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=True))


def table(rows: list[list[str]], header: list[str]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def flat(value: Any) -> str:
    """A list as its items separated by spaces, anything else as str()."""
    return " ".join(value) if isinstance(value, list) else str(value)
