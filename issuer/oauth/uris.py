"""The one rule for URIs we hand tokens or users to: audiences (RFC 8707 resource indicators),
and later redirect URIs. Absolute ``https`` (``http`` only to a loopback host, for local
development, as RFC 8252 §7.3 allows), a host, no user info, no fragment, printable ASCII."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

MAX_LENGTH = 2048


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def uri_problem(value: str) -> str | None:
    """Why ``value`` is not an acceptable absolute URI, or None if it is."""
    if not value or len(value) > MAX_LENGTH or not value.isascii() or not value.isprintable() or " " in value:
        return f"must be printable ASCII without spaces, at most {MAX_LENGTH} characters"
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        return "is not a valid URI"
    host = parts.hostname or ""
    if parts.scheme not in ("https", "http") or not host:
        return "must be an absolute https URI"
    if parts.scheme == "http" and not _loopback(host):
        return "must use https (http only on a loopback host)"
    if "@" in parts.netloc:
        return "must not contain user info"
    if "#" in value:
        return "must not contain a fragment"
    return None


def is_https_uri(value: str) -> bool:
    return uri_problem(value) is None
