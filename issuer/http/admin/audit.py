"""/admin/audit: the audit log, newest first."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from issuer.http.admin._common import _admin, _integer, _page
from issuer.http.apidoc import ADMIN_API, bad_query, documented, ok
from issuer.http.responses import no_store_json
from issuer.http.schemas import AuditPage
from issuer.operations.audit import audit_view

_INT64_MAX = 2**63 - 1


@documented(
    "Audit log, newest first",
    ADMIN_API,
    ok(AuditPage),
    bad_query("limit is not 1 to 500, or before is not an entry id (0 to 2**63-1)"),
    query=("limit", "before"),
)
async def list_audit(request: Request) -> Response:
    admin = await _admin(request)
    limit, _ = _page(request)
    before = _integer(request, "before", 0, 0, _INT64_MAX, "before must be an entry id (0 to 2**63-1)")
    entries = await admin.ops.audit.recent(limit=limit, before=before)
    nxt = entries[-1].id if len(entries) == limit else None
    return no_store_json({"items": [audit_view(e) for e in entries], "next": nxt})
