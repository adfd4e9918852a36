"""The lean signer of the token path (keys.signer) against joserfc, which still verifies."""

from __future__ import annotations

import base64
import json
import logging
import random
from datetime import UTC, datetime

import pytest
from joserfc import jws
from joserfc.errors import BadSignatureError

from issuer.observability.logs import JsonFormatter
from keys.generate import generate_key, load_private_key
from keys.signer import Signer

CLAIMS = json.dumps({"iss": "https://issuer.example", "sub": "c-ü", "aud": "https://api.example.com",
                     "exp": 1_900_000_000, "iat": 1_899_999_100, "scope": "read:orders"},
                    separators=(",", ":"), ensure_ascii=False).encode()


def _signer(alg: str) -> Signer:
    kid, _, der = generate_key(alg)
    return Signer(kid, alg, load_private_key(alg, der), {"alg": alg, "typ": "at+jwt", "kid": kid})


def test_rs256_is_byte_for_byte_what_joserfc_produces() -> None:
    signer = _signer("RS256")
    assert signer.sign(CLAIMS) == jws.serialize_compact(signer.header, CLAIMS, signer.key, algorithms=["RS256"])


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_joserfc_verifies_it_and_rejects_a_tampered_payload(alg: str) -> None:
    signer = _signer(alg)
    token = signer.sign(CLAIMS)
    obj = jws.deserialize_compact(token, signer.key, algorithms=[alg])
    assert json.loads(obj.payload) == json.loads(CLAIMS)
    assert obj.protected == signer.header
    head, _, sig = token.split(".")
    other = jws.serialize_compact(signer.header, CLAIMS.replace(b"read", b"write"), signer.key, algorithms=[alg])
    with pytest.raises(BadSignatureError):
        jws.deserialize_compact(f"{head}.{other.split('.')[1]}.{sig}", signer.key, algorithms=[alg])
    if alg == "ES256":  # raw R||S of P-256 (RFC 7518 §3.4), not DER
        assert len(base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4))) == 64


def test_a_key_of_another_algorithm_is_refused() -> None:
    rsa = _signer("RS256")
    with pytest.raises(ValueError):
        Signer(rsa.kid, "ES256", rsa.key, {"alg": "ES256", "typ": "at+jwt", "kid": rsa.kid})
    with pytest.raises(ValueError):
        Signer(rsa.kid, "RS256", rsa.key, {"alg": "ES256", "typ": "at+jwt", "kid": rsa.kid})


def test_json_log_timestamps_match_datetime_isoformat() -> None:
    formatter, rng = JsonFormatter(), random.Random(7)
    edges = [1_700_000_000.0, 1_700_000_000.0005, 1_700_000_000.9999996, 1_618_445_289.9289994]
    for created in edges + [rng.uniform(1.6e9, 1.9e9) for _ in range(5000)]:
        record = logging.LogRecord("t", logging.INFO, "", 0, "m", None, None)
        record.created = created
        expected = datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")
        assert json.loads(formatter.format(record))["ts"] == expected
