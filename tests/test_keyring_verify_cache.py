"""Keyring.verify remembers tokens whose signature verified (keys.keyring.VERIFIED_CACHE_SIZE):
a token presented again skips the signature check, until its key stops being published."""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import replace

import pytest
from joserfc import jws

from keys import keyring as keyring_module
from keys.envelope import Envelope
from keys.generate import generate_key
from keys.keyring import ACCESS_TOKEN_TYP, ID_TOKEN_TYP, Keyring, private_key_aad
from keys.lifecycle import KeyState, Policy, SigningKey

T0 = 1_700_000_000.0
POLICY = Policy(jwks_max_age=300, clock_skew=60, refresh_interval=5.0, token_ttl=900)


def _key(envelope: Envelope, state: KeyState) -> SigningKey:
    kid, public, der = generate_key("ES256")
    return SigningKey(kid=kid, alg="ES256", state=state, public_jwk=public,
                      private_ciphertext=envelope.encrypt(der, private_key_aad(kid)), created_at=T0,
                      activated_at=T0 if state is KeyState.ACTIVE else None)


@pytest.fixture
def ring() -> tuple[Keyring, SigningKey, SigningKey]:
    envelope = Envelope([secrets.token_bytes(32)])
    active, pending = _key(envelope, KeyState.ACTIVE), _key(envelope, KeyState.PENDING)
    keyring = Keyring(store=None, envelope=envelope, policy=POLICY, clock=lambda: T0)  # type: ignore[arg-type]
    keyring.load([active, pending])
    return keyring, active, pending


def _count_signature_checks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls = [0]
    real = jws.deserialize_compact

    def counting(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls[0] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(jws, "deserialize_compact", counting)
    return calls


def test_a_token_presented_again_is_not_verified_again(ring, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    keyring, active, _ = ring
    calls = _count_signature_checks(monkeypatch)
    token = asyncio.run(keyring.sign({"sub": "a", "jti": "1"}))
    first = keyring.verify(token)
    first[0]["sub"] = "changed by a caller"
    again = keyring.verify(token)
    assert again == ({"sub": "a", "jti": "1"}, active.kid)  # a copy each time: callers cannot alter it
    assert calls[0] == 1
    with pytest.raises(ValueError):  # the cache is per typ: an access token is never an ID token
        keyring.verify(token, ID_TOKEN_TYP)


def test_tampered_tokens_are_never_served_from_the_cache(ring) -> None:  # type: ignore[no-untyped-def]
    keyring, _, _ = ring
    token = asyncio.run(keyring.sign({"sub": "a"}))
    keyring.verify(token)
    head, payload, sig = token.split(".")
    for forged in (f"{head}.{payload}x.{sig}", f"{head}.{payload}.{sig[:-2]}AA", token + "."):
        with pytest.raises(ValueError):
            keyring.verify(forged)


def test_a_key_no_longer_published_verifies_nothing_it_verified_before(ring) -> None:  # type: ignore[no-untyped-def]
    keyring, active, pending = ring
    token = asyncio.run(keyring.sign({"sub": "a"}))
    assert keyring.verify(token)[1] == active.kid
    # The active key revoked (compromised): the pending key signs, the old one is unpublished.
    keyring.load([replace(active, state=KeyState.REVOKED), replace(pending, state=KeyState.ACTIVE, activated_at=T0)])
    with pytest.raises(ValueError):
        keyring.verify(token)


def test_the_cache_is_bounded(ring, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    keyring, _, _ = ring
    monkeypatch.setattr(keyring_module, "VERIFIED_CACHE_SIZE", 8)
    tokens = [asyncio.run(keyring.sign({"n": n})) for n in range(20)]
    for token in tokens:
        keyring.verify(token, ACCESS_TOKEN_TYP)
    assert len(keyring._verified) == 8
    calls = _count_signature_checks(monkeypatch)
    keyring.verify(tokens[-1])
    keyring.verify(tokens[0])  # evicted long ago: verified again, and still valid
    assert calls[0] == 1
