"""Verify the issuer's RFC 9068 access tokens in a resource server.

    verifier = Verifier("https://issuer.example.com", audience="https://api.example.com")
    token = await verifier.verify(raw)          # or verifier.verify_sync(raw)
    token.require(scopes=["orders:read"], roles=["manager"])

FastAPI: ``issuer_verifier.fastapi``; Starlette: ``issuer_verifier.starlette``.
"""

from issuer_verifier.errors import (
    BearerError,
    InsufficientScope,
    InvalidRequest,
    InvalidToken,
    IssuerUnavailable,
    MissingToken,
)
from issuer_verifier.token import AccessToken
from issuer_verifier.verifier import Verifier

__all__ = [
    "AccessToken",
    "BearerError",
    "InsufficientScope",
    "InvalidRequest",
    "InvalidToken",
    "IssuerUnavailable",
    "MissingToken",
    "Verifier",
]
