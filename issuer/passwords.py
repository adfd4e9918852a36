"""Password hashing: argon2id (argon2-cffi) at OWASP parameters or stronger, run on a bounded
thread pool so a flood of logins cannot stall the event loop. bcrypt hashes imported from
older apps verify, and are replaced by argon2id on the next successful login."""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import bcrypt
from argon2 import PasswordHasher, extract_parameters
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_BCRYPT_PREFIXES = ("$2a$", "$2b$", "$2y$")


def _lower_priority() -> None:
    """Hashing threads run at a lower CPU priority than the event loop, so a flood of logins
    slows other logins, not token, JWKS or refresh requests (Linux: per-thread nice value)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
    except (AttributeError, OSError):
        pass


@dataclass(frozen=True)
class Verdict:
    ok: bool
    rehash: str | None = None


_BCRYPT_HASH = re.compile(r"^\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}$")


def is_supported_hash(value: str) -> bool:
    """A well-formed argon2id or bcrypt hash (not merely the right prefix)."""
    if value.startswith("$argon2id$"):
        try:
            extract_parameters(value)
        except InvalidHashError:
            return False
        return True
    return bool(_BCRYPT_HASH.match(value))


class Passwords:
    def __init__(self, time_cost: int, memory_kib: int, parallelism: int, threads: int) -> None:
        self._hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism)
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="argon2", initializer=_lower_priority)
        self._dummy = self._hasher.hash(secrets.token_urlsafe(16))

    def close(self) -> None:
        self._pool.shutdown(wait=False)

    async def hash(self, password: str) -> str:
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._hasher.hash, password)

    async def verify(self, stored: str | None, password: str) -> Verdict:
        """Verify; with no stored hash, spend the same time on a dummy and fail."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._verify_sync, stored, password)

    def _verify_sync(self, stored: str | None, password: str) -> Verdict:
        if stored is None:
            self._argon2_ok(self._dummy, password)
            return Verdict(False)
        if stored.startswith(_BCRYPT_PREFIXES):
            ok = self._bcrypt_ok(stored, password)
            return Verdict(ok, self._hasher.hash(password) if ok else None)
        ok = self._argon2_ok(stored, password)
        rehash = self._hasher.hash(password) if ok and self._hasher.check_needs_rehash(stored) else None
        return Verdict(ok, rehash)

    def _argon2_ok(self, stored: str, password: str) -> bool:
        try:
            return self._hasher.verify(stored, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    @staticmethod
    def _bcrypt_ok(stored: str, password: str) -> bool:
        # Legacy bcrypt hashed only the first 72 bytes (bcrypt>=5 refuses longer input).
        encoded = password.encode()[:72]
        try:
            return bcrypt.checkpw(encoded, stored.replace("$2y$", "$2b$", 1).encode())
        except ValueError:
            return False
