"""Run a real issuer (``issuer serve``, as in production: our HTTP protocol, uvicorn's process
management) as a subprocess for tests that need separate processes.

    with IssuerServer({"ISSUER_DATABASE_URL": url, "ISSUER_KEY_ENCRYPTION_KEYS": kek}) as server:
        httpx.get(server.url + "/healthz")

The child gets a free port on 127.0.0.1, the given environment overrides, and none of the
caller's own ``ISSUER_*`` variables (so every server is configured explicitly). ``start()``
waits, bounded, until ``/healthz`` answers; ``stop()`` sends SIGTERM, then kills.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

import httpx

REPO_ROOT = Path(__file__).resolve().parent.parent


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (another process may still take it before we do)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def child_env(overrides: Mapping[str, str], *, inherit_issuer_env: bool = False) -> dict[str, str]:
    """The caller's environment without its ``ISSUER_*`` settings, plus ``overrides``."""
    env = {k: v for k, v in os.environ.items() if inherit_issuer_env or not k.startswith("ISSUER_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.update({k: str(v) for k, v in overrides.items()})
    return env


class ServerFailed(RuntimeError):
    pass


class IssuerServer:
    """One ``issuer serve`` process (uvicorn serving ``issuer.asgi:build`` over issuer.http.server)."""

    def __init__(
        self,
        env: Mapping[str, str],
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        startup_timeout: float = 30.0,
        log_path: Path | str | None = None,
        extra_args: Sequence[str] = (),
        inherit_issuer_env: bool = False,
        cwd: Path | str = REPO_ROOT,
    ) -> None:
        self.env = dict(env)
        self.host = host
        self.port = port
        self.startup_timeout = startup_timeout
        self.extra_args = tuple(extra_args)
        self.inherit_issuer_env = inherit_issuer_env
        self.cwd = Path(cwd)
        self._own_log = log_path is None
        self.log_path = Path(log_path) if log_path is not None else None
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        if self.port is None:
            raise ServerFailed("the server was not started")
        return f"http://{self.host}:{self.port}"

    def command(self, port: int) -> list[str]:
        return [
            sys.executable, "-m", "issuer.cli", "serve",
            "--host", self.host, "--port", str(port), *self.extra_args,
        ]

    def start(self) -> Self:
        if self.process is not None:
            raise ServerFailed("already started")
        if self.log_path is None:
            handle, name = tempfile.mkstemp(prefix="issuer-server-", suffix=".log")
            os.close(handle)
            self.log_path = Path(name)
        # A port picked by free_port() can be taken before uvicorn binds it; pick again then.
        attempts = 1 if self.port is not None else 3
        for attempt in range(attempts):
            port = self.port if self.port is not None else free_port(self.host)
            self._spawn(port)
            try:
                self._wait_healthy()
                return self
            except ServerFailed:
                in_use = "address already in use" in self.log_tail().lower()
                self.stop()
                if not in_use or attempt == attempts - 1:
                    raise
                self.port = None
        raise AssertionError("unreachable")

    def _spawn(self, port: int) -> None:
        assert self.log_path is not None
        self.port = port
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.command(port),
                env=child_env(self.env, inherit_issuer_env=self.inherit_issuer_env),
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def _wait_healthy(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + self.startup_timeout
        with httpx.Client(timeout=2.0) as http:
            while time.monotonic() < deadline:
                code = self.process.poll()
                if code is not None:
                    raise ServerFailed(f"issuer exited with {code} while starting:\n{self.log_tail()}")
                try:
                    if http.get(self.url + "/healthz").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
        raise ServerFailed(f"issuer not healthy within {self.startup_timeout}s:\n{self.log_tail()}")

    def log_tail(self, chars: int = 4000) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")[-chars:]

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, wait up to ``timeout``, then SIGKILL. Returns the exit code (None if never started)."""
        process = self.process
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout)
        self.process = None
        return process.returncode

    def kill(self) -> None:
        """SIGKILL at once: a crash, not a shutdown."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.process = None

    def close(self) -> None:
        self.stop()
        if self._own_log and self.log_path is not None:
            self.log_path.unlink(missing_ok=True)

    def __enter__(self) -> Self:
        return self.start() if self.process is None else self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def start_issuer(env: Mapping[str, str], **kwargs: object) -> IssuerServer:
    """Start and return a server; the caller stops it (or uses it as a context manager)."""
    return IssuerServer(env, **kwargs).start()  # type: ignore[arg-type]


class RedisServer:
    """A private ``redis-server`` on a free port, without persistence: a restart starts empty.

    ``kill()`` takes it down abruptly; ``start()`` again brings up a new, empty process on the
    same port.
    """

    def __init__(self, port: int | None = None, *, binary: str = "redis-server", startup_timeout: float = 10.0) -> None:
        self.port = port if port is not None else free_port()
        self.binary = binary
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        if self.running:
            raise ServerFailed("redis-server already running")
        self.process = subprocess.Popen(
            [
                self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--protected-mode", "no",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServerFailed(f"redis-server exited with {self.process.returncode} (port {self.port} taken?)")
            if self.ping():
                return self
            time.sleep(0.05)
        self.kill()
        raise ServerFailed(f"redis-server on port {self.port} did not answer within {self.startup_timeout}s")

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        if self.process is not None:
            if self.process.poll() is None:
                self.process.kill()
            self.process.wait(10)
        self.process = None

    def restart(self) -> RedisServer:
        self.kill()
        return self.start()

    def __enter__(self) -> RedisServer:
        return self.start() if not self.running else self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.kill()
