"""RefreshStore contract: families, one-time consumption by compare-and-swap, revocation."""

from __future__ import annotations

import asyncio
import secrets

from issuer.models import RefreshFamily, RefreshToken, User
from issuer.storage import SqlStorage
from tests.contract.conftest import new_family, new_token, new_user

NOW = 1_700_000_000.0


async def started(
    storage: SqlStorage, *, user_id: str = "user-1", client_id: str = "client-1", ttl: float = 3600.0
) -> tuple[RefreshFamily, RefreshToken]:
    family = new_family(user_id=user_id, client_id=client_id, ttl=ttl)
    first = new_token(family, 0)
    await storage.start_family(family, first)
    return family, first


async def test_start_family_and_find_token(storage: SqlStorage) -> None:
    family, first = await started(storage)
    found = await storage.find_token(first.token_hash)
    assert found == (first, family)
    assert await storage.get_token(family.family_id, 0) == first
    assert await storage.get_token(family.family_id, 1) is None
    assert await storage.find_token(secrets.token_bytes(32)) is None


async def test_find_token_with_user_joins_the_family_user(storage: SqlStorage) -> None:
    user = new_user("carol", "carol@example.com", roles=("manager",))
    await storage.create_user(user)
    family, first = await started(storage, user_id=user.user_id)
    assert await storage.find_token_with_user(first.token_hash) == (first, family, user)
    orphan_family, orphan = await started(storage, user_id="no-such-user")
    assert await storage.find_token_with_user(orphan.token_hash) == (orphan, orphan_family, None)
    assert await storage.find_token_with_user(secrets.token_bytes(32)) is None


async def test_consume_marks_consumed_and_inserts_successor(storage: SqlStorage) -> None:
    family, first = await started(storage)
    successor = new_token(family, 1, now=NOW + 10)
    assert await storage.consume(first.token_hash, NOW + 10, successor, b"sealed-1") is True
    consumed = await storage.get_token(family.family_id, 0)
    assert consumed is not None
    assert consumed.consumed_at == NOW + 10
    assert consumed.successor_ciphertext == b"sealed-1"
    assert await storage.find_token(successor.token_hash) == (successor, family)


async def test_second_consume_of_the_same_token_fails_and_changes_nothing(storage: SqlStorage) -> None:
    family, first = await started(storage)
    assert await storage.consume(first.token_hash, NOW + 10, new_token(family, 1), b"sealed-a") is True
    late = new_token(family, 1)
    assert await storage.consume(first.token_hash, NOW + 20, late, b"sealed-b") is False
    consumed = await storage.get_token(family.family_id, 0)
    assert consumed is not None
    assert consumed.consumed_at == NOW + 10
    assert consumed.successor_ciphertext == b"sealed-a"
    assert await storage.find_token(late.token_hash) is None


async def test_consume_in_a_revoked_family_fails(storage: SqlStorage) -> None:
    family, first = await started(storage)
    assert await storage.revoke_family(family.family_id, NOW + 5, "test") is True
    successor = new_token(family, 1)
    assert await storage.consume(first.token_hash, NOW + 10, successor, b"sealed") is False
    token = await storage.get_token(family.family_id, 0)
    assert token is not None and token.consumed_at is None
    assert await storage.find_token(successor.token_hash) is None


async def test_consume_of_an_unknown_token_fails(storage: SqlStorage) -> None:
    family, _ = await started(storage)
    successor = new_token(family, 1)
    assert await storage.consume(secrets.token_bytes(32), NOW, successor, b"sealed") is False
    assert await storage.find_token(successor.token_hash) is None


async def test_concurrent_consumes_exactly_one_wins(storage: SqlStorage) -> None:
    family, first = await started(storage)
    successors = [new_token(family, 1) for _ in range(10)]
    results = await asyncio.gather(
        *(storage.consume(first.token_hash, NOW + 1, s, f"sealed-{n}".encode()) for n, s in enumerate(successors))
    )
    assert results.count(True) == 1
    winner = results.index(True)
    stored = [await storage.find_token(s.token_hash) for s in successors]
    assert [found is not None for found in stored] == [n == winner for n in range(10)]
    consumed = await storage.get_token(family.family_id, 0)
    assert consumed is not None and consumed.successor_ciphertext == f"sealed-{winner}".encode()


