"""SessionStore, ConsentStore and CodeStore contracts (issuer.storage.base) on each backend."""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import replace

from issuer.models import AuthorizationCode, BrowserSession, ConsentGrant
from issuer.storage import SqlStorage
from tests.contract.conftest import new_family, new_token

NOW = 1_700_000_000.0


def new_session(user_id: str = "user-1", *, now: float = NOW, ttl: float = 3600.0) -> BrowserSession:
    return BrowserSession(
        session_id=secrets.token_urlsafe(16),
        user_id=user_id,
        auth_time=now,
        created_at=now,
        last_seen_at=now,
        expires_at=now + ttl,
        remote_addr="192.0.2.1",
        user_agent="Mozilla/5.0 (contract)",
    )


def new_code(*, now: float = NOW) -> AuthorizationCode:
    return AuthorizationCode(
        code_hash=secrets.token_bytes(32),
        client_id="client-1",
        user_id="user-1",
        session_id="session-1",
        redirect_uri="https://app.example.com/cb",
        code_challenge="E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        nonce="n-0S6_WzA2Mj",
        scope="openid profile",
        audience="https://api.example.com",
        auth_time=now - 5,
        issued_at=now,
        expires_at=now + 60,
    )


async def test_session_round_trips_and_is_found_by_cookie_hash_only(storage: SqlStorage) -> None:
    session, cookie_hash = new_session(), secrets.token_bytes(32)
    await storage.create_session(session, cookie_hash)
    assert await storage.find_session(cookie_hash) == session
    assert await storage.get_session(session.session_id) == session
    assert await storage.find_session(secrets.token_bytes(32)) is None
    assert await storage.get_session("no-such-session") is None


async def test_touch_and_reauthenticate_change_only_live_sessions(storage: SqlStorage) -> None:
    session, old_cookie, new_cookie = new_session(), secrets.token_bytes(32), secrets.token_bytes(32)
    await storage.create_session(session, old_cookie)
    await storage.touch_session(session.session_id, NOW + 30)
    assert await storage.reauthenticate_session(session.session_id, NOW + 60, new_cookie) is True
    stored = await storage.get_session(session.session_id)
    assert stored == replace(session, auth_time=NOW + 60, last_seen_at=NOW + 60)
    assert await storage.find_session(old_cookie) is None and await storage.find_session(new_cookie) == stored
    assert await storage.end_session(session.session_id, NOW + 90, "logout") is True
    assert await storage.end_session(session.session_id, NOW + 95, "again") is False
    await storage.touch_session(session.session_id, NOW + 100)
    assert await storage.reauthenticate_session(session.session_id, NOW + 100, secrets.token_bytes(32)) is False
    ended = await storage.get_session(session.session_id)
    assert ended is not None and ended.ended_at == NOW + 90 and ended.last_seen_at == NOW + 60


async def test_user_sessions_are_listed_newest_first_and_ended_together(storage: SqlStorage) -> None:
    first, second = new_session(now=NOW), new_session(now=NOW + 10)
    expired = new_session(now=NOW - 7200)
    other = new_session("user-2")
    for s in (first, second, expired, other):
        await storage.create_session(s, secrets.token_bytes(32))
    listed = await storage.list_user_sessions("user-1", NOW + 20)
    assert [s.session_id for s in listed] == [second.session_id, first.session_id]
    ended = await storage.end_user_sessions("user-1", NOW + 30, "admin")
    assert ended == sorted([first.session_id, second.session_id, expired.session_id])
    assert await storage.list_user_sessions("user-1", NOW + 30) == []
    assert await storage.end_user_sessions("user-1", NOW + 40, "admin") == []
    assert [s.session_id for s in await storage.list_user_sessions("user-2", NOW)] == [other.session_id]


async def test_revoke_session_families_revokes_only_that_sessions_families(storage: SqlStorage) -> None:
    mine = replace(new_family(), session_id="session-1", auth_time=NOW - 5)
    other = replace(new_family(), session_id="session-2", auth_time=NOW - 5)
    plain = new_family()
    for family in (mine, other, plain):
        await storage.start_family(family, new_token(family, 0))
        assert await storage.consume(await _first_hash(storage, family.family_id), NOW, new_token(family, 1), b"sealed")
    assert await storage.revoke_session_families("session-1", NOW + 1, "session ended") == 1
    assert await storage.revoke_session_families("session-1", NOW + 2, "session ended") == 0
    found = await storage.find_token(await _first_hash(storage, mine.family_id))
    assert found is not None and found[1].revoked_at == NOW + 1
    assert found[1].session_id == "session-1" and found[1].auth_time == NOW - 5
    assert found[0].successor_ciphertext is None  # the grace copy of its successor is gone too
    kept = await storage.find_token(await _first_hash(storage, other.family_id))
    assert kept is not None and kept[1].revoked_at is None and kept[0].successor_ciphertext == b"sealed"


