"""A listening socket of its own for each worker of ``issuer serve --workers N`` (``SO_REUSEPORT``).

uvicorn's supervisor binds one socket and every worker listens on it: one accept queue, from which
the worker that wakes first takes every connection waiting. A client that opens its keep-alive
connections in a burst (a load balancer, a connection pool, ``wrk``) then lands them nearly all on
one worker: 25 to 31 of 32 in each of five bursts on two workers, the other worker nearly idle
(counted as ``tests/test_worker_sockets.py`` counts; 13 to 19 with a socket per worker). With
``SO_REUSEPORT`` each worker has its own socket on the same address and the kernel spreads new
connections over them by a hash of the client's address and port.

The supervisor binds its socket with the option and never listens on it (no connection waits
there): it holds the port, and a bad or busy address ends the start before any worker runs. Each
worker unpickles :class:`WorkerSockets` (uvicorn hands the supervisor's sockets to its spawned
workers) as a new socket of its own, bound to the same address with the option, on which
uvicorn then listens. The trade-off is the kernel's: connections already queued on a worker that
exits are reset rather than taken by another worker (a worker exits on SIGTERM after draining,
or by crashing), and a busy worker gets its share of new connections all the same.
"""

from __future__ import annotations

import logging
import socket
import sys
from typing import Any

from uvicorn.config import STARTUP_FAILURE

logger = logging.getLogger("uvicorn.error")  # where uvicorn reports the same errors of its own socket


def bind_reuse_port(family: int, address: tuple[Any, ...]) -> socket.socket:
    """A TCP socket bound to ``address`` with ``SO_REUSEADDR`` and ``SO_REUSEPORT``, not listening."""
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
    except BaseException:
        sock.close()
        raise
    return sock


def _bound_or_exit(family: int, address: tuple[Any, ...]) -> socket.socket:
    try:
        return bind_reuse_port(family, address)
    except OSError as exc:
        logger.error(exc)
        sys.exit(STARTUP_FAILURE)  # the supervisor stops rather than restarting the worker for ever


class WorkerSockets(list[socket.socket]):
    """The sockets given to uvicorn's supervisor: in the supervisor, its own bound socket; in each
    worker, once unpickled, a new socket bound to the same address (see the module's docstring)."""

    def __init__(self, host: str, port: int) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = _bound_or_exit(family, (host, port))
        super().__init__([sock])
        self.family = family
        self.address: tuple[Any, ...] = sock.getsockname()  # port 0 resolved, so every worker shares it
        logger.info("Uvicorn running on http://%s:%d (a socket per worker; Press CTRL+C to quit)",
                    f"[{host}]" if family == socket.AF_INET6 else host, self.address[1])

    def __reduce__(self) -> tuple[Any, ...]:
        return (_worker_sockets, (self.family, self.address))


def _worker_sockets(family: int, address: tuple[Any, ...]) -> list[socket.socket]:
    return [_bound_or_exit(family, address)]
