"""Reading the configuration and reaching the database, with one-line errors that name the
setting to fix: shared by every CLI command, `issuer serve` and `issuer check`."""

from __future__ import annotations

import difflib
import os
import sqlite3
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import ValidationError

from issuer.errors import ConfigurationError
from issuer.settings import Settings
from issuer.storage import Database, open_database
from issuer.storage.database import DatabaseUnavailable

if TYPE_CHECKING:
    from issuer.services import Services

PREFIX = "ISSUER_"


def env_name(field: str) -> str:
    return PREFIX + field.upper()


def known_variables() -> list[str]:
    return [env_name(name) for name in Settings.model_fields]


def unknown_variables(environ: Mapping[str, str] | None = None) -> list[str]:
    """One warning per ``ISSUER_*`` variable no setting reads (a typo is otherwise silently ignored)."""
    environ = os.environ if environ is None else environ
    known = known_variables()
    warnings = []
    for name in sorted(environ):
        if not name.startswith(PREFIX) or name in known or name.startswith("ISSUER_TEST_"):
            continue
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]}?" if close else ""
        warnings.append(f"warning: {name} is not a setting of this issuer and is ignored{hint}")
    return warnings


def validation_problems(exc: ValidationError) -> list[str]:
    """Pydantic's errors as ``ISSUER_ACCESS_TOKEN_TTL: Input should be …``, one per line."""
    lines = []
    for error in exc.errors():
        message = str(error["msg"]).removeprefix("Value error, ")
        field = str(error["loc"][0]) if error["loc"] else ""
        name = env_name(field) if field in Settings.model_fields else ""
        if name and not message.startswith(name):
            message = f"{name}: {message}"
        lines.append(message)
    return lines


def load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        raise ConfigurationError("\n".join(validation_problems(exc))) from None


def redact_url(url: str) -> str:
    """The URL without its password (``postgresql://app:***@db/issuer``)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    return urlunsplit(parts._replace(netloc=netloc[0].split(":", 1)[0] + ":***@" + netloc[1]))


def _reason(exc: BaseException) -> str:
    import asyncpg

    cause = exc.__cause__ if isinstance(exc, DatabaseUnavailable) and exc.__cause__ else exc
    if isinstance(cause, ConnectionRefusedError):
        return "connection refused (is PostgreSQL running, on that host and port?)"
    if isinstance(cause, TimeoutError):
        return "no answer (timed out)"
    if isinstance(cause, (asyncpg.PostgresError, OSError, sqlite3.Error)):
        detail = str(cause).splitlines()[0] if str(cause) else type(cause).__name__
        return detail
    return type(cause).__name__


async def connect_database(settings: Settings) -> Database:
    """Open the configured database or raise one ConfigurationError line naming the setting."""
    import asyncpg

    url = settings.effective_database_url
    try:
        return await open_database(url, pool_size=settings.pool_size)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, sqlite3.Error, DatabaseUnavailable) as exc:
        setting = "ISSUER_DATABASE_URL" if settings.database_url else "ISSUER_DATA_DIR"
        raise ConfigurationError(f"{setting}: cannot open {redact_url(url)}: {_reason(exc)}") from None


def describe_redis(settings: Settings) -> str:
    return redact_url(settings.redis_url) if settings.redis_url else "none (rate limits and caches per process)"


def started_fields(services: Services) -> dict[str, Any]:
    """What an operator checks first in a new process's log: where it stores, whom it serves,
    and which key signs. No password (URLs are redacted) and no key material."""
    from keys.lifecycle import KeyState

    settings = services.settings
    by_state = {key.state: key.kid for key in services.keyring.keys}
    return {
        "mode": settings.env,
        "database": redact_url(settings.effective_database_url),
        "redis": describe_redis(settings),
        "issuer": settings.url,
        "active_kid": by_state.get(KeyState.ACTIVE),
        "pending_kid": by_state.get(KeyState.PENDING),
    }
