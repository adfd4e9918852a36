"""Browser sessions, consent, codes and RP-initiated logout below HTTP (issuer.authorize)."""

from __future__ import annotations

import hashlib

import httpx
import pytest

from issuer.authorize import ShowError, logout_redirect, parse_end_session
from issuer.errors import InvalidGrant
from issuer.operations import Actor
from tests.authorize_helpers import authorize, context, pkce, user, web_client
from tests.conftest import OPERATOR, FakeClock, services_of


async def test_a_session_resumes_by_its_cookie_only(http: httpx.AsyncClient) -> None:
    sessions = context(http).sessions
    alice = await user(http)
    session, cookie = await sessions.start(alice.user_id, "192.0.2.1", "Mozilla/5.0")
    assert len(cookie) >= 43 and cookie not in session.session_id
    assert await sessions.resume(cookie) == session
    assert await sessions.resume(cookie + "x") is None
    assert await sessions.resume("") is None
    stored = await services_of(http).store.find_session(hashlib.sha256(cookie.encode()).digest())
    assert stored == session  # found by the hash: the cookie itself is not stored


async def test_idle_and_absolute_expiry(http: httpx.AsyncClient, clock: FakeClock) -> None:
    sessions = context(http).sessions
    idle, absolute = sessions.policy.idle_ttl, sessions.policy.absolute_ttl
    alice = await user(http)
    _, cookie = await sessions.start(alice.user_id, "", "")
    clock.advance(idle - 10)
    resumed = await sessions.resume(cookie)
    assert resumed is not None and resumed.last_seen_at == clock.now  # the touch extends it
    clock.advance(idle - 10)
    assert await sessions.resume(cookie) is not None
    clock.advance(idle + 1)
    assert await sessions.resume(cookie) is None  # idle
    kept, cookie = await sessions.start(alice.user_id, "", "")
    while clock.now + idle / 2 < kept.expires_at:
        clock.advance(idle / 2)
        assert await sessions.resume(cookie) is not None  # used often enough never to idle out
    clock.advance(idle / 2)
    assert kept.expires_at - kept.created_at == absolute
    assert await sessions.resume(cookie) is None  # absolute


async def test_a_disabled_users_session_does_not_resume(http: httpx.AsyncClient) -> None:
    sessions = context(http).sessions
    alice = await user(http)
    _, cookie = await sessions.start(alice.user_id, "", "")
    await services_of(http).ops.users.set_disabled(OPERATOR, alice.user_id, True)
    assert await sessions.resume(cookie) is None


async def test_reauthentication_moves_auth_time_and_rotates_the_cookie(
    http: httpx.AsyncClient, clock: FakeClock
) -> None:
    sessions = context(http).sessions
    alice = await user(http)
    session, cookie = await sessions.start(alice.user_id, "", "")
    clock.advance(600)
    again, new_cookie = await sessions.reauthenticated(session)
    assert again.auth_time == clock.now and again.session_id == session.session_id  # the same sid
    assert new_cookie != cookie and await sessions.resume(new_cookie) == again
    assert await sessions.resume(cookie) is None  # a cookie seen before the new sign-in is worth nothing


async def test_ending_sessions(http: httpx.AsyncClient) -> None:
    sessions = context(http).sessions
    alice, bob = await user(http), await user(http, "bob")
    first, c1 = await sessions.start(alice.user_id, "", "")
    second, c2 = await sessions.start(alice.user_id, "", "")
    _, c3 = await sessions.start(bob.user_id, "", "")
    assert {s.session_id for s in await sessions.list_for_user(alice.user_id)} == {
        first.session_id, second.session_id
    }
    sign_out = services_of(http).ops.sessions.sign_out
    assert await sign_out(Actor.user(alice.user_id, "192.0.2.1"), first, "logout") is True
    assert await sign_out(Actor.user(alice.user_id, "192.0.2.1"), first, "logout") is False  # nothing recorded
    entries = [e for e in await services_of(http).ops.audit.recent(limit=10) if e.action == "sessions.sign_out"]
    assert [(e.actor, e.target, e.detail, e.remote_addr) for e in entries] == [
        (
            f"user:{alice.user_id}",
            alice.user_id,
            {"session_id": first.session_id, "reason": "logout", "families": 0},
            "192.0.2.1",
        )
    ]
    assert await sessions.resume(c1) is None and await sessions.resume(c2) is not None
    assert await services_of(http).ops.sessions.end_all(OPERATOR, alice.user_id) == [second.session_id]
    assert await sessions.resume(c2) is None and await sessions.list_for_user(alice.user_id) == []
    assert await sessions.resume(c3) is not None


