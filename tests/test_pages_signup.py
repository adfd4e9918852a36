"""The registration page, branding and template overrides, and the cookies of an https issuer."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx

from tests import pages_helpers as flow
from tests.conftest import services_of


async def test_signup_page_registers_signs_in_and_continues(http: httpx.AsyncClient) -> None:
    client_id = await flow.web_client(http)
    _, challenge = flow.pkce()
    start = await http.get("/oauth2/authorize?" + flow.authorize_query(client_id, challenge, state="su"))
    login = await http.get(start.headers["location"])
    assert '<a href="/signup?ticket=' in login.text
    page = await http.get("/signup?ticket=" + flow.hidden(login.text, "ticket"))
    flow.assert_page_headers(page)
    form = {"csrf": flow.hidden(page.text, "csrf"), "ticket": flow.hidden(page.text, "ticket")}
    bad = await http.post("/signup", data={**form, "username": "x", "password": "short"})
    assert bad.status_code == 422 and 'aria-invalid="true"' in bad.text and 'role="alert"' in bad.text
    made = await http.post("/signup", data={**form, "username": "newbie", "password": "a-long-password-9"})
    assert made.status_code == 303 and flow.query_of(made.headers["location"])["state"] == "su"
    taken = await http.post("/signup", data={**form, "username": "newbie", "password": "a-long-password-9"})
    assert taken.status_code == 409 and "already taken" in taken.text


async def test_signup_page_is_absent_when_registration_is_closed(start: Any) -> None:
    async with start(open_registration=False) as http:
        assert (await http.get("/signup")).status_code == 404
        client_id = await flow.web_client(http)
        _, challenge = flow.pkce()
        begin = await http.get("/oauth2/authorize?" + flow.authorize_query(client_id, challenge))
        assert "/signup" not in (await http.get(begin.headers["location"])).text


async def test_branding_and_template_override(start: Any, tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    templates.mkdir()
    custom = '{% extends "base.html" %}{% block content %}<p>custom {{ error }}</p>{% endblock %}'
    (templates / "error.html").write_text(custom)
    logo = tmp_path / "logo.png"
    logo.write_bytes(b"\x89PNG\r\n\x1a\nfake")
    branding = {"product_name": "Acme ID", "brand_color": "#aa0000", "brand_logo_file": logo}
    async with start(templates_dir=templates, **branding) as http:
        page = await http.get("/oauth2/authorize?client_id=nope")
        assert page.status_code == 400 and "custom invalid_client" in page.text and "Acme ID" in page.text
        theme = await http.get("/static/theme.css")
        assert "--brand:#aa0000" in theme.text and theme.headers["content-type"].startswith("text/css")
        served = await http.get("/static/logo")
        assert served.content.startswith(b"\x89PNG") and served.headers["content-type"] == "image/png"
        etag = (await http.get("/static/pages.css")).headers["etag"]
        cached = await http.get("/static/pages.css", headers={"If-None-Match": etag})
        assert cached.status_code == 304
        assert (await http.get("/static/nope")).status_code == 404


async def test_an_https_issuer_sets_host_prefixed_secure_cookies(start: Any) -> None:
    async with start(url="https://issuer.example") as http:
        client_id = await flow.web_client(http)
        await flow.add_user(services_of(http), "alice")
        _, challenge = flow.pkce()
        begin = await http.get("/oauth2/authorize?" + flow.authorize_query(client_id, challenge))
        csrf = begin.headers["set-cookie"]
        assert csrf.startswith("__Host-issuer-csrf=") and "Secure" in csrf and "Path=/" in csrf
        assert "Domain" not in csrf and "HttpOnly" in csrf
        await flow.code_flow(http, client_id, "alice")
        assert http.cookies.get("__Host-issuer-session")
        assert "strict-transport-security" in begin.headers


async def test_the_authorization_request_may_be_posted(http: httpx.AsyncClient) -> None:
    client_id = await flow.web_client(http)
    _, challenge = flow.pkce()
    form = dict(parse_qsl(flow.authorize_query(client_id, challenge, state="p")))
    response = await http.post("/oauth2/authorize", data=form)
    assert response.status_code == 303 and response.headers["location"].startswith("/login?ticket=")
    repeated = await http.post(
        "/oauth2/authorize",
        content=b"client_id=a&client_id=b",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert repeated.status_code == 400 and "location" not in repeated.headers
