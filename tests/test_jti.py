"""issuer.tokens.access.JtiSource: 128-bit URL-safe ids, never repeated, fresh in a forked child."""

from __future__ import annotations

import base64
import os
import re

from issuer.tokens.access import JtiSource


def test_ids_are_22_urlsafe_characters_of_16_random_bytes_and_never_repeat() -> None:
    source = JtiSource(batch=8)  # several refills
    ids = [source() for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{22}", i) for i in ids)
    assert all(len(base64.urlsafe_b64decode(i + "==")) == 16 for i in ids[:100])


def test_a_forked_child_does_not_repeat_its_parents_ids() -> None:
    source = JtiSource(batch=64)
    source()  # the pool is filled: the next 63 ids are in memory
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next ids, then out without pytest's cleanup
        os.write(write, " ".join(source() for _ in range(10)).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = set(os.read(read, 4096).decode().split())
    os.close(read)
    parent = {source() for _ in range(63)}
    assert len(child) == 10 and not child & parent
