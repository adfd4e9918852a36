"""glibc malloc tuning for a long-lived server process (``issuer serve`` and ``issuer.asgi:build``).

glibc serves an allocation of ``M_MMAP_THRESHOLD`` bytes or more (128 KiB at first) with its own
mmap, returned to the kernel when freed. Unless the threshold is set explicitly it grows to the
size of the largest such block freed, up to 32 MiB: after the first argon2id hash (19 MiB of
working memory at the default cost; Passwords hashes a dummy at startup) every later hash's
working memory comes from the heap or a thread's arena and stays resident (about 19 MB per
hashing thread that ever ran, on top of the worker's ~65 MB). Setting the threshold turns that
adjustment off, so a hash's memory goes back to the kernel when the hash is done. Only blocks of
128 KiB and more are affected; the request paths allocate far smaller ones.

An operator's own ``MALLOC_MMAP_THRESHOLD_`` wins; other C libraries (musl) are left alone.
"""

from __future__ import annotations

import ctypes
import os
import sys

M_MMAP_THRESHOLD = -3  # <malloc.h>
MMAP_THRESHOLD = 128 * 1024  # glibc's starting value, now fixed


def fix_mmap_threshold() -> bool:
    """Fix glibc's mmap threshold at 128 KiB; True if it was set here. Call it once, early."""
    if not sys.platform.startswith("linux") or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 - glibc only: musl's mallopt does nothing
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1)
