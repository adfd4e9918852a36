"""The /register flood of the register_flood scenario, in its own process:

    python -m bench.registergen '{"port": P, "connections": N, "seconds": S, "stop": "/path/of/stop-file"}'

prints one JSON object: the count of each answer status.
"""

from __future__ import annotations

import asyncio
import collections
import json
import secrets
import sys
import time
from pathlib import Path

from bench.common import HOST


async def flood(port: int, connections: int, seconds: float, stop_file: str) -> dict[str, int]:
    """POST /register with new usernames on `connections` keep-alive connections until `stop_file`
    exists or `seconds` pass; the count of each answer status."""
    counts: collections.Counter[str] = collections.Counter()
    stop = time.monotonic() + seconds
    tag = secrets.token_hex(3)

    async def watch() -> None:
        nonlocal stop
        while time.monotonic() < stop:
            if Path(stop_file).exists():
                stop = 0.0
            await asyncio.sleep(0.05)

    async def one(i: int) -> None:
        n = 0
        while time.monotonic() < stop:
            try:
                reader, writer = await asyncio.open_connection(HOST, port)
            except OSError:
                counts["connect-error"] += 1
                await asyncio.sleep(0.05)
                continue
            try:
                while time.monotonic() < stop:
                    n += 1
                    body = json.dumps({"username": f"flood-{tag}-{i}-{n}", "password": "flood-password-q9z"}).encode()
                    writer.write(b"POST /register HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
                                 b"Content-Length: %d\r\n\r\n%s" % (HOST.encode(), port, len(body), body))
                    await writer.drain()
                    status = int((await reader.readline()).split()[1])
                    length = 0
                    while (line := await reader.readline()) not in (b"\r\n", b""):
                        if line.lower().startswith(b"content-length:"):
                            length = int(line.split(b":")[1])
                    await reader.readexactly(length)
                    counts[str(status)] += 1
            except (OSError, asyncio.IncompleteReadError, IndexError, ValueError):
                counts["dropped"] += 1
            finally:
                writer.close()

    await asyncio.gather(watch(), *(one(i) for i in range(connections)))
    return dict(counts)


if __name__ == "__main__":
    spec = json.loads(sys.argv[1])
    print(json.dumps(asyncio.run(flood(spec["port"], spec["connections"], spec["seconds"], spec["stop"]))))
