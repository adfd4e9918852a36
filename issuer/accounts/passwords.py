"""Password hashing: argon2id (argon2-cffi) at OWASP parameters or stronger, run on the hash
budget (issuer.accounts.hashbudget) so a flood cannot stall the event loop or queue without bound.
bcrypt hashes imported from older apps verify, and are replaced by argon2id on the next
successful login. A failed verification lasts at least as long as the slowest hash we accept,
so timing does not tell an un-upgraded imported account from any other."""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import threading
import time
from dataclasses import dataclass

import bcrypt
from argon2 import PasswordHasher, extract_parameters
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from issuer.accounts.hashbudget import HashBudget, Kind
from issuer.errors import PasswordsBusy

_BCRYPT_PREFIXES = ("$2a$", "$2b$", "$2y$")


_NICE = {Kind.LOGIN: 10, Kind.REGISTER: 19}


def _lower_priority(kind: Kind) -> None:
    """Hashing threads run at a lower CPU priority than the event loop, so a flood of logins
    slows other logins, not token, JWKS or refresh requests; registration hashes run lower still,
    so they take only the CPU logins leave (Linux: per-thread nice value)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), _NICE[kind])
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
    return bool(_BCRYPT_HASH.fullmatch(value))


class Passwords:
    def __init__(
        self,
        time_cost: int,
        memory_kib: int,
        parallelism: int,
        threads: int,
        *,
        queue: int = 0,
        bcrypt_max_cost: int = 12,
    ) -> None:
        self._hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism)
        self.budget = HashBudget(
            threads, queue or 16 * threads, register_queue=threads, initializer=_lower_priority
        )
        self.bcrypt_max_cost = bcrypt_max_cost
        self._dummy = self._hasher.hash(secrets.token_urlsafe(16))
        self._floor: asyncio.Future[float] | None = None

    def close(self) -> None:
        self.budget.close()

    def import_problem(self, stored: str) -> str | None:
        """Why an imported hash is refused, or None. Hashes costlier than we would make are refused:
        they would set the time every failed login must take, and the memory each hash needs."""
        if not is_supported_hash(stored):
            return "password_hash must be argon2id or bcrypt"
        if stored.startswith(_BCRYPT_PREFIXES):
            cost = int(stored[4:6])
            if cost > self.bcrypt_max_cost:
                return f"bcrypt cost {cost} is above the accepted maximum {self.bcrypt_max_cost}"
            return None
        params, ours = extract_parameters(stored), self._hasher
        if params.memory_cost > ours.memory_cost or params.time_cost > ours.time_cost:
            return (
                f"argon2id parameters m={params.memory_cost} t={params.time_cost} are above the configured "
                f"m={ours.memory_cost} t={ours.time_cost}"
            )
        if params.parallelism > ours.parallelism:
            return f"argon2id parallelism {params.parallelism} is above the configured {ours.parallelism}"
        return None

    async def hash(self, password: str, kind: Kind = Kind.REGISTER) -> str:
        return await self.budget.run(kind, self._hasher.hash, password)

    async def verify(self, stored: str | None, password: str, *, usable: bool = True) -> Verdict:
        """Verify; with no stored hash, spend the same time on a dummy and fail. Every failure
        lasts at least as long as verifying the slowest hash we accept (the wait is a sleep,
        not CPU); so does a right password for an account that cannot log in (``usable``
        False, e.g. disabled), so timing does not confirm a guess for it."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        verdict = await self.budget.run(Kind.LOGIN, self._verify_sync, stored, password)
        if not verdict.ok or not usable:
            floor = await self._failure_floor()
            await asyncio.sleep(max(0.0, floor - (loop.time() - started)))
        return verdict

    async def _failure_floor(self) -> float:
        """Measured once per process, on the hash threads: the time to verify a bcrypt hash of
        the highest accepted cost, or argon2id at the configured cost if that is slower."""
        if self._floor is None:
            self._floor = asyncio.ensure_future(self.budget.run(Kind.LOGIN, self._slowest_verification))
        try:
            return await asyncio.shield(self._floor)
        except PasswordsBusy:
            self._floor = None  # measure again when there is room
            return 0.0

    def _slowest_verification(self) -> float:
        salt = bcrypt.gensalt(self.bcrypt_max_cost)
        started = time.perf_counter()
        bcrypt.hashpw(b"dummy password", salt)  # the same work as checkpw at this cost
        bcrypt_seconds = time.perf_counter() - started
        started = time.perf_counter()
        self._argon2_ok(self._dummy, "dummy password")
        return max(bcrypt_seconds, time.perf_counter() - started)

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
