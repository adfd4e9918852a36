"""What every /admin handler shares: the authorised caller (and its audit actor), paging and
query-integer parsing, and the problem responses for a missing object or an invalid body."""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request

from issuer.errors import ProblemError
from issuer.http.apidoc import bad_query
from issuer.http.bearer import bearer_principal
from issuer.http.token import client_ip
from issuer.operations import Actor
from issuer.services import Services
from issuer.tokens.principal import ADMIN

# ASCII digits only: str.isdigit() also accepts "²" and "٣", which int() then refuses.
_DIGITS = re.compile(r"[0-9]{1,19}")


def _actor(claims: dict[str, Any], remote_addr: str) -> Actor:
    if "roles" in claims:
        return Actor.user(str(claims.get("sub")), remote_addr)
    return Actor.client(str(claims.get("client_id")), remote_addr)


class _Admin:
    """The authorised caller of one admin request, and the operations it may call."""

    def __init__(self, services: Services, actor: Actor) -> None:
        self.services = services
        self.ops = services.ops
        self.actor = actor


async def _admin(request: Request) -> _Admin:
    services: Services = request.state.services
    ip = client_ip(request, services)

    async def refused(claims: dict[str, Any], reason: str) -> None:
        await services.refusals.refused(_actor(claims, ip), request.url.path, reason)

    principal = await bearer_principal(request, services, ADMIN, on_refused=refused)
    return _Admin(services, _actor(principal.claims, ip))


def _integer(request: Request, name: str, default: int, low: int, high: int, message: str) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not _DIGITS.fullmatch(raw) or not low <= int(raw) <= high:
        raise ProblemError(400, "Bad Request", message)
    return int(raw)


def _page(request: Request) -> tuple[int, str]:
    limit = _integer(request, "limit", 100, 1, 500, "limit must be an integer from 1 to 500")
    after = request.query_params.get("after", "")
    if len(after) > 256:
        raise ProblemError(400, "Bad Request", "after is too long")
    if "\x00" in after:
        raise ProblemError(400, "Bad Request", "after contains a NUL character")
    return limit, after


def _not_found(what: str) -> ProblemError:
    return ProblemError(404, "Not Found", f"no such {what}")


def _invalid(message: str, errors: dict[str, str] | None = None) -> ProblemError:
    # The same shape as a body refused by its model (issuer.http.forms.parse_body): errors by field.
    return ProblemError(422, "Unprocessable Content", message, errors=errors or {"body": message})


_PAGE_ERRORS = bad_query("limit is not 1 to 500, or after is too long or contains a NUL")
