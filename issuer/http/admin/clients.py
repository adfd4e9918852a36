"""/admin/clients: register, list, show, change, re-key and delete OAuth clients."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from issuer.accounts.views import client_view
from issuer.http.admin._common import _PAGE_ERRORS, _admin, _invalid, _not_found, _page
from issuer.http.apidoc import ADMIN_API, JSON_BODY, documented, invalid, no_content, not_found, ok, problem
from issuer.http.forms import parse_body
from issuer.http.responses import done, no_store_json
from issuer.http.schemas import ClientCreate, ClientPage, ClientUpdate, ClientView, ClientWithSecret
from issuer.operations.clients import ClientValidationError, NoSuchClient


@documented("List clients", ADMIN_API, ok(ClientPage), _PAGE_ERRORS, query=("limit", "after"))
async def list_clients(request: Request) -> Response:
    admin = await _admin(request)
    limit, after = _page(request)
    items = await admin.ops.clients.page(limit=limit, after=after)
    nxt = items[-1].client_id if len(items) == limit else None
    return no_store_json({"items": [client_view(c) for c in items], "next": nxt})


@documented(
    "Register a client",
    ADMIN_API,
    ok(ClientWithSecret | ClientView, "Created; confidential clients get their client_secret once", 201),
    JSON_BODY,
    invalid("Invalid client fields"),
    body=ClientCreate,
)
async def create_client(request: Request) -> Response:
    admin = await _admin(request)
    body = await parse_body(request, ClientCreate)
    try:
        client, secret = await admin.ops.clients.create(
            admin.actor,
            body.name,
            tuple(body.grant_types),
            tuple(body.scopes),
            tuple(body.audiences),
            public=body.public,
            redirect_uris=tuple(body.redirect_uris),
            post_logout_redirect_uris=tuple(body.post_logout_redirect_uris),
            first_party=body.first_party,
        )
    except ClientValidationError as exc:
        raise _invalid(str(exc)) from None
    view = client_view(client)
    if secret is not None:
        view["client_secret"] = secret
    return no_store_json(view, 201)


@documented("Get a client", ADMIN_API, ok(ClientView), not_found("client"))
async def get_client(request: Request) -> Response:
    admin = await _admin(request)
    try:
        return no_store_json(client_view(await admin.ops.clients.get(request.path_params["client_id"])))
    except NoSuchClient:
        raise _not_found("client") from None


@documented(
    "Change a client",
    ADMIN_API,
    ok(ClientView, "The updated client"),
    not_found("client"),
    JSON_BODY,
    invalid("Invalid client fields"),
    body=ClientUpdate,
)
async def update_client(request: Request) -> Response:
    admin = await _admin(request)
    client_id = request.path_params["client_id"]
    try:
        await admin.ops.clients.get(client_id)  # 404 before 422
    except NoSuchClient:
        raise _not_found("client") from None
    changes = (await parse_body(request, ClientUpdate)).changes()
    try:
        updated = await admin.ops.clients.update(admin.actor, client_id, **changes)
    except ClientValidationError as exc:
        raise _invalid(str(exc)) from None
    except NoSuchClient:
        raise _not_found("client") from None
    return no_store_json(client_view(updated))


@documented(
    "Issue a new client secret (the old one stops working)",
    ADMIN_API,
    ok(ClientWithSecret, "The client with its new secret"),
    not_found("client"),
    problem(422, "A public client has no secret"),
)
async def rotate_client_secret(request: Request) -> Response:
    admin = await _admin(request)
    try:
        updated, secret = await admin.ops.clients.rotate_secret(admin.actor, request.path_params["client_id"])
    except NoSuchClient:
        raise _not_found("client") from None
    except ClientValidationError as exc:
        raise _invalid(str(exc)) from None
    return no_store_json({**client_view(updated), "client_secret": secret})


@documented("Delete a client", ADMIN_API, no_content("Deleted"), not_found("client"))
async def delete_client(request: Request) -> Response:
    admin = await _admin(request)
    try:
        await admin.ops.clients.delete(admin.actor, request.path_params["client_id"])
    except NoSuchClient:
        raise _not_found("client") from None
    return done()
