"""The client address behind reverse proxies (the algorithm of uvicorn's ProxyHeadersMiddleware).

Only a peer that is a trusted proxy may speak for someone else; its ``X-Forwarded-For`` is read
from the right, skipping trusted proxies, and the first address that is not one is the client.
The left-most entries are whatever the client chose to send, so they are never believed.
"""

from __future__ import annotations

import ipaddress

from starlette.types import Scope

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class TrustedProxies:
    """``allowed``: addresses and networks of trusted proxies, or ``*`` for every peer and hop.
    ``trust_peer`` (the deprecated ISSUER_TRUST_FORWARDED_FOR): the direct peer is a proxy, so
    the right-most forwarded address is the client unless it too is in ``allowed``."""

    def __init__(self, allowed: list[str], *, trust_peer: bool = False) -> None:
        self._everyone = "*" in allowed
        self._trust_peer = trust_peer
        self._networks: list[_Network] = [ipaddress.ip_network(a, strict=False) for a in allowed if a != "*"]

    def __contains__(self, host: str) -> bool:
        if self._everyone:
            return True
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self._networks)

    def client(self, peer: str, forwarded_for: str) -> str:
        if not self._trust_peer and peer not in self:
            return peer
        hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
        if not hops:
            return peer
        if self._everyone:
            return hops[0]
        for hop in reversed(hops):
            if hop not in self:
                return hop
        return hops[0]

    def apply(self, scope: Scope) -> None:
        """Rewrite ``scope["client"]`` when a trusted proxy forwarded the request."""
        if not (self._everyone or self._networks or self._trust_peer):
            return
        client = scope.get("client")
        if not client:
            return
        forwarded = b", ".join(value for name, value in scope["headers"] if name == b"x-forwarded-for")
        if forwarded:
            scope["client"] = (self.client(client[0], forwarded.decode("latin-1")), 0)
