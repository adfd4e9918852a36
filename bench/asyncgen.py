"""The in-Python load generator: asyncio, raw HTTP/1.1 keep-alive, run in its own process.

    python -m bench.asyncgen < spec.json

Modes: "closed" (each connection sends the same request again as soon as it is answered; what wrk
does, used when wrk is missing), "login" (closed loop of password grants), "refresh" (each
connection logs in once, then rotates its own refresh token in a chain, never reusing one), "open"
(a fixed request rate, latency from each request's scheduled send time, so a slow server is not
hidden). It prints "measure-start" and "measure-end" around the measured window (the caller takes
CPU snapshots there; SIGUSR1 ends the window early), then one JSON line of figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import time
import urllib.parse
from typing import Any

from bench.common import HOST, password_body

NET_ERRORS = (OSError, ValueError, IndexError, asyncio.IncompleteReadError)


class Conn:
    """One keep-alive connection that sends `prefix + Content-Length + body` and reads one answer."""

    def __init__(self, port: int, prefix: bytes) -> None:
        self.port, self.prefix = port, prefix
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def send(self, body: bytes) -> tuple[int, bytes]:
        try:
            if self.reader is None or self.writer is None:
                self.reader, self.writer = await asyncio.open_connection(HOST, self.port)
            self.writer.write(self.prefix + b"Content-Length: %d\r\n\r\n" % len(body) + body)
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


class Gen:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        parts = urllib.parse.urlsplit(spec["url"])
        if parts.hostname != HOST:
            raise SystemExit("loopback only")
        headers = {"Content-Type": "application/x-www-form-urlencoded", **spec.get("headers", {})}
        extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.prefix = f"{spec.get('method', 'POST')} {parts.path or '/'} HTTP/1.1\r\nHost: {parts.netloc}\r\n{extra}"
        self.port = parts.port or 80
        self.counts = {"ok": 0, "non2xx": 0, "socket_errors": 0, "bad": 0, "setup_errors": 0, "chains_lost": 0,
                       "unfinished": 0}
        self.latencies: list[float] = []
        self.first_errors: list[str] = []
        self.measuring = self.stop = False

    def note(self, msg: str) -> None:
        if len(self.first_errors) < 3:
            self.first_errors.append(msg[:200])

    def conn(self) -> Conn:
        return Conn(self.port, self.prefix.encode())

    def record(self, started: float, status: int, data: bytes, measured: bool) -> None:
        if measured:
            self.latencies.append(time.perf_counter() - started)
            if 200 <= status < 300:
                self.counts["ok"] += 1
            else:
                self.counts["non2xx"] += 1
                self.note(f"{status} {data[:150]!r}")

    async def failed(self, exc: BaseException, measured: bool) -> None:
        if measured:
            self.counts["socket_errors"] += 1
        self.note(f"{type(exc).__name__}: {exc}")
        await asyncio.sleep(0.01)

    async def closed_loop(self, conn: Conn, body: bytes) -> None:
        for _ in range(10_000_000):
            if self.stop:
                return
            t0 = time.perf_counter()
            try:
                status, data = await conn.send(body)
            except NET_ERRORS as exc:
                await self.failed(exc, self.measuring)
                continue
            self.record(t0, status, data, self.measuring)

    def login_body(self) -> bytes:
        s = self.spec
        return password_body(s["client_id"], s["username"], s["password"]).encode()

    async def login_once(self, conn: Conn) -> str | None:
        """One login per chain. A 503 (the password-hash budget is spent: every chain logs in at
        once, and one CPU hashes one password at a time) is retried later, as a client would."""
        busy = 0
        for _ in range(3):
            while True:
                try:
                    status, data = await conn.send(self.login_body())
                except NET_ERRORS as exc:
                    self.note(f"login: {type(exc).__name__}: {exc}")
                    break
                if status == 200:
                    return str(json.loads(data)["refresh_token"])
                if status != 503 or busy >= 40:
                    self.note(f"login {status} {data[:150]!r}")
                    break
                busy += 1
                await asyncio.sleep(0.25)
        self.counts["setup_errors"] += 1
        return None

    async def refresh_chain(self, conn: Conn, rt: str) -> None:
        client = urllib.parse.quote(self.spec["client_id"], safe="")
        head = f"grant_type=refresh_token&client_id={client}&refresh_token=".encode()
        for _ in range(10_000_000):
            if self.stop:
                return
            t0 = time.perf_counter()
            try:
                status, data = await conn.send(head + urllib.parse.quote(rt, safe="").encode())
            except NET_ERRORS as exc:
                # The retry presents the same token: within ISSUER_REFRESH_REUSE_GRACE it gets the same successor.
                await self.failed(exc, self.measuring)
                continue
            new = None
            if status == 200:
                with contextlib.suppress(ValueError, AttributeError):
                    new = json.loads(data).get("refresh_token")
            if self.measuring and status == 200 and (not new or new == rt):
                self.latencies.append(time.perf_counter() - t0)
                self.counts["bad"] += 1
            else:
                self.record(t0, status, data, self.measuring)
            if status != 200 or not new or new == rt:
                self.note(f"refresh {status} {data[:150]!r}")
                self.counts["chains_lost"] += 1  # a refused token cannot be presented again: this chain ends
                return
            rt = new

    def open_loop(self, conns: list[Conn]) -> list[asyncio.Task[None]]:
        rate = float(self.spec["rate"])
        queue: asyncio.Queue[tuple[float, bool] | None] = asyncio.Queue()
        body = self.spec["body"].encode()

        async def worker(conn: Conn) -> None:
            for _ in range(10_000_000):
                item = await queue.get()
                if item is None:
                    return
                scheduled, measured = item
                try:
                    status, data = await conn.send(body)
                except NET_ERRORS as exc:
                    await self.failed(exc, measured)
                    continue
                self.record(scheduled, status, data, measured)

        async def scheduler() -> None:
            start = time.perf_counter()
            for i in range(100_000_000):
                if self.stop:
                    break
                due = start + i / rate
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                queue.put_nowait((due, self.measuring))
            for _ in conns:
                queue.put_nowait(None)

        return [asyncio.create_task(scheduler()), *(asyncio.create_task(worker(c)) for c in conns)]

    async def start(self, conns: list[Conn]) -> tuple[list[asyncio.Task[None]], str]:
        mode, spec, n = self.spec["mode"], self.spec, len(conns)
        kind = "python asyncio raw HTTP/1.1 keep-alive"
        if mode == "closed":
            body = spec.get("body", "").encode()
            return [asyncio.create_task(self.closed_loop(c, body)) for c in conns], f"{kind}, {n} connections"
        if mode == "login":
            tasks = [asyncio.create_task(self.closed_loop(c, self.login_body())) for c in conns]
            return tasks, f"{kind}, {n} connections of password logins"
        if mode == "refresh":
            tokens = await asyncio.wait_for(asyncio.gather(*(self.login_once(c) for c in conns)),
                                            spec.get("setup_timeout", 60))
            tasks = [asyncio.create_task(self.refresh_chain(c, rt)) for c, rt in zip(conns, tokens, strict=True) if rt]
            return tasks, f"{kind}, {len(tasks)} connections each rotating its own chain"
        if mode == "open":
            return self.open_loop(conns), f"{kind}, open loop {spec['rate']:g} req/s over {n} connections"
        raise SystemExit(f"unknown mode {mode}")

    async def run(self) -> dict[str, Any]:
        stop_early = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, stop_early.set)
        conns = [self.conn() for _ in range(self.spec["connections"])]
        tasks, label = await self.start(conns)
        await asyncio.sleep(self.spec["warmup"])
        cpu0 = time.process_time()
        print("measure-start", flush=True)
        self.measuring, t0 = True, time.perf_counter()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop_early.wait(), self.spec["seconds"])
        self.measuring, duration = False, time.perf_counter() - t0
        print("measure-end", flush=True)
        cpu1 = time.process_time()
        self.stop = True
        _, pending = await asyncio.wait(tasks, timeout=15)  # open loop: requests scheduled in the window finish
        counts = self.counts
        counts["unfinished"] = len(pending) if self.spec["mode"] == "open" else 0  # workers busy after 15 s
        for t in pending:
            t.cancel()
        for c in conns:
            c.close()
        lat = sorted(self.latencies)

        def pct(p: float) -> float | None:
            return lat[min(len(lat) - 1, int(p / 100 * len(lat)))] * 1e3 if lat else None

        requests = counts["ok"] + counts["non2xx"] + counts["bad"]
        if self.spec["mode"] != "refresh":
            del counts["chains_lost"], counts["setup_errors"]
        if self.spec["mode"] != "open":
            del counts["unfinished"]
        return {"requests": requests, "duration_s": duration, "requests_per_s": requests / duration,
                "ok_per_s": counts["ok"] / duration, "p50_ms": pct(50), "p75_ms": pct(75), "p90_ms": pct(90),
                "p99_ms": pct(99), "max_ms": lat[-1] * 1e3 if lat else None, **counts,
                "first_errors": self.first_errors, "loadgen": label, "loadgen_self_cpu_s": cpu1 - cpu0}


def main() -> int:
    spec = json.loads(sys.stdin.read())
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    print(json.dumps(asyncio.run(Gen(spec).run())), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