async def test_grandparent_successor_ciphertext_is_cleared(storage: SqlStorage) -> None:
    family, gen0 = await started(storage)
    gen1 = new_token(family, 1)
    gen2 = new_token(family, 2)
    assert await storage.consume(gen0.token_hash, NOW + 1, gen1, b"sealed-gen1")
    assert await storage.consume(gen1.token_hash, NOW + 2, gen2, b"sealed-gen2")
    t0 = await storage.get_token(family.family_id, 0)
    t1 = await storage.get_token(family.family_id, 1)
    assert t0 is not None and t0.successor_ciphertext is None
    assert t0.consumed_at == NOW + 1
    assert t1 is not None and t1.successor_ciphertext == b"sealed-gen2"


async def test_revoke_family(storage: SqlStorage) -> None:
    family, first = await started(storage)
    other, other_first = await started(storage)
    assert await storage.consume(first.token_hash, NOW + 1, new_token(family, 1), b"sealed")
    assert await storage.consume(other_first.token_hash, NOW + 1, new_token(other, 1), b"sealed-other")
    assert await storage.revoke_family(family.family_id, NOW + 2, "reuse detected") is True
    found = await storage.find_token(first.token_hash)
    assert found is not None
    assert found[1].revoked_at == NOW + 2
    assert found[0].successor_ciphertext is None
    # revoking again reports nothing changed and keeps the first revocation time
    assert await storage.revoke_family(family.family_id, NOW + 3, "again") is False
    found = await storage.find_token(first.token_hash)
    assert found is not None and found[1].revoked_at == NOW + 2
    # other families are untouched
    untouched = await storage.find_token(other_first.token_hash)
    assert untouched is not None
    assert untouched[1].revoked_at is None
    assert untouched[0].successor_ciphertext == b"sealed-other"
    assert await storage.revoke_family("no-such-family", NOW, "x") is False


async def test_revoke_user_families(storage: SqlStorage) -> None:
    a1, a1_first = await started(storage, user_id="alice")
    a2, a2_first = await started(storage, user_id="alice", client_id="client-2")
    b1, b1_first = await started(storage, user_id="bob")
    for family, first in ((a1, a1_first), (b1, b1_first)):
        assert await storage.consume(first.token_hash, NOW + 1, new_token(family, 1), b"sealed")
    assert await storage.revoke_family(a2.family_id, NOW + 1, "logout")
    assert await storage.revoke_user_families("alice", NOW + 5, "password changed") == 1
    f1 = await storage.find_token(a1_first.token_hash)
    f2 = await storage.find_token(a2_first.token_hash)
    fb = await storage.find_token(b1_first.token_hash)
    assert f1 is not None and f1[1].revoked_at == NOW + 5 and f1[0].successor_ciphertext is None
    assert f2 is not None and f2[1].revoked_at == NOW + 1
    assert fb is not None and fb[1].revoked_at is None and fb[0].successor_ciphertext == b"sealed"
    assert await storage.revoke_user_families("alice", NOW + 6, "again") == 0
    assert await storage.revoke_user_families("nobody", NOW + 6, "x") == 0


async def test_revoke_user_families_of_one_client(storage: SqlStorage) -> None:
    mine, mine_first = await started(storage, user_id="alice", client_id="client-1")
    other_app, other_app_first = await started(storage, user_id="alice", client_id="client-2")
    bobs, bobs_first = await started(storage, user_id="bob", client_id="client-1")
    for family, first in ((mine, mine_first), (other_app, other_app_first), (bobs, bobs_first)):
        assert await storage.consume(first.token_hash, NOW + 1, new_token(family, 1), b"sealed")
    assert await storage.revoke_user_families("alice", NOW + 5, "consent withdrawn", client_id="client-1") == 1
    found = {}
    for first in (mine_first, other_app_first, bobs_first):
        token, family = await _found(storage, first.token_hash)
        found[family.family_id] = (family, token)
    assert found[mine.family_id][0].revoked_at == NOW + 5 and found[mine.family_id][1].successor_ciphertext is None
    for untouched in (other_app, bobs):
        assert found[untouched.family_id][0].revoked_at is None
        assert found[untouched.family_id][1].successor_ciphertext == b"sealed"
    assert await storage.revoke_user_families("alice", NOW + 6, "again", client_id="client-1") == 0


