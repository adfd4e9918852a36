"""Misbehaving HTTP clients, over raw sockets, against a real server process.

Shared by tests/test_http_limits.py and bench/http_attacks.py (which prints the figures).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


async def _closed(reader: asyncio.StreamReader, timeout: float) -> bool:
    """True if the server closed the connection within ``timeout`` (EOF or reset)."""
    try:
        while True:
            if not await asyncio.wait_for(reader.read(65536), timeout):
                return True
    except TimeoutError:
        return False
    except (ConnectionError, OSError):
        return True


async def huge_headers(
    host: str, port: int, pid: int, *, connections: int = 10, megabytes: int = 50, seconds: float = 10.0
) -> tuple[float, list[bytes]]:
    """``connections`` clients each send up to ``megabytes`` of one unterminated header, for at most
    ``seconds``. Returns the server's peak RSS (MiB) meanwhile and the first bytes each got back."""
    peak = rss_mib(pid)
    answers: list[bytes] = []
    stop = time.monotonic() + seconds
    chunk = b"a" * 65536

    async def one() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        answer = b""
        try:
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ")
            for _ in range(megabytes * 16):
                if time.monotonic() > stop:
                    break
                writer.write(chunk)
                await writer.drain()
            with contextlib.suppress(TimeoutError):
                answer = await asyncio.wait_for(reader.read(200), 2)
        except (ConnectionError, OSError):
            with contextlib.suppress(Exception):
                answer = await asyncio.wait_for(reader.read(200), 0.5)
        finally:
            answers.append(answer)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def sample() -> None:
        nonlocal peak
        while True:
            peak = max(peak, rss_mib(pid))
            await asyncio.sleep(0.05)

    sampler = asyncio.create_task(sample())
    try:
        await asyncio.gather(*(one() for _ in range(connections)))
        await asyncio.sleep(0.3)
    finally:
        sampler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampler
    return max(peak, rss_mib(pid)), answers


async def trickle(
    host: str, port: int, *, connections: int, wait: float, body: bool = False, interval: float = 0.5
) -> tuple[int, int]:
    """Open ``connections`` that send their request head (or, with ``body``, a complete head and
    then the body) one line / one byte per ``interval``. Returns (opened, still open after ``wait`` seconds)."""
    opened: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    for _ in range(connections):
        try:
            reader, writer = await asyncio.open_connection(host, port)
        except OSError:
            continue
        if body:
            writer.write(
                b"POST /oauth2/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                b"Content-Length: 1000\r\n\r\ngrant_type="
            )
        else:
            writer.write(b"POST /oauth2/token HTTP/1.1\r\nHost: x\r\n")
        opened.append((reader, writer))

    async def drip() -> None:
        n = 0
        while True:
            await asyncio.sleep(interval)
            n += 1
            for _, writer in opened:
                if not writer.is_closing():
                    with contextlib.suppress(Exception):
                        writer.write(b"x" if body else b"X-%d: y\r\n" % n)

    dripper = asyncio.create_task(drip())
    try:
        await asyncio.sleep(wait)
        results = await asyncio.gather(*(_closed(reader, 0.2) for reader, _ in opened))
    finally:
        dripper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await dripper
        for _, writer in opened:
            writer.close()
    return len(opened), sum(1 for closed in results if not closed)
