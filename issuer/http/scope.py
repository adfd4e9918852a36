"""What the hot paths read straight from the ASGI scope, without building Starlette's ``Headers``
or ``Address`` objects for one lookup each."""

from __future__ import annotations

from starlette.types import Scope


def header(scope: Scope, name: bytes) -> str | None:
    """The first value of the (lower-case) header ``name``, as ``request.headers.get`` gives it."""
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")  # type: ignore[no-any-return]
    return None


def client_host(scope: Scope) -> str:
    """The client's address (the forwarded one behind trusted proxies, see RequestMiddleware)."""
    client = scope.get("client")
    return str(client[0]) if client else "unknown"
