"""/admin/keys: the signing-key schedule, rotation and revocation."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from issuer.errors import ProblemError
from issuer.http.admin._common import _Admin, _admin, _not_found
from issuer.http.apidoc import ADMIN_API, bad_query, documented, not_found, ok, problem
from issuer.http.responses import no_store_json
from issuer.http.schemas import KeyList
from keys.lifecycle import NoSuchKey, NotYetSafe
from keys.manager import ScheduleBusy

_BUSY = problem(409, "Another key change won the race; retry after Retry-After seconds", "Retry-After")


def _busy() -> ProblemError:
    return ProblemError(409, "Conflict", "another key change won the race; retry", headers={"Retry-After": "1"})


async def _key_schedule(admin: _Admin) -> Response:
    return no_store_json({"items": await admin.ops.keys.schedule()})


@documented("Signing keys and their schedule", ADMIN_API, ok(KeyList))
async def list_keys(request: Request) -> Response:
    return await _key_schedule(await _admin(request))


@documented(
    "Activate the pending key (retiring the active one)",
    ADMIN_API,
    ok(KeyList, "Every key after the change"),
    bad_query("force is not true or false"),
    problem(409, "The pending key is not yet in every JWKS cache (errors.safe_at)", "Retry-After"),
    _BUSY,
    query=("force",),
)
async def rotate_keys(request: Request) -> Response:
    admin = await _admin(request)
    force = request.query_params.get("force", "false").lower()
    if force not in ("true", "false"):
        raise ProblemError(400, "Bad Request", "force must be true or false")
    try:
        await admin.ops.keys.rotate(admin.actor, force=force == "true")
    except NotYetSafe as exc:
        raise ProblemError(
            409,
            "Conflict",
            "the pending key has not been published long enough for every JWKS cache to hold it",
            headers={"Retry-After": str(max(1, int(exc.safe_at - admin.services.clock()) + 1))},
            errors={"safe_at": int(exc.safe_at)},
        ) from None
    except ScheduleBusy:
        raise _busy() from None
    # Not list_keys(request): after an emergency rotation the caller's own token may be unverifiable.
    return await _key_schedule(admin)


@documented(
    "Revoke a key (unpublished at once)",
    ADMIN_API,
    ok(KeyList, "Every key after the change"),
    not_found("published key"),
    _BUSY,
)
async def revoke_key(request: Request) -> Response:
    admin = await _admin(request)
    try:
        await admin.ops.keys.revoke(admin.actor, request.path_params["kid"])
    except NoSuchKey:
        raise _not_found("published key") from None
    except ScheduleBusy:
        raise _busy() from None
    return await _key_schedule(admin)
