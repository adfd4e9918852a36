"""Who made a change, as the audit log names them: ``client:<id>``, ``user:<id>``,
``cli:<os user>@<host>``, ``scheduler``, plus the remote address for HTTP."""

from __future__ import annotations

import getpass
import socket
from dataclasses import dataclass


@dataclass(frozen=True)
class Actor:
    kind: str
    id: str = ""
    remote_addr: str = ""

    def __str__(self) -> str:
        return f"{self.kind}:{self.id}" if self.id else self.kind

    @classmethod
    def client(cls, client_id: str, remote_addr: str = "") -> Actor:
        return cls("client", client_id, remote_addr)

    @classmethod
    def user(cls, user_id: str, remote_addr: str = "") -> Actor:
        return cls("user", user_id, remote_addr)

    @classmethod
    def cli(cls) -> Actor:
        try:
            who = getpass.getuser()
        except (KeyError, OSError):  # no passwd entry for the uid (some containers)
            who = "unknown"
        return cls("cli", f"{who}@{socket.gethostname()}")


SCHEDULER = Actor("scheduler")
