"""Ids that operators type on a command line never begin with ``-``."""

import re

from issuer.ids import new_id


def test_new_ids_are_urlsafe_unique_and_never_begin_with_a_dash() -> None:
    # Plain token_urlsafe(16) begins with "-" once in 64: among 5,000 ids about 78 would.
    ids = [new_id() for _ in range(5000)]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_-]{21}", i) for i in ids)
