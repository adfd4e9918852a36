"""The docs' client: the embedded development mode creates it at startup through the operations
layer (audited), once; production and PostgreSQL-backed development never create it by themselves;
/docs preconfigures Swagger UI with it only when it exists."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from issuer.operations.docs_client import DEV_DOCS, DOCS_REDIRECT_PATH
from issuer.settings import Settings
from tests.conftest import FAST, OPERATOR, running_app, services_of
from tests.pages_helpers import add_user, authorize_query, pkce, query_of, sign_in


async def _docs_audit(http: httpx.AsyncClient) -> list[Any]:
    entries = await services_of(http).store.list_audit(limit=100)
    return [e for e in entries if e.action.startswith("clients.") and e.target == "issuer-docs"]


async def test_embedded_development_mode_creates_the_docs_client_once(
    sqlite_url: str, make_settings: Callable[..., Settings]
) -> None:
    assert Settings(_env_file=None).docs_client_id == "issuer-docs"  # the default, as documented
    settings = make_settings(database_url=sqlite_url, docs_client_id="issuer-docs", **FAST)
    async with running_app(settings) as http:
        client = await services_of(http).clients.get("issuer-docs")
        assert client is not None and client.is_public and client.first_party and not client.disabled
        assert client.grant_types == ("authorization_code", "refresh_token")
        assert client.redirect_uris == (settings.url + DOCS_REDIRECT_PATH,)
        assert client.audiences == (settings.url,)
        page = await http.get("/docs")
        assert 'data-client-id="issuer-docs"' in page.text
        [created] = await _docs_audit(http)
        assert (created.action, created.actor) == ("clients.create", str(DEV_DOCS))
        # an operator's change stands across restarts
        await services_of(http).ops.clients.set_disabled(OPERATOR, "issuer-docs", True)
    async with running_app(settings) as http:
        assert len(await _docs_audit(http)) == 2  # created, then disabled: nothing made again
        client = await services_of(http).clients.get("issuer-docs")
        assert client is not None and client.disabled
        assert 'data-client-id=""' in (await http.get("/docs")).text


async def test_a_new_issuer_url_is_added_to_the_docs_clients_redirect_uris(
    sqlite_url: str, make_settings: Callable[..., Settings]
) -> None:
    async with running_app(make_settings(database_url=sqlite_url, docs_client_id="issuer-docs", **FAST)):
        pass
    moved = make_settings(database_url=sqlite_url, docs_client_id="issuer-docs", url="http://localhost:9000", **FAST)
    async with running_app(moved) as http:
        client = await services_of(http).clients.get("issuer-docs")
        assert client is not None
        assert client.redirect_uris == ("http://127.0.0.1:8000" + DOCS_REDIRECT_PATH, moved.url + DOCS_REDIRECT_PATH)
        assert [e.action for e in reversed(await _docs_audit(http))] == ["clients.create", "clients.update"]


async def test_no_docs_client_is_made_outside_the_embedded_development_mode(
    pg_database: str, sqlite_url: str, make_settings: Callable[..., Settings]
) -> None:
    for settings in (
        make_settings(database_url=pg_database, docs_client_id="issuer-docs", **FAST),
        make_settings(database_url=pg_database, env="production", docs_client_id="issuer-docs", **FAST),
        make_settings(database_url=sqlite_url, docs_client_id="", **FAST),
    ):
        async with running_app(settings) as http:
            assert await services_of(http).store.get_client("issuer-docs") is None
            assert await _docs_audit(http) == []
            assert 'data-client-id=""' in (await http.get("/docs")).text


async def test_production_uses_the_docs_client_an_operator_registered(
    pg_database: str, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(database_url=pg_database, env="production", **FAST)
    async with running_app(settings) as http:
        created, _ = await services_of(http).ops.clients.create(
            OPERATOR, "API docs", ("authorization_code", "refresh_token"), (), (settings.url,),
            public=True, first_party=True, redirect_uris=(settings.url + DOCS_REDIRECT_PATH,),
        )
    async with running_app(settings.model_copy(update={"docs_client_id": created.client_id})) as http:
        assert f'data-client-id="{created.client_id}"' in (await http.get("/docs")).text
        await services_of(http).ops.clients.delete(OPERATOR, created.client_id)


async def test_swagger_uis_requests_sign_an_administrator_in_with_the_docs_client(
    database_url: str, make_settings: Callable[..., Settings]
) -> None:
    """What "Authorize" does, over HTTP: the code flow with PKCE against the docs client, then the
    exchange as Swagger UI may send it (client_id in the form and HTTP Basic with an empty password)."""
    settings = make_settings(database_url=database_url, **FAST)
    async with running_app(settings) as http:
        services = services_of(http)
        redirect = settings.url + DOCS_REDIRECT_PATH
        docs, _ = await services.ops.clients.create(
            OPERATOR, "API docs", ("authorization_code", "refresh_token"), ("issuer:admin",), (settings.url,),
            public=True, first_party=True, redirect_uris=(redirect,),
        )
        admin = await add_user(services, "root")
        await services.ops.users.set_roles(OPERATOR, admin.user_id, ["admin"])
        verifier, challenge = pkce()
        query = authorize_query(docs.client_id, challenge, redirect, scope="openid profile issuer:admin")
        start = await http.get("/oauth2/authorize?" + query)
        signed_in = await sign_in(http, start.headers["location"], "root")
        back = query_of(signed_in.headers["location"])  # first-party: no consent page
        assert signed_in.headers["location"].startswith(redirect + "?") and back["iss"] == settings.url
        exchange = {"grant_type": "authorization_code", "code": back["code"], "client_id": docs.client_id,
                    "redirect_uri": redirect, "code_verifier": verifier}
        tokens = await http.post(
            "/oauth2/token", data=exchange, auth=(docs.client_id, ""), headers={"X-Requested-With": "XMLHttpRequest"}
        )
        assert tokens.status_code == 200, tokens.text
        assert tokens.json()["scope"].split() == ["openid", "profile", "issuer:admin"]
        bearer = {"Authorization": f"Bearer {tokens.json()['access_token']}"}
        assert (await http.get("/admin/clients", headers=bearer)).status_code == 200
        assert (await http.get("/userinfo", headers=bearer)).json()["preferred_username"] == "root"
