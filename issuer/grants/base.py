from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from issuer.models import Client
from issuer.oauth.params import Params
from issuer.services import Services


@dataclass(frozen=True)
class GrantRequest:
    client: Client
    params: Params
    remote_addr: str


Grant = Callable[[Services, GrantRequest], Awaitable[dict[str, Any]]]


def bearer_response(token: str, expires_in: int, scope: tuple[str, ...], **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"access_token": token, "token_type": "Bearer", "expires_in": expires_in}
    if scope:
        body["scope"] = " ".join(scope)
    body.update(extra)
    return body
