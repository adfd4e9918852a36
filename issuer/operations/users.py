"""User changes: create, register, import, set roles, disable/enable (by an administrator or the
user), change password, revoke sessions; and the reads the admin API and CLI show."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from issuer.accounts.importer import ImportReport, import_users
from issuer.accounts.users import Conflict, NewUser, Users
from issuer.models import User
from issuer.operations.actor import Actor
from issuer.operations.audit import record
from issuer.storage import SqlStorage

__all__ = ["NoSuchUser", "UserOps"]


class NoSuchUser(LookupError):
    pass


@dataclass(frozen=True)
class UserOps:
    store: SqlStorage
    users: Users
    clock: Callable[[], float]

    async def get(self, user_id: str) -> User:
        user = await self.store.get_user(user_id)
        if user is None:
            raise NoSuchUser(user_id)
        return user

    async def find(self, username: str) -> User:
        user = await self.store.find_user(username) if len(username) <= 256 else None
        if user is None:
            raise NoSuchUser(username)
        return user

    async def page(self, *, limit: int, after: str = "") -> list[User]:
        return await self.store.list_users(limit=limit, after=after)

    async def create(
        self,
        actor: Actor,
        new: NewUser,
        roles: Iterable[str] = (),
        *,
        password_hash: str | None = None,
        disabled: bool = False,
    ) -> User:
        """Raises UserInputError, Conflict (the username is taken)."""
        user = await self.users.new_user(new, roles, password_hash=password_hash, disabled=disabled)
        async with self.store.transaction() as tx:
            await tx.create_user(user)
            await record(tx, self.clock, actor, "users.create", user.user_id, username=user.username)
        return user

    async def register(self, new: NewUser, remote_addr: str = "") -> User:
        """Self-service sign-up, admitted by the hash budget (or PasswordsBusy). A taken username is
        found by a lookup before hashing (the insert still catches a race). The actor is the new user."""
        with self.users.passwords.budget.registration():
            if await self.store.find_user(new.username) is not None:
                raise Conflict("username")
            user = await self.users.new_user(new)
        async with self.store.transaction() as tx:
            await tx.create_user(user)
            await record(tx, self.clock, Actor.user(user.user_id, remote_addr), "users.register", user.user_id)
        return user

    async def import_file(self, actor: Actor, file: str) -> ImportReport:
        """All rows in one transaction (each insert in a savepoint, so a taken name skips just
        that row), with one audit entry counting what happened."""
        async with self.store.transaction() as tx:

            async def create(new: NewUser, roles: Iterable[str], password_hash: str) -> None:
                user = await self.users.new_user(new, roles, password_hash=password_hash)
                async with tx.transaction() as row:
                    await row.create_user(user)

            report = await import_users(self.users, file, create)
            await record(
                tx,
                self.clock,
                actor,
                "users.import",
                Path(file).name,
                imported=report.imported,
                conflicts=report.conflicts,
                invalid=len(report.errors),
            )
        return report

    async def set_roles(self, actor: Actor, user_id: str, roles: Iterable[str]) -> User:
        """Raises UserInputError, NoSuchUser."""
        chosen = self.users.chosen_roles(roles)
        async with self.store.transaction() as tx:
            user = await tx.update_user(user_id, roles=chosen, updated_at=self.clock())
            if user is None:
                raise NoSuchUser(user_id)
            await record(tx, self.clock, actor, "users.set_roles", user_id, roles=list(chosen))
        await self.users.changed(user_id)
        return user

    async def set_disabled(self, actor: Actor, user_id: str, disabled: bool) -> User:
        """Disabling also revokes every refresh family and ends every browser session. Raises NoSuchUser."""
        own = actor.kind == "user" and actor.id == user_id
        action = "users.deactivate" if own else "users.disable" if disabled else "users.enable"
        reason = "deactivated by the user" if own else "disabled by an administrator"
        now = self.clock()
        async with self.store.transaction() as tx:
            user = await tx.update_user(user_id, disabled=disabled, updated_at=now)
            if user is None:
                raise NoSuchUser(user_id)
            detail: dict[str, object] = {}
            if disabled:
                detail["families"] = await tx.revoke_user_families(user_id, now, reason)
                # Ended, not merely refused while disabled: enabling the user again revives none.
                detail["browser_sessions"] = len(await tx.end_user_sessions(user_id, now, reason))
            await record(tx, self.clock, actor, action, user_id, **detail)
        await self.users.changed(user_id)
        return user

    async def change_password(self, actor: Actor, user: User, new_password: str) -> int:
        """Set a new password (checked against the policy: UserInputError), revoke every refresh
        family and end every browser session of the user, which a stolen password may have
        started; returns how many families."""
        password_hash = await self.users.new_password_hash(user, new_password)
        now = self.clock()
        async with self.store.transaction() as tx:
            if await tx.update_user(user.user_id, password_hash=password_hash, updated_at=now) is None:
                raise NoSuchUser(user.user_id)
            count = await tx.revoke_user_families(user.user_id, now, "password changed")
            ended = len(await tx.end_user_sessions(user.user_id, now, "password changed"))
            detail = {"families": count, "browser_sessions": ended}
            await record(tx, self.clock, actor, "users.change_password", user.user_id, **detail)
        return count

    async def revoke_sessions(self, actor: Actor, user_id: str) -> int:
        """Revoke every refresh family of the user; returns how many. Raises NoSuchUser."""
        await self.get(user_id)
        async with self.store.transaction() as tx:
            count = await tx.revoke_user_families(user_id, self.clock(), "revoked by an administrator")
            await record(tx, self.clock, actor, "users.revoke_sessions", user_id, families=count)
        return count
