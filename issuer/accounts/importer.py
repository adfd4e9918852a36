"""`issuer users import FILE`: users from another app, with their existing password hashes.

CSV with a header row, or JSON lines, with ``username,email,password_hash,roles`` (roles
separated by spaces, or a JSON list). argon2id and bcrypt (``$2a$``/``$2b$``/``$2y$``) hashes are
accepted; bcrypt ones are replaced by argon2id on each user's next successful login. Hashes
costlier than the policy (bcrypt above ``ISSUER_BCRYPT_MAX_COST``, argon2id above the configured
parameters) are refused: they would set how long every failed login must take.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from issuer.accounts.users import Conflict, NewUser, UserInputError, Users, normalise_email, normalise_username


@dataclass
class ImportReport:
    imported: int = 0
    conflicts: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)


def _rows(path: Path) -> list[tuple[int, dict[str, Any]]]:
    text = path.read_text(encoding="utf-8")
    first = text.lstrip()[:1]
    if first == "{":
        rows = []
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    rows.append((number, json.loads(line)))
                except ValueError:
                    rows.append((number, {"__error__": "not valid JSON"}))
        return rows
    reader = csv.DictReader(text.splitlines())
    return [(number, dict(row)) for number, row in enumerate(reader, 2)]


Create = Callable[[NewUser, Iterable[str], str], Awaitable[None]]


async def import_users(users: Users, file: str, create: Create) -> ImportReport:
    """Check each row and hand the good ones to ``create`` (issuer.operations.users stores them)."""
    report = ImportReport()
    for number, row in _rows(Path(file)):
        if not isinstance(row, dict):
            report.errors.append((number, "not an object"))
            continue
        if "__error__" in row:
            report.errors.append((number, row["__error__"]))
            continue
        password_hash = row.get("password_hash")
        roles = row.get("roles") or []
        if isinstance(roles, str):
            roles = roles.replace(";", " ").replace(",", " ").split()
        username, problem = normalise_username(row.get("username"))
        email, email_problem = normalise_email(row.get("email") or None)
        problem = problem or email_problem
        if problem or username is None:
            report.errors.append((number, problem or "no username"))
            continue
        if not isinstance(password_hash, str):
            report.errors.append((number, "password_hash must be argon2id or bcrypt"))
            continue
        problem = users.passwords.import_problem(password_hash)
        if problem:
            report.errors.append((number, problem))
            continue
        try:
            await create(NewUser(username, "", email), roles, password_hash)
        except UserInputError as exc:
            report.errors.append((number, str(exc)))
        except Conflict:
            report.conflicts += 1
        else:
            report.imported += 1
    return report
