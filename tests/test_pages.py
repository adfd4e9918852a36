"""The hosted pages over HTTP (no browser): the authorization endpoint's decisions, CSRF,
the in-flight ticket, no user enumeration, rate limits, security headers, branding. Both backends."""

from __future__ import annotations

import dataclasses
from typing import Any

import httpx

from tests.conftest import services_of
from tests.pages_helpers import (
    LOGGED_OUT,
    PASSWORD,
    REDIRECT,
    add_user,
    assert_page_headers,
    authorize_query,
    code_flow,
    hidden,
    pkce,
    query_of,
    sign_in,
    web_client,
)


async def test_code_flow_signs_in_once_then_uses_the_session(http: httpx.AsyncClient) -> None:
    client_id = await web_client(http)
    await add_user(services_of(http), "alice")
    verifier, challenge = pkce()
    start = await http.get("/oauth2/authorize?" + authorize_query(client_id, challenge, state="xyz"))
    assert start.status_code == 303 and start.headers["location"].startswith("/login?ticket=")
    page = await http.get(start.headers["location"])
    assert_page_headers(page)
    assert "Photo Gallery" in page.text and 'autocomplete="current-password"' in page.text
    signed = await sign_in(http, start.headers["location"], "alice")
    assert signed.status_code == 303
    back = query_of(signed.headers["location"])
    assert back["state"] == "xyz" and back["iss"] == "http://127.0.0.1:8000" and len(back["code"]) >= 22
    cookie = signed.headers.get_list("set-cookie")
    assert any(c.startswith("issuer-session=") and "HttpOnly" in c and "SameSite=lax" in c for c in cookie), cookie
    # SSO: the next request goes straight back with a code.
    again = await http.get("/oauth2/authorize?" + authorize_query(client_id, challenge))
    assert again.status_code == 303 and "code" in query_of(again.headers["location"])


async def test_unregistered_redirect_uri_is_shown_never_redirected(http: httpx.AsyncClient) -> None:
    client_id = await web_client(http)
    _, challenge = pkce()
    for query in (
        authorize_query(client_id, challenge, redirect_uri="https://evil.example/cb"),
        authorize_query("no-such-client", challenge),
    ):
        response = await http.get("/oauth2/authorize?" + query)
        assert response.status_code == 400 and "location" not in response.headers
        assert_page_headers(response)
        assert 'role="alert"' in response.text and "evil.example" not in response.headers.get("location", "")


async def test_errors_after_the_redirect_uri_is_known_go_back_with_state_and_iss(http: httpx.AsyncClient) -> None:
    client_id = await web_client(http)
    response = await http.get("/oauth2/authorize?" + authorize_query(client_id, "", state="s1"))
    assert response.status_code == 303 and response.headers["location"].startswith(REDIRECT)
    back = query_of(response.headers["location"])
    assert back["error"] == "invalid_request" and back["state"] == "s1" and back["iss"] == "http://127.0.0.1:8000"


async def test_prompt_none_without_session_is_login_required(http: httpx.AsyncClient) -> None:
    client_id = await web_client(http)
    _, challenge = pkce()
    response = await http.get("/oauth2/authorize?" + authorize_query(client_id, challenge, prompt="none"))
    assert response.status_code == 303
    assert query_of(response.headers["location"])["error"] == "login_required"


async def test_prompt_none_without_consent_is_consent_required(http: httpx.AsyncClient) -> None:
    client_id = await web_client(http, first_party=False)
    await add_user(services_of(http), "alice")
    verifier, challenge = pkce()
    start = await http.get("/oauth2/authorize?" + authorize_query(client_id, challenge))
    signed = await sign_in(http, start.headers["location"], "alice")
    assert signed.headers["location"].startswith("/consent?ticket=")
    response = await http.get("/oauth2/authorize?" + authorize_query(client_id, challenge, prompt="none"))
    assert query_of(response.headers["location"])["error"] == "consent_required"


async def test_consent_decline_is_access_denied_and_accept_is_remembered(http: httpx.AsyncClient) -> None:
    client_id = await web_client(http, first_party=False)
    await add_user(services_of(http), "alice")
    _, challenge = pkce()
    start = await http.get("/oauth2/authorize?" + authorize_query(client_id, challenge, state="d"))
    signed = await sign_in(http, start.headers["location"], "alice")
    page = await http.get(signed.headers["location"])
    assert_page_headers(page)
    assert "See your username" in page.text and "alice" in page.text
    form = {"csrf": hidden(page.text, "csrf"), "ticket": hidden(page.text, "ticket")}
    denied = await http.post("/consent", data={**form, "decision": "deny"})
    assert query_of(denied.headers["location"]) == {
        "error": "access_denied", "error_description": "the user declined", "state": "d", "iss": "http://127.0.0.1:8000"
    }
    allowed = await http.post("/consent", data={**form, "decision": "allow"})
    assert "code" in query_of(allowed.headers["location"])
    again = await http.get("/oauth2/authorize?" + authorize_query(client_id, challenge, prompt="none"))
    assert "code" in query_of(again.headers["location"])
    # prompt=consent asks again even though it is remembered.
    forced = await http.get("/oauth2/authorize?" + authorize_query(client_id, challenge, prompt="consent"))
    assert forced.headers["location"].startswith("/consent?ticket=")


