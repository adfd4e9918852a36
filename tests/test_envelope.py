"""keys.envelope: AES-256-GCM envelopes under a list of key-encryption keys."""

from __future__ import annotations

import base64
import secrets

import pytest

from keys.envelope import Envelope, EnvelopeError, new_kek, parse_keks

AAD = b"signing-key:kid-1"


def envelope(*keks: str) -> Envelope:
    return Envelope(parse_keks(",".join(keks)))


def test_new_kek_is_32_bytes_of_unpadded_base64url() -> None:
    kek = new_kek()
    assert len(kek) == 43 and "=" not in kek
    assert set(kek) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert parse_keks(kek) == [base64.urlsafe_b64decode(kek + "=")]
    assert new_kek() != kek


def test_round_trip() -> None:
    env = envelope(new_kek())
    plaintext = secrets.token_bytes(1200)
    blob = env.encrypt(plaintext, AAD)
    assert plaintext not in blob
    assert env.decrypt(blob, AAD) == plaintext
    assert env.decrypt(env.encrypt(b"", AAD), AAD) == b""


def test_each_encryption_uses_a_fresh_nonce() -> None:
    env = envelope(new_kek())
    assert env.encrypt(b"same", AAD) != env.encrypt(b"same", AAD)


def test_ciphertext_is_bound_to_its_associated_data() -> None:
    env = envelope(new_kek())
    blob = env.encrypt(b"private key", AAD)
    with pytest.raises(EnvelopeError, match="authentication"):
        env.decrypt(blob, b"signing-key:kid-2")
    with pytest.raises(EnvelopeError):
        env.decrypt(blob, b"")


def test_tampered_ciphertext_is_refused() -> None:
    env = envelope(new_kek())
    blob = bytearray(env.encrypt(b"private key", AAD))
    blob[-1] ^= 0x01
    with pytest.raises(EnvelopeError, match="authentication"):
        env.decrypt(bytes(blob), AAD)


def test_unknown_kek_is_refused() -> None:
    blob = envelope(new_kek()).encrypt(b"secret", AAD)
    with pytest.raises(EnvelopeError, match="not configured"):
        envelope(new_kek()).decrypt(blob, AAD)


def test_wrong_kek_with_a_forged_fingerprint_fails_authentication() -> None:
    # a blob that names the right fingerprint but was sealed under a different key
    right, wrong = new_kek(), new_kek()
    genuine = envelope(right).encrypt(b"secret", AAD)
    forged = envelope(wrong).encrypt(b"secret", AAD)
    spliced = genuine[:9] + forged[9:]
    with pytest.raises(EnvelopeError, match="authentication"):
        envelope(right).decrypt(spliced, AAD)


def test_truncated_or_foreign_blobs_are_refused() -> None:
    env = envelope(new_kek())
    blob = env.encrypt(b"secret", AAD)
    for bad in (b"", blob[:20], b"\x02" + blob[1:]):
        with pytest.raises(EnvelopeError, match="version"):
            env.decrypt(bad, AAD)


def test_every_configured_kek_decrypts_and_the_first_encrypts() -> None:
    old, new = new_kek(), new_kek()
    old_blob = envelope(old).encrypt(b"from before", AAD)
    both = envelope(new, old)
    assert both.decrypt(old_blob, AAD) == b"from before"
    assert not both.is_current(old_blob)
    fresh = both.encrypt(b"after", AAD)
    assert both.is_current(fresh)
    assert envelope(new).decrypt(fresh, AAD) == b"after"
    with pytest.raises(EnvelopeError, match="not configured"):
        envelope(old).decrypt(fresh, AAD)


def test_rewrap_moves_a_blob_to_the_new_first_kek() -> None:
    old, new = new_kek(), new_kek()
    blob = envelope(old).encrypt(b"private key", AAD)
    rotating = envelope(new, old)
    rewrapped = rotating.rewrap(blob, AAD)
    assert rewrapped != blob
    assert rotating.is_current(rewrapped)
    # after the rewrap the old key can be dropped from the configuration
    assert envelope(new).decrypt(rewrapped, AAD) == b"private key"
    # already current: returned as is
    assert rotating.rewrap(rewrapped, AAD) is rewrapped
    # rewrapping checks the associated data too
    with pytest.raises(EnvelopeError):
        rotating.rewrap(blob, b"another purpose")


def test_parse_keks_accepts_commas_spaces_and_padding() -> None:
    a, b = new_kek(), new_kek()
    parsed = parse_keks(f" {a} , {b}=,, ")
    assert parsed == [base64.urlsafe_b64decode(a + "="), base64.urlsafe_b64decode(b + "=")]
    assert parse_keks("") == []


@pytest.mark.parametrize(
    "value",
    [
        "not base64url!",
        base64.urlsafe_b64encode(secrets.token_bytes(16)).decode(),
        base64.urlsafe_b64encode(secrets.token_bytes(33)).decode(),
        "!!!!",
    ],
    ids=["garbage", "16-bytes", "33-bytes", "no-alphabet-chars"],
)
def test_bad_kek_strings_are_refused(value: str) -> None:
    with pytest.raises(EnvelopeError):
        parse_keks(value)
    with pytest.raises(EnvelopeError):
        parse_keks(f"{new_kek()},{value}")


def test_characters_outside_base64url_are_refused_not_silently_dropped() -> None:
    kek = new_kek()
    with pytest.raises(EnvelopeError, match="base64url"):
        parse_keks(kek + "$$")
    with pytest.raises(EnvelopeError, match="base64url"):
        parse_keks(kek[:20] + "**" + kek[20:] + "$$")


def test_an_envelope_needs_a_kek() -> None:
    with pytest.raises(EnvelopeError):
        Envelope([])