async def _first_hash(storage: SqlStorage, family_id: str) -> bytes:
    token = await storage.get_token(family_id, 0)
    assert token is not None
    return token.token_hash


async def test_purge_sessions_deletes_expired_ones_in_batches(storage: SqlStorage) -> None:
    old = [new_session(now=NOW - 7200) for _ in range(3)]
    live = new_session()
    for s in (*old, live):
        await storage.create_session(s, secrets.token_bytes(32))
    assert await storage.purge_sessions(NOW, limit=2) == 2
    assert await storage.purge_sessions(NOW, limit=2) == 1
    assert await storage.purge_sessions(NOW, limit=2) == 0
    assert await storage.get_session(live.session_id) == live


async def test_consent_is_a_union_per_user_and_client(storage: SqlStorage) -> None:
    assert await storage.consented_scopes("user-1", "client-1") == []
    assert await storage.add_consent("user-1", "client-1", ("openid", "profile"), NOW) == ("openid", "profile")
    assert await storage.add_consent("user-1", "client-1", ("profile", "email", "email"), NOW + 1) == ("email",)
    assert await storage.add_consent("user-1", "client-1", ("openid",), NOW + 2) == ()
    await storage.add_consent("user-1", "client-2", ("read",), NOW)
    assert await storage.consented_scopes("user-1", "client-1") == ["email", "openid", "profile"]
    assert await storage.consented_scopes("user-2", "client-1") == []
    assert await storage.revoke_consent("user-1", "client-1") is True
    assert await storage.revoke_consent("user-1", "client-1") is False
    assert await storage.consented_scopes("user-1", "client-1") == []
    assert await storage.consented_scopes("user-1", "client-2") == ["read"]


async def test_list_consents_gives_each_clients_union_and_latest_grant(storage: SqlStorage) -> None:
    assert await storage.list_consents("user-1") == []
    await storage.add_consent("user-1", "client-b", ("openid", "profile"), NOW)
    await storage.add_consent("user-1", "client-b", ("email",), NOW + 5)
    await storage.add_consent("user-1", "client-a", ("read",), NOW + 1)
    await storage.add_consent("user-2", "client-a", ("write",), NOW + 2)
    assert await storage.list_consents("user-1") == [
        ConsentGrant("client-a", ("read",), NOW + 1),
        ConsentGrant("client-b", ("email", "openid", "profile"), NOW + 5),
    ]
    assert await storage.revoke_consent("user-1", "client-b")
    assert await storage.list_consents("user-1") == [ConsentGrant("client-a", ("read",), NOW + 1)]


async def test_code_is_consumed_exactly_once_and_a_replay_is_marked(storage: SqlStorage) -> None:
    code = new_code()
    await storage.create_code(code)
    first = await storage.consume_code(code.code_hash, NOW + 1)
    assert first == (replace(code, consumed_at=NOW + 1), True)
    assert await storage.record_code_tokens(code.code_hash, "family-1", "jti-1", NOW + 900) is False
    again = await storage.consume_code(code.code_hash, NOW + 2)
    assert again is not None and again[1] is False
    assert again[0] == replace(
        code,
        consumed_at=NOW + 1,
        family_id="family-1",
        access_jti="jti-1",
        access_expires_at=NOW + 900,
        replayed_at=NOW + 2,
    )
    assert await storage.consume_code(secrets.token_bytes(32), NOW) is None


async def test_concurrent_exchanges_have_one_winner(storage: SqlStorage) -> None:
    code = new_code()
    await storage.create_code(code)
    results = await asyncio.gather(*(storage.consume_code(code.code_hash, NOW + 1) for _ in range(8)))
    assert sorted(r[1] for r in results if r is not None) == [False] * 7 + [True]


async def test_a_replay_before_the_winner_records_its_tokens_is_reported_to_it(storage: SqlStorage) -> None:
    code = new_code()
    await storage.create_code(code)
    assert await storage.consume_code(code.code_hash, NOW + 1) is not None
    replay = await storage.consume_code(code.code_hash, NOW + 2)
    assert replay is not None and replay[0].family_id is None and replay[0].replayed_at == NOW + 2
    assert await storage.record_code_tokens(code.code_hash, None, "jti-1", NOW + 900) is True


async def test_purge_codes_deletes_expired_ones(storage: SqlStorage) -> None:
    old, live = new_code(now=NOW - 3600), new_code()
    await storage.create_code(old)
    await storage.create_code(live)
    assert await storage.purge_codes(NOW, limit=10) == 1
    assert await storage.consume_code(old.code_hash, NOW) is None
    assert await storage.consume_code(live.code_hash, NOW) is not None
