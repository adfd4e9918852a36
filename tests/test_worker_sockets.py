"""``serve --workers N`` gives each worker a listening socket of its own (issuer.http.sockets), so a
burst of connections spreads over the workers instead of landing on whichever woke first."""

from __future__ import annotations

import collections
import os
import pickle
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from issuer.http.sockets import WorkerSockets
from tests.servers import REPO_ROOT, IssuerServer, child_env, free_port

BURST = 32


def established_by_process(port: int, pids: list[int]) -> collections.Counter[int]:
    """How many ESTABLISHED server-side connections on ``port`` each of ``pids`` holds (from /proc)."""
    owner: dict[str, int] = {}
    for pid in pids:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:["):
                owner[link[len("socket:["):-1]] = pid
    counts: collections.Counter[int] = collections.Counter()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local_port, state, inode = int(fields[1].rsplit(":", 1)[1], 16), fields[3], fields[9]
            if local_port == port and state == "01" and inode in owner:
                counts[owner[inode]] += 1
    return counts


def worker_pids(supervisor: int) -> list[int]:
    children = Path(f"/proc/{supervisor}/task/{supervisor}/children").read_text().split()
    # The supervisor's children: the workers, and multiprocessing's resource tracker.
    return [int(p) for p in children if b"resource_tracker" not in Path(f"/proc/{p}/cmdline").read_bytes()]


def burst_split(port: int, pids: list[int]) -> collections.Counter[int]:
    """Open BURST connections back to back, as a connection pool does, and count where they landed."""
    conns = [socket.create_connection(("127.0.0.1", port)) for _ in range(BURST)]
    try:
        deadline = time.monotonic() + 5
        while sum((counts := established_by_process(port, pids)).values()) < BURST and time.monotonic() < deadline:
            time.sleep(0.05)
        return counts
    finally:
        for conn in conns:
            conn.close()


linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SO_REUSEPORT and /proc are Linux's")


@linux_only
def test_each_unpickled_copy_is_a_socket_of_its_own_on_the_same_address_and_the_kernel_spreads_connections() -> None:
    supervisor = WorkerSockets("127.0.0.1", 0)
    workers = [pickle.loads(pickle.dumps(supervisor)) for _ in range(2)]
    try:
        assert supervisor[0].getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) == 1
        address = supervisor.address
        for (sock,) in workers:
            assert type(sock) is socket.socket
            assert sock.getsockname() == address and sock.fileno() != supervisor[0].fileno()
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) == 1
            sock.listen(64)
            sock.setblocking(False)
        # The supervisor's socket never listens, so no connection waits on it.
        clients = [socket.create_connection(address) for _ in range(64)]
        accepted = []
        for (sock,) in workers:
            n = 0
            while True:
                try:
                    conn, _ = sock.accept()
                except BlockingIOError:
                    break
                conn.close()
                n += 1
            accepted.append(n)
        for client in clients:
            client.close()
        assert sum(accepted) == 64 and min(accepted) >= 8, accepted  # binomial(64, ½): < 8 is ~1e-10
    finally:
        for sock in [*supervisor, *(s for w in workers for s in w)]:
            sock.close()


@linux_only
@pytest.mark.slow
@pytest.mark.parametrize("reuse_port", [True, False])
def test_two_workers_share_a_burst_of_connections(tmp_path: Path, reuse_port: bool) -> None:
    env = {"ISSUER_DATA_DIR": str(tmp_path / "data"), "ISSUER_LOG_LEVEL": "INFO",
           "ISSUER_REUSE_PORT": str(reuse_port).lower()}
    server = IssuerServer(env, extra_args=["--workers", "2"], startup_timeout=60).start()
    try:
        assert server.process is not None
        deadline = time.monotonic() + 60
        while server.log_tail(10**7).count("Application startup complete") < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        pids = worker_pids(server.process.pid)
        assert len(pids) == 2, pids
        with httpx.Client(timeout=5) as http:
            assert http.get(server.url + "/healthz").status_code == 200
        splits = [burst_split(server.port or 0, pids) for _ in range(3)]
        log = server.log_tail(10**7)
    finally:
        server.stop()
    assert "Traceback" not in log, log[-3000:]
    assert all(sum(split.values()) == BURST for split in splits), splits
    if reuse_port:
        assert "a socket per worker" in log
        # Each worker gets a share of every burst (binomial(32, ½): fewer than 4 is ~1e-6).
        assert all(len(split) == 2 and min(split.values()) >= 4 for split in splits), splits
    else:
        assert "a socket per worker" not in log  # uvicorn's one shared socket


@linux_only
def test_a_busy_address_ends_the_start_with_one_line_and_the_startup_failure_status(tmp_path: Path) -> None:
    with socket.socket() as taken:
        port = free_port()
        taken.bind(("127.0.0.1", port))
        taken.listen()
        done = subprocess.run(
            [sys.executable, "-m", "issuer.cli", "serve", "--port", str(port), "--workers", "2"],
            env=child_env({"ISSUER_DATA_DIR": str(tmp_path / "data"), "ISSUER_LOG_LEVEL": "WARNING"}),
            cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
        )
    assert done.returncode == 3, done.stderr  # uvicorn's STARTUP_FAILURE, as with one worker
    assert "Address already in use" in done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
