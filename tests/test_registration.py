"""POST /register: the new user, duplicate and invalid input, closed registration, and the
role hierarchy as it appears in tokens."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx
import jwt
import pytest

from issuer.accounts.users import NewUser
from issuer.settings import Settings
from tests.conftest import FAST, OPERATOR, FakeClock, assert_problem, make_client, running_app, services_of


async def register(http: httpx.AsyncClient, **body: Any) -> httpx.Response:
    return await http.post("/register", json=body)


async def login(http: httpx.AsyncClient, username: str, password: str) -> httpx.Response:
    client_id, _ = await make_client(http, name="app", grant_types=("password", "refresh_token"), public=True)
    return await http.post(
        "/oauth2/token",
        data={
            "grant_type": "password",
            "client_id": client_id,
            "username": username,
            "password": password,
            "resource": services_of(http).settings.url,  # so that /userinfo accepts the token
        },
    )


def unverified(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


async def test_registration_returns_the_user_with_the_default_role_and_no_hash(http: httpx.AsyncClient) -> None:
    password = "correct horse battery"
    response = await register(http, username="alice", password=password, email="alice@example.com")

    assert response.status_code == 201, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["username"] == "alice"
    assert body["email"] == "alice@example.com"
    assert body["roles"] == ["user"]
    assert isinstance(body["user_id"], str) and len(body["user_id"]) >= 16
    assert body["user_id"] != "alice"
    assert not {"password", "password_hash", "hash"} & set(body)
    assert "$argon2" not in response.text and password not in response.text

    stored = await services_of(http).users.store.find_user("alice")
    assert stored is not None and stored.user_id == body["user_id"]
    assert stored.password_hash.startswith("$argon2id$")


async def test_registered_user_can_log_in_and_the_token_subject_is_the_user_id(http: httpx.AsyncClient) -> None:
    created = (await register(http, username="bob", password="s3cret-password")).json()
    response = await login(http, "bob", "s3cret-password")
    assert response.status_code == 200, response.text
    claims = unverified(response.json()["access_token"])
    assert claims["sub"] == created["user_id"]
    assert claims["roles"] == ["user"]


async def test_email_is_optional(http: httpx.AsyncClient) -> None:
    response = await register(http, username="no-mail", password="password-123")
    assert response.status_code == 201, response.text
    assert response.json()["email"] is None


@pytest.mark.parametrize(
    "second",
    [
        {"username": "alice", "email": "other@example.com"},
        {"username": "ALICE", "email": "other@example.com"},
        {"username": "Alice", "email": None},
    ],
)
async def test_duplicate_username_is_a_conflict_case_insensitively_and_says_nothing_of_email(
    http: httpx.AsyncClient, second: dict[str, Any]
) -> None:
    first = await register(http, username="alice", password="password-one", email="alice@example.com")
    assert first.status_code == 201, first.text

    body = {"password": "password-two", **{k: v for k, v in second.items() if v is not None}}
    response = await http.post("/register", json=body)

    problem = assert_problem(response, 409)
    assert problem["errors"] == {"username": "taken"}
    assert "email" not in response.text
    users = await services_of(http).users.store.list_users(limit=10)
    assert [u.username for u in users] == ["alice"]


@pytest.mark.parametrize("email", ["alice@example.com", "ALICE@Example.COM"])
async def test_a_registered_email_can_be_given_again_so_registration_reveals_no_email(
    http: httpx.AsyncClient, email: str
) -> None:
    first = await register(http, username="alice", password="password-one", email="alice@example.com")
    assert first.status_code == 201, first.text
    response = await register(http, username="alice2", password="password-two", email=email)
    assert response.status_code == 201, response.text
    assert len(await services_of(http).users.store.list_users(limit=10)) == 2


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"username": "shorty", "password": "7chars!"}, {"password"}),
        ({"username": "longpw", "password": "x" * 129}, {"password"}),
        ({"username": "nulpw", "password": "pass\x00word-123"}, {"password"}),
        ({"username": "intpw", "password": 12345678}, {"password"}),
        ({"username": "nopw"}, {"password"}),
        ({"username": "ab", "password": "password-123"}, {"username"}),
        ({"username": "-leading", "password": "password-123"}, {"username"}),
        ({"username": "trailing.", "password": "password-123"}, {"username"}),
        ({"username": "with space", "password": "password-123"}, {"username"}),
        ({"username": "u" * 65, "password": "password-123"}, {"username"}),
        ({"username": "ünïcode", "password": "password-123"}, {"username"}),
        ({"password": "password-123"}, {"username"}),
        ({"username": "mail1", "password": "password-123", "email": "not-an-email"}, {"email"}),
        ({"username": "mail2", "password": "password-123", "email": "a@localhost"}, {"email"}),
        ({"username": "mail3", "password": "password-123", "email": "a b@example.com"}, {"email"}),
        ({"username": "mail4", "password": "password-123", "email": 42}, {"email"}),
        ({"username": "extra", "password": "password-123", "roles": ["admin"]}, {"body"}),
        (
            {"username": "-x", "password": "short", "email": "bad", "admin": True},
            {"username", "password", "email", "body"},
        ),
    ],
)
async def test_invalid_fields_are_reported_one_message_per_field(
    http: httpx.AsyncClient, body: dict[str, Any], fields: set[str]
) -> None:
    response = await http.post("/register", json=body)

    problem = assert_problem(response, 422)
    assert set(problem["errors"]) == fields
    assert all(isinstance(message, str) and message for message in problem["errors"].values())
    assert await services_of(http).users.store.list_users(limit=10) == []


async def test_unknown_field_message_names_the_field(http: httpx.AsyncClient) -> None:
    response = await register(http, username="carol", password="password-123", is_admin=True)
    problem = assert_problem(response, 422)
    assert "is_admin" in problem["errors"]["body"]


@pytest.mark.parametrize("username", ["x", "7"])
async def test_single_character_username_is_refused_as_the_rule_says(http: httpx.AsyncClient, username: str) -> None:
    """The rule (and its message) is 3 to 64 characters."""
    response = await register(http, username=username, password="password-123")
    problem = assert_problem(response, 422)
    assert "3 to 64" in problem["errors"]["username"]


@pytest.mark.parametrize(
    "body",
    [
        {"username": "abc", "password": "8chars!!"},
        {"username": "a" * 64, "password": "pqr" * 42 + "st", "email": "first.last+tag@sub.example.org"},
        {"username": "a.b_c-d", "password": "password-123"},
    ],
)
async def test_boundary_values_are_accepted(http: httpx.AsyncClient, body: dict[str, Any]) -> None:
    response = await http.post("/register", json=body)
    assert response.status_code == 201, response.text
    assert (await login(http, body["username"], body["password"])).status_code == 200


async def test_a_rejected_registration_stores_nothing(http: httpx.AsyncClient) -> None:
    assert (await register(http, username="dave", password="short")).status_code == 422
    response = await register(http, username="dave", password="long-enough")
    assert response.status_code == 201, response.text


async def test_concurrent_registrations_of_one_name_create_exactly_one_user(http: httpx.AsyncClient) -> None:
    responses = await asyncio.gather(
        *(register(http, username="Racer" if i % 2 else "racer", password=f"password-{i:03d}") for i in range(8))
    )
    # One wins; the others find the name taken, or are shed (503) while the hash budget is spent.
    codes = sorted(r.status_code for r in responses)
    assert codes[0] == 201 and set(codes[1:]) <= {409, 503}, [r.text for r in responses]
    assert [u.username.lower() for u in await services_of(http).users.store.list_users(limit=10)] == ["racer"]


async def test_oversized_body_is_413(http: httpx.AsyncClient) -> None:
    limit = services_of(http).settings.max_body_bytes
    response = await register(http, username="big", password="password-123", email="b@example.com", padding="x" * limit)
    assert_problem(response, 413)
    assert await services_of(http).users.store.find_user("big") is None


async def test_wrong_content_type_is_415(http: httpx.AsyncClient) -> None:
    response = await http.post("/register", data={"username": "erin", "password": "password-123"})
    assert_problem(response, 415)
    assert await services_of(http).users.store.find_user("erin") is None


async def test_malformed_json_is_400(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/register", content=b'{"username": "frank", "password": ', headers={"content-type": "application/json"}
    )
    assert_problem(response, 400)


@pytest.mark.parametrize("payload", [b'["frank", "password-123"]', b'"frank"', b"42", b"null"])
async def test_json_that_is_not_an_object_is_rejected(http: httpx.AsyncClient, payload: bytes) -> None:
    response = await http.post("/register", content=payload, headers={"content-type": "application/json"})
    problem = assert_problem(response, 400)
    assert "object" in problem["detail"]
    assert await services_of(http).users.store.list_users(limit=10) == []


async def test_closed_registration_is_403_and_creates_nobody(
    database_url: str, make_settings: Callable[..., Settings], clock: FakeClock
) -> None:
    settings = make_settings(database_url=database_url, open_registration=False, **FAST)
    async with running_app(settings, clock) as http:
        response = await register(http, username="mallory", password="password-123")
        assert_problem(response, 403)
        assert await services_of(http).users.store.find_user("mallory") is None


@pytest.mark.parametrize(
    ("roles", "effective"),
    [
        ((), ["user"]),
        (("user",), ["user"]),
        (("manager",), ["manager", "user"]),
        (("admin",), ["admin", "manager", "user"]),
        (("user", "manager"), ["manager", "user"]),
    ],
)
async def test_roles_claim_carries_the_effective_roles_of_the_hierarchy(
    http: httpx.AsyncClient, roles: tuple[str, ...], effective: list[str]
) -> None:
    await services_of(http).ops.users.create(OPERATOR, NewUser("grace", "password-123", "grace@example.com"), roles)
    response = await login(http, "grace", "password-123")
    assert response.status_code == 200, response.text
    assert unverified(response.json()["access_token"])["roles"] == effective

    userinfo = await http.get("/userinfo", headers={"Authorization": f"Bearer {response.json()['access_token']}"})
    assert userinfo.status_code == 200, userinfo.text
    assert userinfo.json()["roles"] == effective


async def test_a_configured_hierarchy_sets_the_default_role_and_inheritance(
    database_url: str, make_settings: Callable[..., Settings], clock: FakeClock
) -> None:
    settings = make_settings(database_url=database_url, roles=["reader", "editor", "owner"], **FAST)
    async with running_app(settings, clock) as http:
        created = await register(http, username="heidi", password="password-123")
        assert created.status_code == 201, created.text
        assert created.json()["roles"] == ["reader"]

        services = services_of(http)
        await services.ops.users.set_roles(OPERATOR, created.json()["user_id"], ["editor"])
        response = await login(http, "heidi", "password-123")
        assert unverified(response.json()["access_token"])["roles"] == ["editor", "reader"]


# -- enumeration and rate limits ---------------------------------------------------------------------


async def test_forty_probes_learn_nothing_about_emails_and_username_probes_meet_429(http: httpx.AsyncClient) -> None:
    """Today's attack: 40 probes in a row. An email probe is answered exactly like a fresh email;
    username probes stop at the per-IP limit (20 an hour by default), before any hashing."""
    first = await register(http, username="alice", password="password-one", email="alice@example.com")
    assert first.status_code == 201, first.text
    statuses: list[int] = []
    for i in range(40):
        if i % 2:
            response = await register(http, username="alice", password="password-two", email=f"x{i}@example.com")
        else:
            email = "alice@example.com" if i % 4 == 0 else f"fresh{i}@example.com"
            response = await register(http, username=f"probe{i}", password="password-two", email=email)
        if response.status_code != 201:
            assert "email" not in response.text, response.text
        if response.status_code == 429:
            assert int(response.headers["retry-after"]) >= 1
        statuses.append(response.status_code)
    assert statuses.count(429) == 21  # 20 an hour, the first registration included
    assert set(statuses[:19]) == {201, 409}
    users = await services_of(http).users.store.list_users(limit=100)
    assert len(users) == 1 + statuses.count(201)


async def test_the_global_registration_limit_answers_429_with_retry_after(start: Callable[..., Any]) -> None:
    async with start(rate_limit_register_per_ip=0, rate_limit_register_global=3) as http:
        codes = [(await register(http, username=f"user{i}", password="password-123")).status_code for i in range(3)]
        assert codes == [201, 201, 201]
        refused = await register(http, username="user4", password="password-123")
        problem = assert_problem(refused, 429)
        assert "registrations" in problem["detail"]
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert await services_of(http).users.store.find_user("user4") is None


# -- normalisation -----------------------------------------------------------------------------------


async def test_a_kelvin_sign_username_is_the_same_account_as_its_ascii_spelling(http: httpx.AsyncClient) -> None:
    created = await register(http, username="\u212aass", password="password-123")  # KELVIN SIGN + "ass"
    assert created.status_code == 201, created.text
    assert created.json()["username"] == "Kass"
    assert_problem(await register(http, username="kass", password="password-456"), 409)
    assert_problem(await register(http, username="\uff2b\uff41\uff53\uff53", password="password-456"), 409)
    subjects = set()
    for spelling in ("kass", "KASS", "\u212aass", "\u212aASS"):
        response = await login(http, spelling, "password-123")
        assert response.status_code == 200, (spelling, response.text)
        subjects.add(unverified(response.json()["access_token"])["sub"])
    assert subjects == {created.json()["user_id"]}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("username", "ab\u202ecd"),
        ("username", "abc\u2066d\u2069"),
        ("username", "abc\n"),
        ("username", "ab\x07cd"),
        ("username", "ab\u200bcd"),
        ("email", "a\u202eb@example.com"),
        ("email", "ab@exa\u2067mple.com"),
        ("email", "ab@example.com\n"),
    ],
)
async def test_control_and_bidi_override_characters_are_refused(
    http: httpx.AsyncClient, field: str, value: str
) -> None:
    body = {"username": "safe-name", "password": "password-123", field: value}
    problem = assert_problem(await http.post("/register", json=body), 422)
    assert set(problem["errors"]) == {field}
    assert await services_of(http).users.store.list_users(limit=10) == []


async def test_emails_are_validated_and_normalised(http: httpx.AsyncClient) -> None:
    response = await register(http, username="erin", password="password-123", email="Erin.Smith@EXAMPLE.Org")
    assert response.status_code == 201, response.text
    assert response.json()["email"] == "Erin.Smith@example.org"
    problem = assert_problem(await register(http, username="fred", password="password-123", email="fred@@x.org"), 422)
    assert "valid email" in problem["errors"]["email"]


# -- password policy ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("username", "password", "words"),
    [
        ("grace", "password1", "common"),
        ("grace", "Password1", "common"),
        ("grace", "iloveyou", "common"),
        ("grace", " " * 12, "whitespace"),
        ("grace-hopper", "GRACE-HOPPER", "username"),
        ("\u212aass-word", "kass-word", "username"),
        ("grace", "seven77", "8 to 128"),
        ("grace", "zzzzzzzzzzzz", "repetitive"),
        ("grace", "qwqwqwqwqwqw", "repetitive"),
    ],
)
async def test_password_policy_refuses_with_a_clear_message(
    http: httpx.AsyncClient, username: str, password: str, words: str
) -> None:
    problem = assert_problem(await register(http, username=username, password=password), 422)
    assert set(problem["errors"]) == {"password"}
    assert words in problem["errors"]["password"]


def test_the_bundled_common_password_list_has_at_least_ten_thousand_entries() -> None:
    from issuer.accounts.policy import PASSWORD_MIN, common_passwords

    entries = common_passwords()
    assert len(entries) >= 10_000
    assert {"12345678", "iloveyou", "password1", "baseball1"} <= entries
    assert all(len(p) >= PASSWORD_MIN for p in entries)


async def test_changing_the_password_follows_the_same_policy(http: httpx.AsyncClient) -> None:
    from tests.users_helpers import PASSWORD, first_party
    from tests.users_helpers import login as sign_in

    issuer = services_of(http).settings.url
    session = await sign_in(http, await first_party(http), "alice-smith", resource=issuer)
    bearer = {"Authorization": f"Bearer {session['access_token']}"}
    for new, words in (("password1", "common"), ("ALICE-SMITH", "username"), ("          ", "whitespace")):
        response = await http.post(
            "/account/password", json={"current_password": PASSWORD, "new_password": new}, headers=bearer
        )
        problem = assert_problem(response, 422)
        assert words in problem["errors"]["new_password"]


# -- the hash budget ---------------------------------------------------------------------------------

# Slow enough (about 0.2 s a hash) that the other requests arrive while the first still hashes.
SLOW_HASH = {"argon2_time_cost": 4, "argon2_memory_kib": 65536, "password_hash_threads": 1}


async def until(condition: Callable[[], bool]) -> None:
    for _ in range(2000):
        if condition():
            return
        await asyncio.sleep(0.001)
    raise AssertionError("condition never met")


async def test_logins_go_before_waiting_registrations_and_a_full_queue_sheds_with_503(
    start: Callable[..., Any],
) -> None:
    """One hash thread: a registration hashes, a second waits (one may wait per thread), a third
    is shed with 503 + Retry-After; a login arriving last is served before the waiting one."""
    from issuer.accounts.hashbudget import Kind

    async with start(**SLOW_HASH) as http:
        services = services_of(http)
        await services.ops.users.create(OPERATOR, NewUser("alice", "password-123"))
        client_id, _ = await make_client(http, name="app", grant_types=("password",), public=True)
        budget = services.users.passwords.budget
        finished: list[str] = []

        async def sign_up(name: str) -> httpx.Response:
            response = await register(http, username=name, password="password-123")
            finished.append(name)
            return response

        async def sign_in() -> httpx.Response:
            form = {"grant_type": "password", "client_id": client_id, "username": "alice", "password": "password-123"}
            response: httpx.Response = await http.post("/oauth2/token", data=form)
            finished.append("login")
            return response

        first = asyncio.create_task(sign_up("first"))
        await until(lambda: budget.running(Kind.REGISTER) == 1)
        second = asyncio.create_task(sign_up("second"))
        await until(lambda: budget.waiting(Kind.REGISTER) == 1)
        shed = await register(http, username="third", password="password-123")
        signing_in = asyncio.create_task(sign_in())
        await until(lambda: budget.waiting(Kind.LOGIN) == 1)
        responses = await asyncio.gather(first, second, signing_in)

    problem = assert_problem(shed, 503)
    assert int(shed.headers["retry-after"]) >= 1 and "busy" in problem["detail"]
    assert [r.status_code for r in responses] == [201, 201, 200], [r.text for r in responses]
    assert finished.index("login") < finished.index("second"), finished


async def test_a_login_beyond_the_queue_gets_503_temporarily_unavailable(start: Callable[..., Any]) -> None:
    from issuer.accounts.hashbudget import Kind

    async with start(**SLOW_HASH, password_hash_queue=1, rate_limit_login_per_user=0) as http:
        services = services_of(http)
        await services.ops.users.create(OPERATOR, NewUser("alice", "password-123"))
        client_id, _ = await make_client(http, name="app", grant_types=("password",), public=True)
        budget = services.users.passwords.budget
        form = {"grant_type": "password", "client_id": client_id, "username": "alice", "password": "password-123"}

        hashing = asyncio.create_task(http.post("/oauth2/token", data=form))
        await until(lambda: budget.running(Kind.LOGIN) == 1)
        waiting = asyncio.create_task(http.post("/oauth2/token", data=form))
        await until(lambda: budget.waiting(Kind.LOGIN) == 1)
        shed = await http.post("/oauth2/token", data=form)
        served = await asyncio.gather(hashing, waiting)

    assert shed.status_code == 503, shed.text
    assert shed.json()["error"] == "temporarily_unavailable"
    assert int(shed.headers["retry-after"]) >= 1
    assert shed.headers["cache-control"] == "no-store"
    assert [r.status_code for r in served] == [200, 200]


async def test_a_taken_username_is_found_before_any_hashing(start: Callable[..., Any]) -> None:
    async with start(**SLOW_HASH) as http:
        assert (await register(http, username="alice", password="password-123")).status_code == 201
        began = time.perf_counter()
        for _ in range(5):
            assert_problem(await register(http, username="ALICE", password="password-123"), 409)
        conflicts = (time.perf_counter() - began) / 5
        began = time.perf_counter()
        assert (await register(http, username="bob", password="password-123")).status_code == 201
        created = time.perf_counter() - began
    assert conflicts < created / 2, (conflicts, created)


async def test_a_refused_registration_is_answered_after_the_pause(start: Callable[..., Any]) -> None:
    """A flood that ignores Retry-After on a keep-alive connection gets one attempt per pause."""
    async with start(register_refusal_pause=0.3, rate_limit_register_per_ip=0, rate_limit_register_global=1) as http:
        assert (await register(http, username="first", password="password-123")).status_code == 201
        began = time.perf_counter()
        assert_problem(await register(http, username="second", password="password-123"), 429)
        assert time.perf_counter() - began >= 0.3


async def test_migration_0003_keeps_existing_users_and_frees_emails(own_database: str) -> None:
    """A database at 0001 (emails unique) with a user in it: after `migrate` the user is intact,
    the username is still unique, and another account may give the same email."""
    from importlib import resources

    from issuer.storage import SqlStorage, open_database
    from issuer.storage.base import Conflict
    from issuer.storage.migrate import migrate
    from tests.contract.conftest import new_user

    db = await open_database(own_database)
    try:
        init = (resources.files("issuer.storage") / "migrations" / db.dialect / "0001_init.sql").read_text()
        await db.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL)")
        await db.run_script(init + "\nINSERT INTO schema_migrations VALUES (1, '0001_init.sql');")
        store = SqlStorage(db)
        alice = new_user("Alice", "alice@example.com")
        await store.create_user(alice)
        with pytest.raises(Conflict):
            await store.create_user(new_user("bob", "ALICE@example.com"))

        assert "0003_email_not_unique.sql" in await migrate(db)

        assert await store.find_user("alice") == alice
        await store.create_user(new_user("bob", "ALICE@example.com"))
        with pytest.raises(Conflict) as caught:
            await store.create_user(new_user("ALICE"))
        assert caught.value.field == "username"
    finally:
        await db.close()