async def _found(storage: SqlStorage, token_hash: bytes) -> tuple[RefreshToken, RefreshFamily]:
    found = await storage.find_token(token_hash)
    assert found is not None
    return found


async def test_forget_successors_clears_only_older_consumptions(storage: SqlStorage) -> None:
    early, early_first = await started(storage)
    late, late_first = await started(storage)
    assert await storage.consume(early_first.token_hash, NOW + 10, new_token(early, 1), b"sealed-early")
    assert await storage.consume(late_first.token_hash, NOW + 50, new_token(late, 1), b"sealed-late")
    assert await storage.forget_successors(NOW + 30) == 1
    early_token = await storage.get_token(early.family_id, 0)
    late_token = await storage.get_token(late.family_id, 0)
    assert early_token is not None and early_token.successor_ciphertext is None and early_token.consumed_at == NOW + 10
    assert late_token is not None and late_token.successor_ciphertext == b"sealed-late"
    assert await storage.forget_successors(NOW + 30) == 0


async def test_purge_expired_drops_families_with_their_tokens(storage: SqlStorage) -> None:
    expired, expired_first = await started(storage, ttl=100.0)
    live, live_first = await started(storage, ttl=10_000.0)
    successor = new_token(expired, 1)
    assert await storage.consume(expired_first.token_hash, NOW + 1, successor, b"sealed")
    assert await storage.purge_expired(NOW + 200) == 1
    assert await storage.find_token(expired_first.token_hash) is None
    assert await storage.find_token(successor.token_hash) is None
    assert await storage.get_token(expired.family_id, 0) is None
    assert await storage.find_token(live_first.token_hash) is not None
    assert await storage.purge_expired(NOW + 200) == 0


# rotate: the usual refresh in one round trip (find, check liveness, consume, insert the successor)

IDLE = 600.0


async def rotate(
    storage: SqlStorage,
    token: RefreshToken,
    *,
    client_id: str = "client-1",
    now: float = NOW + 10,
    sealed: bytes = b"sealed",
    successor_hash: bytes | None = None,
) -> tuple[RefreshToken, RefreshFamily, User | None, RefreshToken | None] | None:
    return await storage.rotate(
        token.token_hash, client_id, now, successor_hash or secrets.token_bytes(32), sealed, IDLE
    )


async def test_rotate_consumes_a_live_token_and_inserts_its_successor(storage: SqlStorage) -> None:
    user = new_user("dora", "dora@example.com", roles=("manager",))
    await storage.create_user(user)
    family, first = await started(storage, user_id=user.user_id)
    successor_hash = secrets.token_bytes(32)
    rotated = await rotate(storage, first, successor_hash=successor_hash, sealed=b"sealed-1")
    assert rotated is not None
    before, found_family, found_user, successor = rotated
    assert (before, found_family, found_user) == (first, family, user)  # the token as it was
    expected = RefreshToken(
        token_hash=successor_hash, family_id=family.family_id, generation=1, scope=first.scope,
        audience=first.audience, issued_at=NOW + 10, expires_at=NOW + 10 + IDLE,
    )
    assert successor == expected
    assert await storage.find_token(successor_hash) == (expected, family)
    consumed = await storage.get_token(family.family_id, 0)
    assert consumed is not None and consumed.consumed_at == NOW + 10 and consumed.successor_ciphertext == b"sealed-1"


async def test_rotate_successor_expires_with_its_family(storage: SqlStorage) -> None:
    family, first = await started(storage, ttl=IDLE / 2 + 20)
    rotated = await rotate(storage, first)
    assert rotated is not None and rotated[3] is not None
    assert rotated[3].expires_at == family.expires_at


async def test_rotate_clears_the_grandparents_sealed_successor(storage: SqlStorage) -> None:
    family, gen0 = await started(storage)
    one = await rotate(storage, gen0, sealed=b"sealed-gen1")
    assert one is not None and one[3] is not None
    two = await rotate(storage, one[3], now=NOW + 20, sealed=b"sealed-gen2")
    assert two is not None and two[3] is not None and two[3].generation == 2
    t0 = await storage.get_token(family.family_id, 0)
    t1 = await storage.get_token(family.family_id, 1)
    assert t0 is not None and t0.successor_ciphertext is None and t0.consumed_at == NOW + 10
    assert t1 is not None and t1.successor_ciphertext == b"sealed-gen2" and t1.consumed_at == NOW + 20


