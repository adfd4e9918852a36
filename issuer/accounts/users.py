"""End users: registration rules, the role hierarchy, password login and account changes."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from issuer.accounts.hashbudget import Kind
from issuer.accounts.names import display_username, has_unsafe_characters
from issuer.accounts.passwords import Passwords
from issuer.accounts.policy import PASSWORD_MAX, PASSWORD_MIN, check_password
from issuer.ids import new_id
from issuer.models import User
from issuer.storage.base import Conflict, UserStore

_V = TypeVar("_V")

USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{1,62}[A-Za-z0-9]")
USERNAME_RULE = "3 to 64 characters: letters, digits, '.', '_' or '-', starting and ending with a letter or digit"


class UserInputError(ValueError):
    """Per-field validation messages."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


class RoleHierarchy:
    """Ordered lowest first; a role includes every role below it. ``admin`` is the role that
    holds every power under /admin (if it is not in the hierarchy, no user holds them)."""

    def __init__(self, roles: Sequence[str], admin: str = "admin") -> None:
        self.order = tuple(roles)
        self.admin = admin
        self._rank = {r: i for i, r in enumerate(self.order)}

    @property
    def default(self) -> str:
        return self.order[0]

    def validate(self, roles: Iterable[str]) -> tuple[str, ...]:
        chosen = tuple(dict.fromkeys(roles))
        unknown = [r for r in chosen if r not in self._rank]
        if unknown:
            raise UserInputError({"roles": f"unknown role(s) {', '.join(unknown)}; known: {', '.join(self.order)}"})
        return chosen

    def effective(self, roles: Iterable[str]) -> list[str]:
        top = max((self._rank[r] for r in roles if r in self._rank), default=-1)
        return list(reversed(self.order[: top + 1]))

    def may_administer(self, roles: Iterable[str]) -> bool:
        return self.admin in self.effective(roles)


@dataclass(frozen=True)
class UserState:
    """What authorisation needs to know about a user at request time."""

    disabled: bool
    roles: tuple[str, ...]


_STATE_LIMIT = 10_000
_MISS_LIMIT = 1_000


class UserStates:
    """An in-process view user_id → UserState, so a bearer check costs no database read when
    warm. Entries live ``ttl`` seconds (the fallback when a change notification is lost);
    changes made here, or announced by another instance (``user:<id>``), drop them at once.
    Bounded: known users and unknown ids apart, the least recently loaded evicted first."""

    def __init__(self, store: UserStore, clock: Callable[[], float], ttl: float = 5.0) -> None:
        self._store = store
        self._clock = clock
        self._ttl = ttl
        self._known: dict[str, tuple[UserState, float]] = {}
        self._missing: dict[str, float] = {}
        self._generation = 0
        self._loading: dict[str, asyncio.Future[UserState | None]] = {}

    async def get(self, user_id: str) -> UserState | None:
        now = self._clock()
        hit = self._known.get(user_id)
        if hit is not None and now - hit[1] < self._ttl:
            return hit[0]
        missed = self._missing.get(user_id)
        if missed is not None and now - missed < self._ttl:
            return None
        loading = self._loading.get(user_id)
        if loading is None:
            loading = self._loading[user_id] = asyncio.ensure_future(self._load(user_id))
        return await asyncio.shield(loading)

    async def _load(self, user_id: str) -> UserState | None:
        generation = self._generation
        try:
            user = await self._store.get_user(user_id)
            state = None if user is None else UserState(user.disabled, user.roles)
            if generation == self._generation:  # else a change raced our read: answer it, keep it not
                self._known.pop(user_id, None)
                self._missing.pop(user_id, None)
                if state is None:
                    _bounded_put(self._missing, user_id, self._clock(), _MISS_LIMIT)
                else:
                    _bounded_put(self._known, user_id, (state, self._clock()), _STATE_LIMIT)
            return state
        finally:
            self._loading.pop(user_id, None)

    def invalidate(self, user_id: str | None = None) -> None:
        self._generation += 1
        if user_id is None:
            self._known.clear()
            self._missing.clear()
        else:
            self._known.pop(user_id, None)
            self._missing.pop(user_id, None)


def _bounded_put(entries: dict[str, _V], key: str, value: _V, limit: int) -> None:
    if len(entries) >= limit:
        del entries[next(iter(entries))]
    entries[key] = value


def normalise_username(value: object) -> tuple[str | None, str | None]:
    """(the username as stored, None) or (None, the message). The charset rule applies after NFKC,
    so a fullwidth or Kelvin-sign spelling is the ASCII name it folds to."""
    if not isinstance(value, str):
        return None, USERNAME_RULE
    if has_unsafe_characters(value):
        return None, "must not contain control or bidirectional-override characters"
    name = display_username(value)
    if not USERNAME.fullmatch(name):
        return None, USERNAME_RULE
    return name, None


