"""Reading the configuration, checking it (production refusals, key-encryption keys) and
reaching the database, with one-line errors that name the setting to fix: shared by every CLI
command, `issuer serve` and `issuer check`."""

from __future__ import annotations

import contextlib
import difflib
import logging
import os
import sqlite3
import tempfile
from collections.abc import Mapping
from ipaddress import ip_address
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import ValidationError

from issuer.errors import ConfigurationError
from issuer.settings import Settings
from issuer.storage import Database, open_database
from issuer.storage.database import DatabaseUnavailable, asyncpg_errors
from keys.envelope import Envelope, EnvelopeError, new_kek, parse_keks
from keys.lifecycle import Policy

if TYPE_CHECKING:
    from issuer.services import Services

log = logging.getLogger("issuer")

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


def key_policy(settings: Settings) -> Policy:
    return Policy(
        jwks_max_age=settings.jwks_max_age,
        clock_skew=settings.clock_skew,
        refresh_interval=settings.keyring_refresh_interval,
        token_ttl=settings.access_token_ttl,
        rotation_interval=settings.key_rotation_interval,
    )


_warned_dev_keks: set[Path] = set()


def _dev_kek(settings: Settings) -> str:
    path = Path(settings.data_dir) / "dev-key-encryption-key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        # Written whole under a private name, then linked into place: a concurrent starter
        # (`serve --workers N` on a new data directory) either wins the link or reads the
        # winner's complete key, never an empty or half-written file.
        fd, temp = tempfile.mkstemp(prefix=".dev-kek-", dir=path.parent)
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(new_kek())
                handle.flush()
                os.fsync(handle.fileno())
            with contextlib.suppress(FileExistsError):
                os.link(temp, path)
        finally:
            os.unlink(temp)
    if path not in _warned_dev_keks:  # `serve` opens services twice (preflight, then the app): warn once
        _warned_dev_keks.add(path)
        log.warning(
            "using a generated development key-encryption key at %s; set ISSUER_KEY_ENCRYPTION_KEYS "
            "for anything but local development",
            path,
        )
    return path.read_text().strip()


def resolve_keks(settings: Settings) -> Envelope:
    value = settings.key_encryption_keys.get_secret_value()
    if not value:
        if not settings.is_sqlite:
            raise ConfigurationError(
                "ISSUER_KEY_ENCRYPTION_KEYS is required with PostgreSQL. Make one with `issuer keys new-kek` "
                "and set ISSUER_KEY_ENCRYPTION_KEYS=<that value>."
            )
        if settings.env == "production":
            raise ConfigurationError(
                "production refuses a generated key-encryption key: set ISSUER_KEY_ENCRYPTION_KEYS"
            )
        value = _dev_kek(settings)
    try:
        return Envelope(parse_keks(value))
    except EnvelopeError as exc:
        raise ConfigurationError(f"ISSUER_KEY_ENCRYPTION_KEYS: {exc}") from None


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_production(settings: Settings) -> None:
    if settings.env != "production":
        return
    problems = []
    if settings.is_sqlite:
        problems.append("ISSUER_DATABASE_URL must be PostgreSQL (SQLite is the development default)")
    if not settings.key_encryption_keys.get_secret_value():
        problems.append("ISSUER_KEY_ENCRYPTION_KEYS must be set")
    parts = urlsplit(settings.url)
    if parts.scheme != "https" and not _is_loopback(parts.hostname or ""):
        problems.append("ISSUER_URL must be https:// (plain http is allowed only on loopback)")
    if problems:
        raise ConfigurationError("production mode refuses development defaults: " + "; ".join(problems))


def redact_url(url: str) -> str:
    """The URL without its password (``postgresql://app:***@db/issuer``)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    return urlunsplit(parts._replace(netloc=netloc[0].split(":", 1)[0] + ":***@" + netloc[1]))


def _reason(exc: BaseException) -> str:
    cause = exc.__cause__ if isinstance(exc, DatabaseUnavailable) and exc.__cause__ else exc
    if isinstance(cause, ConnectionRefusedError):
        return "connection refused (is PostgreSQL running, on that host and port?)"
    if isinstance(cause, TimeoutError):
        return "no answer (timed out)"
    if isinstance(cause, (*asyncpg_errors("PostgresError"), OSError, sqlite3.Error)):
        detail = str(cause).splitlines()[0] if str(cause) else type(cause).__name__
        return detail
    return type(cause).__name__


def _cannot_open() -> tuple[type[Exception], ...]:
    """What opening a database raises when it cannot: asyncpg's errors are among them once
    open_database has loaded asyncpg for a PostgreSQL URL (a SQLite process never loads it)."""
    return (OSError, sqlite3.Error, DatabaseUnavailable, *asyncpg_errors("PostgresError", "InterfaceError"))


async def connect_database(settings: Settings) -> Database:
    """Open the configured database or raise one ConfigurationError line naming the setting."""
    url = settings.effective_database_url
    try:
        return await open_database(url, pool_size=settings.pool_size)
    except _cannot_open() as exc:
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
