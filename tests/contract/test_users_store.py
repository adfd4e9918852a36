"""UserStore contract: uniqueness of the normalised username (emails are not unique), updates."""

from __future__ import annotations

from dataclasses import replace

import pytest

from issuer.storage import SqlStorage
from issuer.storage.base import Conflict
from tests.contract.conftest import new_user


async def test_create_get_find(storage: SqlStorage) -> None:
    user = new_user("Alice", "Alice@Example.com", roles=("user", "manager"))
    await storage.create_user(user)
    assert await storage.get_user(user.user_id) == user
    assert await storage.find_user("alice") == user
    assert await storage.find_user("ALICE") == user
    assert await storage.find_user("bob") is None
    assert await storage.get_user("nobody") is None


async def test_username_unique_ignoring_case(storage: SqlStorage) -> None:
    await storage.create_user(new_user("Alice"))
    with pytest.raises(Conflict) as caught:
        await storage.create_user(new_user("aLICE"))
    assert caught.value.field == "username"


async def test_emails_are_not_unique(storage: SqlStorage) -> None:
    # An email is contact data, not an identifier: registration must not reveal who gave one.
    await storage.create_user(new_user("alice", "Alice@Example.com"))
    await storage.create_user(new_user("bob", "alice@EXAMPLE.com"))
    assert (await storage.find_user("bob")) is not None


async def test_username_key_is_nfkc_casefold(storage: SqlStorage) -> None:
    await storage.create_user(new_user("Kass"))
    assert await storage.find_user("\u212aass") is not None  # KELVIN SIGN
    assert await storage.find_user("\uff4b\uff41\uff53\uff53") is not None  # fullwidth
    with pytest.raises(Conflict):
        await storage.create_user(new_user("\u212aASS"))


async def test_username_conflict_is_named_username_whatever_the_name_contains(storage: SqlStorage) -> None:
    # The field is named from the constraint, not from the rejected value: a username that
    # happens to contain "email" is still a username conflict.
    await storage.create_user(new_user("EmailFan", "fan@example.com"))
    with pytest.raises(Conflict) as caught:
        await storage.create_user(new_user("emailfan", "other@example.com"))
    assert caught.value.field == "username"


async def test_users_without_email_do_not_conflict(storage: SqlStorage) -> None:
    await storage.create_user(new_user("one"))
    await storage.create_user(new_user("two"))
    assert (await storage.find_user("one")) is not None
    assert (await storage.find_user("two")) is not None


async def test_list_users_pages_by_normalised_username(storage: SqlStorage) -> None:
    for name in ("carol", "Alice", "bob", "Dave"):
        await storage.create_user(new_user(name))
    first = await storage.list_users(limit=2)
    assert [u.username for u in first] == ["Alice", "bob"]
    second = await storage.list_users(limit=2, after=first[-1].username)
    assert [u.username for u in second] == ["carol", "Dave"]
    assert await storage.list_users(limit=2, after="Dave") == []


async def test_update_user_changes_each_field(storage: SqlStorage) -> None:
    user = new_user("alice", "alice@example.com")
    await storage.create_user(user)
    updated = await storage.update_user(
        user.user_id,
        password_hash="$argon2id$new",
        roles=("user", "admin"),
        disabled=True,
        email="New@Example.com",
        updated_at=user.updated_at + 5,
    )
    expected = replace(
        user,
        password_hash="$argon2id$new",
        roles=("user", "admin"),
        disabled=True,
        email="New@Example.com",
        updated_at=user.updated_at + 5,
    )
    assert updated == expected
    assert await storage.get_user(user.user_id) == expected
    await storage.create_user(new_user("bob", "new@example.COM"))
    await storage.create_user(new_user("carol", "alice@example.com"))


async def test_update_user_can_clear_email(storage: SqlStorage) -> None:
    user = new_user("alice", "alice@example.com")
    await storage.create_user(user)
    updated = await storage.update_user(user.user_id, email=None)
    assert updated is not None and updated.email is None
    await storage.create_user(new_user("bob", "ALICE@example.com"))


async def test_update_user_to_an_email_another_user_gave_is_allowed(storage: SqlStorage) -> None:
    alice = new_user("alice", "alice@example.com")
    bob = new_user("bob", "bob@example.com")
    await storage.create_user(alice)
    await storage.create_user(bob)
    updated = await storage.update_user(bob.user_id, email="ALICE@example.com")
    assert updated is not None and updated.email == "ALICE@example.com"


async def test_update_unknown_user_is_none(storage: SqlStorage) -> None:
    assert await storage.update_user("nobody", disabled=True) is None


async def test_update_user_refuses_unknown_fields(storage: SqlStorage) -> None:
    user = new_user("alice")
    await storage.create_user(user)
    with pytest.raises(ValueError):
        await storage.update_user(user.user_id, username="mallory")
    assert await storage.get_user(user.user_id) == user


async def test_update_user_with_no_changes_returns_the_user_unchanged(storage: SqlStorage) -> None:
    user = new_user("alice")
    await storage.create_user(user)
    assert await storage.update_user(user.user_id) == user