def check_username(value: object) -> str | None:
    return normalise_username(value)[1]


def normalise_email(value: object) -> tuple[str | None, str | None]:
    """(the normalised address or None if absent, None) or (None, the message). Syntax only:
    an email is contact data we never send to here, so deliverability is not checked."""
    if value is None:
        return None, None
    if not isinstance(value, str) or len(value) > 254:
        return None, "a valid email address"
    if has_unsafe_characters(value):
        return None, "must not contain control or bidirectional-override characters"
    # Loaded at the first address (registration, user admin): no token path needs it.
    from email_validator import EmailNotValidError, validate_email

    try:
        return validate_email(value, check_deliverability=False).normalized, None
    except EmailNotValidError as exc:
        return None, f"a valid email address ({exc})"


def check_email(value: object) -> str | None:
    return normalise_email(value)[1]


@dataclass(frozen=True)
class NewUser:
    username: str
    password: str
    email: str | None = None


def parse_registration(data: dict[str, object]) -> NewUser:
    errors = {}
    unknown = sorted(set(data) - {"username", "password", "email"})
    if unknown:
        errors["body"] = f"unknown field(s): {', '.join(unknown)}"
    username, message = normalise_username(data.get("username"))
    if message:
        errors["username"] = message
    email, message = normalise_email(data.get("email"))
    if message:
        errors["email"] = message
    message = check_password(data.get("password"), username)
    if message:
        errors["password"] = message
    if errors:
        raise UserInputError(errors)
    assert username is not None
    return NewUser(username, str(data["password"]), email)


class Users:
    def __init__(
        self,
        store: UserStore,
        passwords: Passwords,
        roles: RoleHierarchy,
        clock: Callable[[], float],
        on_change: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        self.store = store
        self.passwords = passwords
        self.roles = roles
        self._clock = clock
        self.states = UserStates(store, clock)
        self.on_change = on_change

    # Changes are made by issuer.operations.users (audited in the same transaction); Users builds
    # the new values and drops its cached state once they are committed.

    async def changed(self, user_id: str) -> None:
        """A committed change: forget it here, and tell the other instances."""
        self.states.invalidate(user_id)
        if self.on_change is not None:
            await self.on_change(user_id)

    async def new_user(
        self, new: NewUser, roles: Iterable[str] = (), *, password_hash: str | None = None, disabled: bool = False
    ) -> User:
        """A validated new user (its password hashed), not yet stored."""
        now = self._clock()
        return User(
            user_id=new_id(),
            username=new.username,
            email=new.email,
            password_hash=password_hash or await self.passwords.hash(new.password),
            roles=self.roles.validate(roles) or (self.roles.default,),
            disabled=disabled,
            created_at=now,
            updated_at=now,
        )

    def chosen_roles(self, roles: Iterable[str]) -> tuple[str, ...]:
        chosen = self.roles.validate(roles)
        if not chosen:
            raise UserInputError({"roles": "at least one role"})
        return chosen

    def admit_registration(self) -> None:
        """Raise PasswordsBusy (503) now if no more registrations may be under way, so a flood is
        shed before its bodies are even parsed."""
        self.passwords.budget.check_registration()

    async def login(self, username: str, password: str) -> User | None:
        """The user if the password is right and the account enabled. An unknown user costs
        the same time as a wrong password (a dummy hash is verified)."""
        user = await self.store.find_user(username) if len(username) <= 64 else None
        verdict = await self.passwords.verify(
            user.password_hash if user else None, password, usable=user is not None and not user.disabled
        )
        if user is None or not verdict.ok or user.disabled:
            return None
        if verdict.rehash:
            user = (
                await self.store.update_user(user.user_id, password_hash=verdict.rehash, updated_at=self._clock())
                or user
            )
        return user

    async def new_password_hash(self, user: User, new_password: str) -> str:
        """The hash of an acceptable new password for ``user``; raises UserInputError."""
        message = check_password(new_password, user.username)
        if message:
            raise UserInputError({"new_password": message})
        return await self.passwords.hash(new_password, Kind.LOGIN)


__all__ = [
    "PASSWORD_MAX",
    "PASSWORD_MIN",
    "Conflict",
    "NewUser",
    "RoleHierarchy",
    "UserInputError",
    "UserState",
    "UserStates",
    "Users",
    "check_password",
    "parse_registration",
]
