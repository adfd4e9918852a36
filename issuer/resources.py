"""What this process may use: its CPU quota and memory limit, read from cgroup v2 and the CPU
affinity mask, never from the host's core count (a 512 MiB pod on a 32-core node sees 32 cores).

``root`` is injectable so tests can point it at fake cgroup files; by default it is read from
``CGROUP_ROOT`` at each call (tests may point that at fake files too).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


def _read(root: Path, name: str) -> str | None:
    try:
        return (root / name).read_text().strip()
    except OSError:
        return None


def cpu_quota(root: Path | None = None) -> int:
    """Whole CPUs this process may use: the smaller of the affinity mask and the cgroup's
    ``cpu.max`` quota (rounded up, at least one)."""
    root = root or CGROUP_ROOT
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    text = _read(root, "cpu.max")
    if text:
        quota, _, period = text.partition(" ")
        try:
            if quota != "max" and int(period or "100000") > 0:
                cpus = min(cpus, math.ceil(int(quota) / int(period or "100000")))
        except ValueError:
            pass
    return max(1, cpus)


def workers() -> int:
    """Worker processes sharing this quota: ``WEB_CONCURRENCY``, the variable uvicorn and gunicorn
    take their worker count from (``issuer serve --workers N`` sets it for its workers); 1 if unset."""
    value = os.environ.get("WEB_CONCURRENCY", "")
    return int(value) if value.isdigit() and int(value) > 0 else 1


def signing_threads(workers: int = 1, root: Path | None = None) -> int:
    """RS256 signing threads per worker: one when the CPU quota leaves each of the ``workers``
    event loops a second CPU to sign on, else 0 (sign inline: handing a signature to a thread
    costs CPU that only pays off when another CPU is idle)."""
    return 1 if cpu_quota(root) >= 2 * max(1, workers) else 0


def memory_limit(root: Path | None = None) -> int | None:
    """The cgroup's ``memory.max`` in bytes, or None when unlimited or unknown."""
    root = root or CGROUP_ROOT
    text = _read(root, "memory.max")
    if not text or text == "max":
        return None
    try:
        value = int(text)
    except ValueError:
        return None
    return value if value > 0 else None


# Hashes may use at most this share of the container's memory: the rest is the interpreter,
# connections, caches, and the other requests in flight.
MEMORY_FRACTION = 0.5


def hash_concurrency(memory_kib: int, parallelism: int = 1, root: Path | None = None) -> int:
    """Concurrent argon2id hashes: as many as the CPU quota runs at once (a hash with ``parallelism``
    lanes keeps that many CPUs busy), and no more than fit in half the memory limit at
    ``memory_kib`` each. At least one."""
    limit = cpu_quota(root) // parallelism
    memory = memory_limit(root)
    if memory is not None:
        limit = min(limit, int(memory * MEMORY_FRACTION) // (memory_kib * 1024))
    return max(1, limit)


def database_pool_size(root: Path | None = None) -> int:
    """PostgreSQL connections per process: a few per CPU of quota (statements mostly wait on the
    server, so more connections than CPUs help, but each costs the server a backend process),
    between 4 and 10."""
    return max(4, min(10, 4 * cpu_quota(root)))