async def _refused(
    storage: SqlStorage,
    family: RefreshFamily,
    token: RefreshToken,
    *,
    client_id: str = "client-1",
    now: float = NOW + 10,
) -> RefreshToken:
    """rotate refused: the row comes back as it is, nothing is consumed or inserted."""
    successor_hash = secrets.token_bytes(32)
    before = await storage.get_token(family.family_id, token.generation)
    rotated = await rotate(storage, token, client_id=client_id, now=now, successor_hash=successor_hash)
    assert rotated is not None
    assert rotated[3] is None
    assert rotated[0] == before
    assert await storage.get_token(family.family_id, token.generation) == before
    assert await storage.find_token(successor_hash) is None
    return rotated[0]


async def test_rotate_refuses_another_clients_token(storage: SqlStorage) -> None:
    family, first = await started(storage)
    await _refused(storage, family, first, client_id="client-2")


async def test_rotate_refuses_in_a_revoked_family(storage: SqlStorage) -> None:
    family, first = await started(storage)
    assert await storage.revoke_family(family.family_id, NOW + 5, "test")
    await _refused(storage, family, first)


async def test_rotate_refuses_an_expired_token_or_family(storage: SqlStorage) -> None:
    family, first = await started(storage)
    await _refused(storage, family, first, now=first.expires_at)  # the token's idle end
    short, short_first = await started(storage, ttl=100.0)
    await _refused(storage, short, short_first, now=short.expires_at)  # the family's end
    assert (await rotate(storage, short_first, now=short.expires_at - 1)) is not None


async def test_rotate_refuses_a_consumed_token(storage: SqlStorage) -> None:
    family, first = await started(storage)
    assert (await rotate(storage, first)) is not None
    consumed = await _refused(storage, family, first, now=NOW + 20)
    assert consumed.consumed_at == NOW + 10


async def test_rotate_of_an_unknown_token_is_none(storage: SqlStorage) -> None:
    family, _ = await started(storage)
    assert await rotate(storage, new_token(family, 5)) is None


async def test_concurrent_rotates_exactly_one_wins(storage: SqlStorage) -> None:
    family, first = await started(storage)
    hashes = [secrets.token_bytes(32) for _ in range(10)]
    results = await asyncio.gather(*(rotate(storage, first, successor_hash=h, sealed=bytes([n]))
                                     for n, h in enumerate(hashes)))
    won = [r is not None and r[3] is not None for r in results]
    assert won.count(True) == 1
    winner = won.index(True)
    assert [await storage.find_token(h) is not None for h in hashes] == [n == winner for n in range(10)]
    consumed = await storage.get_token(family.family_id, 0)
    assert consumed is not None and consumed.successor_ciphertext == bytes([winner])


async def test_a_rotation_waiting_on_a_revocation_of_its_family_consumes_nothing(storage: SqlStorage) -> None:
    """A revocation committed while a rotation (or a consume) of the same family waits for it wins:
    the family row is where both queue (PostgreSQL: the rotation locks it first, as the revocation
    does), so the rotation sees it revoked and no successor is born in a revoked family."""
    family, first = await started(storage)
    other, other_first = await started(storage)
    async with storage.transaction() as tx:
        assert await tx.revoke_family(family.family_id, NOW + 5, "logout")
        assert await tx.revoke_family(other.family_id, NOW + 5, "logout")
        rotating = asyncio.create_task(rotate(storage, first))
        consuming = asyncio.create_task(storage.consume(other_first.token_hash, NOW + 10, new_token(other, 1), b"s"))
        await asyncio.sleep(0.3)  # both wait for the revoking transaction
    rotated = await rotating
    assert rotated is not None and rotated[3] is None
    assert await consuming is False
    for fam, token in ((family, first), (other, other_first)):
        stored = await storage.get_token(fam.family_id, token.generation)
        assert stored is not None and stored.consumed_at is None
        assert await storage.get_token(fam.family_id, 1) is None