async def test_a_first_party_client_skips_consent_unless_it_asks_with_prompt_consent(
    http: httpx.AsyncClient,
) -> None:
    client_id = await web_client(http)  # first-party
    await add_user(services_of(http), "alice")
    await code_flow(http, client_id, "alice")
    _, challenge = pkce()
    forced = await http.get("/oauth2/authorize?" + authorize_query(client_id, challenge, prompt="consent"))
    assert forced.headers["location"].startswith("/consent?ticket="), forced.headers


async def test_a_client_disabled_during_sign_in_gets_no_code(http: httpx.AsyncClient) -> None:
    """The client cache may hold it a few seconds more; the step that hands out a code reads it fresh."""
    client_id = await web_client(http)
    await add_user(services_of(http), "alice")
    _, challenge = pkce()
    start = await http.get("/oauth2/authorize?" + authorize_query(client_id, challenge))
    services = services_of(http)
    client = await services.store.get_client(client_id)
    assert client is not None and await services.clients.get(client_id) is not None  # cached now
    await services.store.update_client(dataclasses.replace(client, disabled=True))  # the cache is not told
    signed = await sign_in(http, start.headers["location"], "alice")
    assert signed.status_code == 400 and "Unknown client." in signed.text
    assert "location" not in signed.headers


async def test_prompt_login_and_max_age_show_the_form_again(http: httpx.AsyncClient) -> None:
    client_id = await web_client(http)
    await add_user(services_of(http), "alice")
    await code_flow(http, client_id, "alice")
    _, challenge = pkce()
    for extra in ({"prompt": "login"}, {"max_age": "0"}):
        before = http.cookies.get("issuer-session")
        response = await http.get("/oauth2/authorize?" + authorize_query(client_id, challenge, **extra))
        assert response.headers["location"].startswith("/login?ticket="), extra
        signed = await sign_in(http, response.headers["location"], "alice")
        assert "code" in query_of(signed.headers["location"]), extra
        assert before and http.cookies.get("issuer-session") not in (None, before), extra  # a new cookie value


async def test_unknown_user_wrong_password_and_disabled_account_look_the_same(http: httpx.AsyncClient) -> None:
    client_id = await web_client(http)
    services = services_of(http)
    await add_user(services, "alice")
    await add_user(services, "dora", disabled=True)
    _, challenge = pkce()
    start = await http.get("/oauth2/authorize?" + authorize_query(client_id, challenge))
    pages = []
    for username, password in (("alice", "wrong-password"), ("nobody", PASSWORD), ("dora", PASSWORD)):
        response = await sign_in(http, start.headers["location"], username, password)
        assert response.status_code == 401 and "set-cookie" not in {k.lower() for k in response.headers.keys()} or (
            "issuer-session" not in response.headers.get("set-cookie", "")
        )
        assert 'role="alert"' in response.text and 'aria-invalid="true"' in response.text
        pages.append(response.text.replace(username, "NAME"))
    strip = [_without_tokens(p) for p in pages]
    assert strip[0] == strip[1] == strip[2]


def _without_tokens(html: str) -> str:
    import re

    return re.sub(r'name="(csrf|ticket)" value="[^"]*"', "", re.sub(r"ticket=[^\"]*", "", html))


async def test_forms_without_a_matching_csrf_token_are_refused(http: httpx.AsyncClient) -> None:
    client_id = await web_client(http)
    await add_user(services_of(http), "alice")
    _, challenge = pkce()
    start = await http.get("/oauth2/authorize?" + authorize_query(client_id, challenge))
    page = await http.get(start.headers["location"])
    form = {"ticket": hidden(page.text, "ticket"), "username": "alice", "password": PASSWORD}
    token = hidden(page.text, "csrf")
    for csrf in ("", "forged", ("B" if token[0] != "B" else "C") + token[1:]):
        refused = await http.post("/login", data={**form, "csrf": csrf})
        assert refused.status_code == 403 and "issuer-session" not in refused.headers.get("set-cookie", "")
    # Another browser (no CSRF cookie of its own) cannot replay this browser's form either.
    async with httpx.AsyncClient(transport=http._transport, base_url=str(http.base_url)) as other:
        stolen = await other.post("/login", data={**form, "csrf": hidden(page.text, "csrf")})
        assert stolen.status_code == 403


async def test_a_ticket_from_another_browser_or_altered_is_refused(http: httpx.AsyncClient) -> None:
    client_id = await web_client(http)
    _, challenge = pkce()
    start = await http.get("/oauth2/authorize?" + authorize_query(client_id, challenge))
    ticket_url = start.headers["location"]
    async with httpx.AsyncClient(transport=http._transport, base_url=str(http.base_url)) as other:
        response = await other.get(ticket_url)
        assert response.status_code == 400 and "expired" in response.text
    altered = await http.get(ticket_url[:-3] + ("AAA" if not ticket_url.endswith("AAA") else "BBB"))
    assert altered.status_code == 400


