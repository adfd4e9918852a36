"""Password hashing (issuer.accounts.passwords): argon2id at the configured (OWASP) parameters, legacy
bcrypt hashes that verify and are replaced, and a dummy verification for unknown users."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import bcrypt
import pytest
from argon2 import PasswordHasher

from issuer.accounts.passwords import Passwords, is_supported_hash
from issuer.accounts.users import NewUser, RoleHierarchy, UserInputError, Users
from issuer.models import User
from issuer.operations import Actor, UserOps
from issuer.resources import cpu_quota, hash_concurrency, memory_limit
from issuer.settings import Settings
from tests.conftest import OPERATOR, FakeClock, make_client, running_app, services_of


@pytest.fixture
async def passwords() -> AsyncIterator[Passwords]:
    pw = Passwords(time_cost=1, memory_kib=7168, parallelism=1, threads=2, bcrypt_max_cost=4)
    try:
        yield pw
    finally:
        pw.close()


def legacy_bcrypt(password: bytes, prefix: str = "$2b$") -> str:
    hashed = bcrypt.hashpw(password, bcrypt.gensalt(rounds=4)).decode()
    return prefix + hashed[4:]


def test_default_settings_meet_the_owasp_argon2id_minimum() -> None:
    settings = Settings(_env_file=None)
    assert settings.argon2_time_cost >= 2
    assert settings.argon2_memory_kib >= 19456
    assert settings.argon2_parallelism >= 1


async def test_hashes_are_argon2id_with_the_configured_parameters() -> None:
    settings = Settings(_env_file=None)
    pw = Passwords(settings.argon2_time_cost, settings.argon2_memory_kib, settings.argon2_parallelism, 1)
    try:
        hashed = await pw.hash("correct horse")
    finally:
        pw.close()
    assert hashed.startswith("$argon2id$v=19$")
    assert f"m={settings.argon2_memory_kib},t={settings.argon2_time_cost},p={settings.argon2_parallelism}" in hashed


async def test_each_hash_is_salted(passwords: Passwords) -> None:
    first, second = await passwords.hash("same password"), await passwords.hash("same password")
    assert first != second
    assert (await passwords.verify(first, "same password")).ok
    assert (await passwords.verify(second, "same password")).ok


@pytest.mark.parametrize("password", ["password-123", "pässwörd-ünïcode-✓", "x" * 128, "with spaces and \t tab"])
async def test_argon2id_verifies_the_right_password_only(passwords: Passwords, password: str) -> None:
    hashed = await passwords.hash(password)

    right = await passwords.verify(hashed, password)
    wrong = await passwords.verify(hashed, password + "!")

    assert right.ok and right.rehash is None
    assert not wrong.ok and wrong.rehash is None


async def test_a_hash_with_weaker_parameters_asks_for_a_rehash(passwords: Passwords) -> None:
    stronger = Passwords(time_cost=2, memory_kib=8192, parallelism=1, threads=1, bcrypt_max_cost=4)
    try:
        weak = await passwords.hash("password-123")
        verdict = await stronger.verify(weak, "password-123")
        wrong = await stronger.verify(weak, "wrong")
    finally:
        stronger.close()
    assert verdict.ok
    assert verdict.rehash is not None and "m=8192,t=2,p=1" in verdict.rehash
    assert not wrong.ok and wrong.rehash is None


@pytest.mark.parametrize("prefix", ["$2a$", "$2b$", "$2y$"])
async def test_bcrypt_verifies_and_asks_for_an_argon2id_replacement(passwords: Passwords, prefix: str) -> None:
    stored = legacy_bcrypt(b"legacy-password", prefix)

    verdict = await passwords.verify(stored, "legacy-password")
    wrong = await passwords.verify(stored, "legacy-passwordX")

    assert verdict.ok
    assert verdict.rehash is not None and verdict.rehash.startswith("$argon2id$")
    assert (await passwords.verify(verdict.rehash, "legacy-password")).ok
    assert not wrong.ok and wrong.rehash is None


async def test_bcrypt_checks_only_the_first_72_bytes_as_legacy_apps_did(passwords: Passwords) -> None:
    long_password = "L" * 72 + "tail that bcrypt never saw"
    stored = legacy_bcrypt(long_password.encode()[:72])

    verdict = await passwords.verify(stored, long_password)

    assert verdict.ok
    assert verdict.rehash is not None
    replacement = await passwords.verify(verdict.rehash, long_password)
    assert replacement.ok
    assert not (await passwords.verify(verdict.rehash, "L" * 72)).ok


@pytest.mark.parametrize(
    "stored", ["$argon2id$v=19$m=7168,t=1,p=1$garbage", "$2b$04$tooshort", "$2b$99$" + "a" * 53, "", "plain-text"]
)
async def test_malformed_stored_hashes_fail_without_raising(passwords: Passwords, stored: str) -> None:
    verdict = await passwords.verify(stored, "anything")
    assert not verdict.ok and verdict.rehash is None


async def test_no_stored_hash_fails_after_spending_a_real_verification(passwords: Passwords) -> None:
    real = await passwords.hash("password-123")
    await passwords.verify(real, "warm-up")

    async def timed(stored: str | None) -> float:
        began = time.perf_counter()
        verdict = await passwords.verify(stored, "not-the-password")
        assert not verdict.ok and verdict.rehash is None
        return time.perf_counter() - began

    unknown, wrong = [], []
    for _ in range(15):
        unknown.append(await timed(None))
        wrong.append(await timed(real))
    ratio = statistics.median(unknown) / statistics.median(wrong)
    assert 0.5 < ratio < 2.0, ratio
    assert not (await passwords.verify(None, "")).ok


@pytest.mark.parametrize(
    ("value", "supported"),
    [
        (PasswordHasher(time_cost=1, memory_cost=7168).hash("x"), True),
        ("$2a$04$" + "a" * 53, True),
        ("$2b$12$" + "a" * 53, True),
        ("$2y$10$" + "a" * 53, True),
        ("$argon2i$v=19$m=7168,t=1,p=1$c2FsdHNhbHQ$aGFzaA", False),
        ("$argon2d$v=19$m=7168,t=1,p=1$c2FsdHNhbHQ$aGFzaA", False),
        ("pbkdf2_sha256$260000$salt$hash", False),
        ("$1$md5crypt$", False),
        ("plain-password", False),
        ("", False),
    ],
    ids=lambda value: value[:16] if isinstance(value, str) else str(value),  # argon2 salts are random
)
def test_supported_hash_formats(value: str, supported: bool) -> None:
    assert is_supported_hash(value) is supported


# -- through Users, on both databases ----------------------------------------------------------------


@pytest.fixture
async def users(
    database_url: str, make_settings: Callable[..., Settings], clock: FakeClock
) -> AsyncIterator[Users]:
    settings = make_settings(database_url=database_url, argon2_time_cost=1, argon2_memory_kib=7168, signing_alg="ES256")
    async with running_app(settings, clock) as http:
        yield services_of(http).users


async def create(users: Users, new: NewUser, **kwargs: Any) -> User:
    """Create through issuer.operations, as the CLI and the admin API do."""
    return await UserOps(users.store, users, users._clock).create(OPERATOR, new, **kwargs)  # type: ignore[arg-type]


async def test_login_checks_the_password_and_the_account(users: Users) -> None:
    alice = await create(users, NewUser("alice", "password-123"))
    await create(users, NewUser("off", "password-123"), disabled=True)

    assert (await users.login("alice", "password-123")) == alice
    assert await users.login("Alice", "password-123") == alice
    assert await users.login("alice", "password-124") is None
    assert await users.login("nobody", "password-123") is None
    assert await users.login("off", "password-123") is None
    assert await users.login("a" * 65, "password-123") is None


async def test_stored_hash_is_argon2id_and_never_the_password(users: Users) -> None:
    user = await create(users, NewUser("bob", "password-123"))
    stored = await users.store.get_user(user.user_id)
    assert stored is not None
    assert stored.password_hash.startswith("$argon2id$")
    assert "password-123" not in stored.password_hash
    assert "password-123" not in repr(stored)


async def test_bcrypt_user_is_upgraded_on_login_and_keeps_working(users: Users) -> None:
    user = await create(users, NewUser("carol", ""), password_hash=legacy_bcrypt(b"old-app-password"))

    assert await users.login("carol", "wrong") is None
    assert (await users.store.get_user(user.user_id)).password_hash.startswith("$2b$")  # type: ignore[union-attr]
    assert await users.login("carol", "old-app-password") is not None
    upgraded = (await users.store.get_user(user.user_id)).password_hash  # type: ignore[union-attr]
    assert upgraded.startswith("$argon2id$")
    assert await users.login("carol", "old-app-password") is not None


async def test_change_password_validates_replaces_the_hash_and_is_audited(users: Users) -> None:
    ops = UserOps(users.store, users, users._clock)  # type: ignore[arg-type]
    user = await create(users, NewUser("dave", "password-123"))
    actor = Actor.user(user.user_id, "192.0.2.7")
    with pytest.raises(UserInputError) as raised:
        await ops.change_password(actor, user, "short")
    assert set(raised.value.errors) == {"new_password"}
    assert await users.login("dave", "password-123") is not None

    await ops.change_password(actor, user, "a-new-password")
    assert await users.login("dave", "password-123") is None
    assert await users.login("dave", "a-new-password") is not None
    entries = await users.store.list_audit(limit=5)  # type: ignore[attr-defined]
    changed = [e for e in entries if e.action == "users.change_password"]
    assert len(changed) == 1 and changed[0].target == user.user_id
    assert changed[0].actor == f"user:{user.user_id}" and changed[0].remote_addr == "192.0.2.7"
    assert changed[0].detail == {"families": 0, "browser_sessions": 0}


def test_role_hierarchy() -> None:
    roles = RoleHierarchy(["user", "manager", "admin"])
    assert roles.default == "user"
    assert roles.effective(["admin"]) == ["admin", "manager", "user"]
    assert roles.effective(["manager", "user"]) == ["manager", "user"]
    assert roles.effective([]) == []
    with pytest.raises(UserInputError):
        roles.validate(["root"])


# -- hash concurrency from the container's limits (issuer.resources) -------------------------------


def cgroup(tmp_path: Path, cpu: str | None, memory: str | None) -> Path:
    if cpu is not None:
        (tmp_path / "cpu.max").write_text(cpu + "\n")
    if memory is not None:
        (tmp_path / "memory.max").write_text(memory + "\n")
    return tmp_path


@pytest.mark.parametrize(
    ("cpu", "expected"),
    [("max 100000", None), ("200000 100000", 2), ("150000 100000", 2), ("50000 100000", 1), (None, None)],
)
def test_cpu_quota_is_the_cgroup_quota_rounded_up_within_the_affinity(
    tmp_path: Path, cpu: str | None, expected: int | None
) -> None:
    affinity = len(os.sched_getaffinity(0))
    quota = cpu_quota(cgroup(tmp_path, cpu, None))
    assert quota == min(affinity, expected) if expected else quota == affinity


@pytest.mark.parametrize(
    ("memory", "expected"), [("max", None), ("536870912", 536870912), (None, None), ("garbage", None)]
)
def test_memory_limit_reads_memory_max(tmp_path: Path, memory: str | None, expected: int | None) -> None:
    assert memory_limit(cgroup(tmp_path, None, memory)) == expected


def test_hash_concurrency_is_bounded_by_memory_and_cpu_quota_never_the_host_core_count(tmp_path: Path) -> None:
    # A 512 MiB pod with 32 CPUs of quota: half the memory at 19 MiB a hash allows 13, not 31.
    root = cgroup(tmp_path, "3200000 100000", str(512 * 1024 * 1024))
    affinity = len(os.sched_getaffinity(0))
    assert hash_concurrency(19456, root=root) == min(affinity, 13)
    # 64 MiB leaves room for one 19 MiB hash; 1 GiB hashes still get one thread.
    assert hash_concurrency(19456, root=cgroup(tmp_path, "max 100000", str(64 * 1024 * 1024))) == 1
    assert hash_concurrency(1048576, root=root) == 1
    # one CPU of quota, and two lanes per hash, each give one
    assert hash_concurrency(19456, root=cgroup(tmp_path, "100000 100000", "max")) == 1
    assert hash_concurrency(19456, parallelism=2, root=cgroup(tmp_path, "200000 100000", "max")) == 1


def test_the_default_hash_threads_come_from_the_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: 32)
    settings = Settings(_env_file=None)
    assert settings.hash_threads == hash_concurrency(settings.argon2_memory_kib, settings.argon2_parallelism)
    assert settings.hash_threads <= len(os.sched_getaffinity(0))


# -- failed logins take as long as the slowest accepted hash -------------------------------------------


async def failed_login_medians(start: Callable[..., Any], attempt: int) -> dict[str, float]:
    """A new app (so a new one-off measurement of the slowest hash); median seconds of 9 failed
    logins for each kind of account, interleaved. Usernames carry ``attempt``: each attempt
    adds its own accounts to the same database."""
    limits = {"rate_limit_login_per_user": 0, "rate_limit_login_per_ip": 0, "bcrypt_max_cost": 10}
    names = {kind: f"{kind}{attempt}" for kind in ("legacy", "modern", "nobody", "disabled")}
    async with start(**limits) as http:
        services = services_of(http)
        legacy = bcrypt.hashpw(b"legacy-password", bcrypt.gensalt(rounds=10)).decode()
        assert services.users.passwords.import_problem(legacy) is None
        await services.ops.users.create(OPERATOR, NewUser(names["legacy"], ""), password_hash=legacy)
        await services.ops.users.create(OPERATOR, NewUser(names["modern"], "modern-password"))
        # A disabled account with its right password: a fast refusal would confirm the guess.
        await services.ops.users.create(OPERATOR, NewUser(names["disabled"], "wrong-password"), disabled=True)
        client_id, secret = await make_client(http, name="app", grant_types=("password",))

        async def failed(username: str) -> float:
            began = time.perf_counter()
            response = await http.post(
                "/oauth2/token",
                data={"grant_type": "password", "username": username, "password": "wrong-password"},
                auth=(client_id, secret or ""),
            )
            assert response.status_code == 400, response.text
            return time.perf_counter() - began

        await failed(names["modern"])  # warm-up, and the one-off measurement of the slowest hash
        times: dict[str, list[float]] = {kind: [] for kind in names}
        for _ in range(9):
            for kind, username in names.items():
                times[kind].append(await failed(username))
        assert await services.users.store.find_user(names["legacy"]) is not None
    return {kind: statistics.median(values) for kind, values in times.items()}


async def test_failed_login_timing_does_not_reveal_an_un_upgraded_imported_account(start: Callable[..., Any]) -> None:
    """Without padding a wrong password costs a cheap argon2id verification for a modern account
    and a bcrypt one (cost 10 here, ~15x as long) for an imported one.

    The padding is measured once per process (one bcrypt hash of the highest cost). On a shared
    2-core machine, a burst of load during that one measurement, or during the legacy account's
    verifications, moves the ratio by up to 2x (seen: modern / legacy = 0.49); a missing padding
    moves it ~12x, on every attempt. So up to three attempts, each on a new app: the padding must
    hold in one of them, and without it all three fail."""
    attempts: list[dict[str, float]] = []
    for attempt in range(3):
        medians = await failed_login_medians(start, attempt)
        attempts.append(medians)
        slowest = medians["legacy"]
        # unpadded: modern / legacy is about 1 / 12
        if all(0.5 < medians[kind] / slowest < 2.0 for kind in ("modern", "nobody", "disabled")):
            return
    pytest.fail(f"failed logins differ by account kind in every attempt: {attempts}")