async def test_consent_is_remembered_per_client_and_scope_set(http: httpx.AsyncClient) -> None:
    consents = context(http).consents
    client_id, _ = await web_client(http)
    client = await context(http).clients.get(client_id)
    assert client is not None
    alice = await user(http)
    assert await consents.needs_consent(alice.user_id, client, ("openid", "profile"))
    grant = services_of(http).ops.consents.grant
    await grant(Actor.user(alice.user_id), alice.user_id, client_id, ("openid", "profile"))
    assert not await consents.needs_consent(alice.user_id, client, ("openid",))
    assert await consents.needs_consent(alice.user_id, client, ("openid", "email"))
    await grant(Actor.user(alice.user_id), alice.user_id, client_id, ("email",))
    entries = [e for e in await services_of(http).ops.audit.recent(limit=10) if e.action == "consents.grant"]
    assert [(e.actor, e.target, e.detail) for e in entries] == [
        (f"user:{alice.user_id}", alice.user_id, {"client_id": client_id, "scopes": ["email"]}),
        (f"user:{alice.user_id}", alice.user_id, {"client_id": client_id, "scopes": ["openid", "profile"]}),
    ]
    assert await consents.covers(alice.user_id, client_id, ("openid", "profile", "email"))
    assert await services_of(http).ops.consents.withdraw(Actor.user(alice.user_id), alice.user_id, client_id) == 0
    assert not await consents.covers(alice.user_id, client_id, ("openid",))
    first_id, _ = await web_client(http, name="own app", first_party=True)
    first = await context(http).clients.get(first_id)
    assert first is not None and not await consents.needs_consent(alice.user_id, first, ("openid", "email"))


async def test_a_code_redeems_once_with_its_bindings(http: httpx.AsyncClient, clock: FakeClock) -> None:
    codes = context(http).codes
    client_id, _ = await web_client(http)
    flow = await authorize(http, client_id, nonce="n-1")
    stored = await codes.redeem(flow.code, client_id, flow.request.redirect_uri, flow.verifier)
    assert stored.user_id == flow.session.user_id and stored.session_id == flow.session.session_id
    assert stored.nonce == "n-1" and stored.scope == "openid profile email read"
    assert stored.expires_at - stored.issued_at <= 60
    with pytest.raises(InvalidGrant, match="already used"):
        await codes.redeem(flow.code, client_id, flow.request.redirect_uri, flow.verifier)
    for mismatch in (
        {"client_id": "other"},
        {"redirect_uri": "http://127.0.0.1/callback"},
        {"verifier": pkce()[0]},
    ):
        fresh = await authorize(http, client_id)
        args = {"client_id": client_id, "redirect_uri": fresh.request.redirect_uri, "verifier": fresh.verifier}
        args.update(mismatch)
        with pytest.raises(InvalidGrant):
            await codes.redeem(fresh.code, args["client_id"], args["redirect_uri"], args["verifier"])
        with pytest.raises(InvalidGrant, match="already used"):  # spent all the same
            await codes.redeem(fresh.code, client_id, fresh.request.redirect_uri, fresh.verifier)
    late = await authorize(http, client_id)
    clock.advance(61)
    with pytest.raises(InvalidGrant, match="expired"):
        await codes.redeem(late.code, client_id, late.request.redirect_uri, late.verifier)
    with pytest.raises(InvalidGrant):
        await codes.redeem("made-up", client_id, late.request.redirect_uri, late.verifier)
    with pytest.raises(InvalidGrant, match="code_verifier"):
        await codes.redeem(late.code, client_id, late.request.redirect_uri, "short")


async def test_end_session_request(http: httpx.AsyncClient) -> None:
    ctx = context(http)
    client_id, _ = await web_client(http)
    other_id, _ = await web_client(http, name="other")
    alice = await user(http)
    id_token = await ctx.id_tokens.mint(
        user=alice, client_id=client_id, scope=("openid",), auth_time=0, sid="the-sid"
    )

    async def parse(**params: str):  # type: ignore[no-untyped-def]
        from issuer.oauth.params import Params

        return await parse_end_session(Params(params.items()), ctx.clients, ctx.keyring, ctx.issuer)

    bye = "https://app.example.com/bye"
    request = await parse(id_token_hint=id_token, post_logout_redirect_uri=bye, state="s 1")
    assert request.client is not None and request.client.client_id == client_id
    assert (request.subject, request.session_id) == (alice.user_id, "the-sid")
    assert logout_redirect(request) == bye + "?state=s+1"
    plain = await parse()
    assert plain.client is None and logout_redirect(plain) is None
    assert logout_redirect(await parse(client_id=client_id, post_logout_redirect_uri=bye)) == bye
    access = await services_of(http).access_tokens.mint(
        subject=alice.user_id, client_id=client_id, scope=("openid",), audience=(ctx.issuer,)
    )
    for bad in (
        {"id_token_hint": access.token},  # an access token is no ID token
        {"id_token_hint": id_token + "x"},
        {"id_token_hint": id_token, "client_id": other_id},
        {"post_logout_redirect_uri": bye},  # whose?
        {"client_id": client_id, "post_logout_redirect_uri": "https://evil.example.com/"},
        {"client_id": "no-such-client"},
    ):
        with pytest.raises(ShowError):
            await parse(**bad)
