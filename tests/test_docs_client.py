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
