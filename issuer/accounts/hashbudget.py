"""Password hashing is a budget, not a queue. A fixed number of hash threads (from the CPU quota
and the memory each hash needs, issuer.resources) serve two kinds of work: logins first, then
registrations. Registrations may hold all threads but one and wait only a few at a time; logins
wait up to ``queue`` deep. Work beyond that is refused at once (503 + Retry-After), so a flood
of registrations costs a bounded amount of CPU and memory and never stands in front of a login.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from enum import IntEnum
from functools import partial
from typing import TypeVar

from issuer.errors import PasswordsBusy

T = TypeVar("T")


class Kind(IntEnum):
    LOGIN = 0
    REGISTER = 1


class HashBudget:
    def __init__(
        self,
        threads: int,
        queue: int,
        register_queue: int,
        initializer: Callable[[Kind], None] | None = None,
    ) -> None:
        self.threads = threads
        self.queue = queue
        self.register_queue = register_queue
        # With two threads or more, one is always free for logins.
        self.register_threads = max(1, threads - 1)
        # One pool per kind, so each kind's threads keep their own CPU priority (a thread may lower
        # its priority but not raise it back); the counts below bound the two together.
        self._pools = {
            kind: ThreadPoolExecutor(
                threads if kind is Kind.LOGIN else self.register_threads,
                thread_name_prefix=f"argon2-{kind.name.lower()}",
                initializer=partial(initializer, kind) if initializer else None,
            )
            for kind in Kind
        }
        self._running = {Kind.LOGIN: 0, Kind.REGISTER: 0}
        self._waiting: dict[Kind, deque[asyncio.Future[None]]] = {Kind.LOGIN: deque(), Kind.REGISTER: deque()}
        self._seconds_per_hash = 0.05
        self._admitted = 0

    def close(self) -> None:
        for pool in self._pools.values():
            pool.shutdown(wait=False)

    def waiting(self, kind: Kind) -> int:
        return len(self._waiting[kind])

    def running(self, kind: Kind) -> int:
        return self._running[kind]

    def _may_start(self, kind: Kind) -> bool:
        if sum(self._running.values()) >= self.threads:
            return False
        if kind is Kind.LOGIN:
            return True
        return not self._waiting[Kind.LOGIN] and self._running[Kind.REGISTER] < self.register_threads

    def _full(self, kind: Kind) -> bool:
        limit = self.queue if kind is Kind.LOGIN else self.register_queue
        return len(self._waiting[kind]) >= limit

    def retry_after(self) -> int:
        backlog = sum(len(q) for q in self._waiting.values()) + self.threads
        return max(1, math.ceil(backlog * self._seconds_per_hash / self.threads))

    def check_registration(self) -> None:
        """Refuse now (PasswordsBusy) if no more registrations may be under way."""
        if self._admitted >= self.register_threads + self.register_queue:
            raise PasswordsBusy(self.retry_after())

    @contextmanager
    def registration(self) -> Iterator[None]:
        """Admit one registration for its lookup, hash and insert, or refuse it (PasswordsBusy). At
        most as many are under way as may hash or wait, so a flood never piles up database lookups
        in front of the budget either."""
        self.check_registration()
        self._admitted += 1
        try:
            yield
        finally:
            self._admitted -= 1

    async def run(self, kind: Kind, fn: Callable[..., T], *args: object) -> T:
        loop = asyncio.get_running_loop()
        if self._may_start(kind):
            self._running[kind] += 1
        else:
            if self._full(kind):
                raise PasswordsBusy(self.retry_after())
            turn: asyncio.Future[None] = loop.create_future()
            self._waiting[kind].append(turn)
            try:
                await turn
            except asyncio.CancelledError:
                if turn.done() and not turn.cancelled():
                    self._release(kind)  # the slot was handed to us; pass it on
                elif turn in self._waiting[kind]:
                    self._waiting[kind].remove(turn)
                raise
        started = loop.time()
        job = self._pools[kind].submit(fn, *args)

        def finished(_: Future[T]) -> None:
            # The slot is freed when the thread is, even if the awaiting request went away.
            try:
                loop.call_soon_threadsafe(self._finished, kind, loop.time() - started)
            except RuntimeError:  # the loop closed at shutdown; nobody is waiting any more
                pass

        job.add_done_callback(finished)
        return await asyncio.wrap_future(job)

    def _finished(self, kind: Kind, seconds: float) -> None:
        self._seconds_per_hash = 0.8 * self._seconds_per_hash + 0.2 * seconds
        self._release(kind)

    def _release(self, kind: Kind) -> None:
        self._running[kind] -= 1
        for waiting_kind in (Kind.LOGIN, Kind.REGISTER):
            queue = self._waiting[waiting_kind]
            while queue and self._may_start(waiting_kind):
                turn = queue.popleft()
                if not turn.done():
                    self._running[waiting_kind] += 1
                    turn.set_result(None)
