"""Ids that operators type on a command line never begin with ``-``."""

import re

from issuer.ids import new_id
from keys.generate import generate_key


def test_new_ids_are_urlsafe_unique_and_never_begin_with_a_dash() -> None:
    # Plain token_urlsafe(16) begins with "-" once in 64: among 5,000 ids about 78 would.
    ids = [new_id() for _ in range(5000)]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_-]{21}", i) for i in ids)


def test_signing_key_ids_never_begin_with_a_dash() -> None:
    # A kid is the key's RFC 7638 thumbprint: the key is drawn again when it would begin with "-"
    # (one in 64: among 1,000 keys about 16 would).
    kids = [generate_key("ES256")[0] for _ in range(1000)]
    assert len(set(kids)) == len(kids) and not any(kid.startswith("-") for kid in kids)