async def test_sign_in_attempts_are_rate_limited(start: Any) -> None:
    async with start(rate_limit_login_per_user=2) as http:
        client_id = await web_client(http)
        await add_user(services_of(http), "alice")
        _, challenge = pkce()
        begin = await http.get("/oauth2/authorize?" + authorize_query(client_id, challenge))
        for _ in range(2):
            assert (await sign_in(http, begin.headers["location"], "alice", "wrong-password")).status_code == 401
        limited = await sign_in(http, begin.headers["location"], "alice")
        assert limited.status_code == 429 and "Too many sign-in attempts" in limited.text
        assert int(limited.headers["retry-after"]) >= 1


async def test_logout_with_a_hint_of_this_session_ends_it_and_returns_to_the_client(http: httpx.AsyncClient) -> None:
    client_id = await web_client(http)
    await add_user(services_of(http), "alice")
    await code_flow(http, client_id, "alice")
    # Without an ID token hint the user is asked first.
    ask = await http.get("/oauth2/logout?" + f"client_id={client_id}&post_logout_redirect_uri={LOGGED_OUT}&state=z")
    assert ask.status_code == 200 and "Sign out" in ask.text
    assert_page_headers(ask)
    assert "form-action 'self' https://app.example.com" in ask.headers["content-security-policy"]
    form = {"csrf": hidden(ask.text, "csrf"), "ticket": hidden(ask.text, "ticket")}
    done = await http.post("/oauth2/logout", data=form)
    assert done.status_code == 303 and done.headers["location"] == LOGGED_OUT + "?state=z"
    _, challenge = pkce()
    after = await http.get("/oauth2/authorize?" + authorize_query(client_id, challenge, prompt="none"))
    assert query_of(after.headers["location"])["error"] == "login_required"


async def test_logout_to_an_unregistered_uri_is_refused_on_the_page(http: httpx.AsyncClient) -> None:
    client_id = await web_client(http)
    response = await http.get(f"/oauth2/logout?client_id={client_id}&post_logout_redirect_uri=https://evil.example/")
    assert response.status_code == 400 and "location" not in response.headers


async def test_consents_and_sign_outs_on_the_pages_are_audited(http: httpx.AsyncClient) -> None:
    """The pages change state through the operations layer: each consent given and each session
    ended from the browser (a logout, or another user signing in on it) leaves an audit entry."""
    services = services_of(http)
    client_id = await web_client(http, first_party=False)
    alice, bob = await add_user(services, "alice"), await add_user(services, "bob")
    _, challenge = pkce()
    start = await http.get("/oauth2/authorize?" + authorize_query(client_id, challenge))
    page = await http.get((await sign_in(http, start.headers["location"], "alice")).headers["location"])
    form = {"csrf": hidden(page.text, "csrf"), "ticket": hidden(page.text, "ticket"), "decision": "deny"}
    assert query_of((await http.post("/consent", data=form)).headers["location"])["error"] == "access_denied"
    form["decision"] = "allow"
    assert "code" in query_of((await http.post("/consent", data=form)).headers["location"])
    await http.post("/consent", data=form)  # posted again (a second tab): nothing new, nothing recorded
    alices = (await services.ops.sessions.list_for_user(alice.user_id))[0]
    # Bob signs in on the same browser: Alice's session ends.
    again = await http.get("/oauth2/authorize?" + authorize_query(client_id, challenge, prompt="login"))
    assert (await sign_in(http, again.headers["location"], "bob")).status_code == 303
    bobs = (await services.ops.sessions.list_for_user(bob.user_id))[0]
    ask = await http.get("/oauth2/logout")
    done = await http.post(
        "/oauth2/logout", data={"csrf": hidden(ask.text, "csrf"), "ticket": hidden(ask.text, "ticket")}
    )
    assert done.status_code == 200 and "signed out" in done.text
    entries = [
        (e.actor, e.action, e.target, e.detail, e.remote_addr)
        for e in reversed(await services.ops.audit.recent(limit=20))
        if e.action in ("consents.grant", "sessions.sign_out")
    ]
    granted = ["openid", "profile"]  # what authorize_query asks
    assert entries == [
        (
            f"user:{alice.user_id}",
            "consents.grant",
            alice.user_id,
            {"client_id": client_id, "scopes": granted},
            "127.0.0.1",
        ),
        (
            f"user:{bob.user_id}",
            "sessions.sign_out",
            alice.user_id,
            {"session_id": alices.session_id, "reason": "another user signed in", "families": 0},
            "127.0.0.1",
        ),
        (
            f"user:{bob.user_id}",
            "sessions.sign_out",
            bob.user_id,
            {"session_id": bobs.session_id, "reason": "logout", "families": 0},
            "127.0.0.1",
        ),
    ]
