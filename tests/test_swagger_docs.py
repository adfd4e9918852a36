"""GET /docs: Swagger UI served offline from the swagger-ui-py package under a strict CSP, and the
OAuth 2 authorization-code scheme of /openapi.json that its "Authorize" button uses."""

from __future__ import annotations

import re
from urllib.parse import urljoin

import httpx

from issuer.http.swagger import ASSETS
from issuer.operations.docs_client import DOCS_REDIRECT_PATH
from tests.conftest import services_of

_TAGS = re.compile(r"<(script|link)\b([^>]*)>", re.IGNORECASE)
_URL = re.compile(r'\b(?:src|href)="([^"]*)"')


def _directives(response: httpx.Response) -> dict[str, list[str]]:
    policy = response.headers["content-security-policy"]
    return {d.split()[0]: d.split()[1:] for d in (part.strip() for part in policy.split(";")) if d}


def _assert_strict_page(response: httpx.Response) -> list[str]:
    """No inline script, nothing from another origin; returns the page's script and link URLs."""
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert len(response.headers.get_list("content-security-policy")) == 1  # one policy, not two intersecting
    csp = _directives(response)
    assert csp["script-src"] == ["'self'"] and csp["style-src"] == ["'self'"]
    assert csp["default-src"] == ["'none'"] and csp["frame-ancestors"] == ["'none'"]
    assert " on" not in response.text.split("<body", 1)[1].split(">", 1)[0]  # no onload= handler
    urls = []
    for tag, attrs in _TAGS.findall(response.text):
        found = _URL.findall(attrs)
        if tag.lower() == "script":
            assert found, "an inline <script>"
        urls += found
    assert all("//" not in url for url in urls), urls  # relative: this origin only, no CDN
    return urls


async def test_docs_page_loads_swagger_ui_from_this_origin_under_a_strict_csp(http: httpx.AsyncClient) -> None:
    page = await http.get("/docs")
    urls = _assert_strict_page(page)
    assert {"docs/swagger-ui-bundle.js", "docs/swagger-initializer.js", "docs/swagger-ui.css"} <= set(urls)
    assert page.headers["cache-control"] == "no-cache"
    assert 'data-openapi-url="openapi.json"' in page.text
    redirect = services_of(http).settings.url + DOCS_REDIRECT_PATH
    assert f'data-oauth2-redirect-url="{redirect}"' in page.text
    for url in urls:
        asset = await http.get(urljoin(str(page.url), url))
        assert asset.status_code == 200, url
        assert asset.headers["cache-control"] == "public, max-age=86400"
        assert asset.headers["x-content-type-options"] == "nosniff"
        assert asset.headers["content-type"].split(";")[0] == ASSETS[url.rsplit("/", 1)[1]][1]
    bundle = await http.get("/docs/swagger-ui-bundle.js")
    assert b"SwaggerUIBundle" in bundle.content and len(bundle.content) > 500_000


async def test_only_the_listed_files_are_served(http: httpx.AsyncClient) -> None:
    for path in ("/docs/swagger-editor.js", "/docs/oauth2-redirect.html", "/docs/../settings.py", "/docs/"):
        response = await http.get(path)
        assert response.status_code == 404, path


async def test_oauth2_redirect_page_runs_only_its_own_script(http: httpx.AsyncClient) -> None:
    page = await http.get(DOCS_REDIRECT_PATH, params={"code": "abc", "state": "xyz"})
    assert _assert_strict_page(page) == ["oauth2-redirect.js"]
    script = await http.get("/docs/oauth2-redirect.js")
    assert b"swaggerUIRedirectOauth2" in script.content


async def test_openapi_offers_authorization_code_with_pkce_against_this_issuer(http: httpx.AsyncClient) -> None:
    issuer = services_of(http).settings.url
    document = (await http.get("/openapi.json")).json()
    scheme = document["components"]["securitySchemes"]["oauth2"]
    assert scheme["type"] == "oauth2" and "PKCE" in scheme["description"]
    flow = scheme["flows"]["authorizationCode"]
    assert flow["authorizationUrl"] == issuer + "/oauth2/authorize"
    assert flow["tokenUrl"] == flow["refreshUrl"] == issuer + "/oauth2/token"
    assert {"openid", "profile", "email", "issuer:admin"} <= set(flow["scopes"])
    userinfo = document["paths"]["/userinfo"]["get"]["security"]
    assert {"oauth2": []} in userinfo and {"bearer": []} in userinfo
    assert {"oauth2": ["issuer:admin"]} in document["paths"]["/admin/clients"]["get"]["security"]
