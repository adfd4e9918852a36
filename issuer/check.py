"""``issuer check``: the effective configuration (without secrets), then every dependency the
service needs, checked without changing anything (no migration, no key generated). Exit status
1 with one ``problem:`` line per problem, 0 when the service would start and sign."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

from issuer.errors import ConfigurationError
from issuer.settings import Settings
from issuer.startup import connect_database, describe_redis, load_settings, redact_url, unknown_variables
from issuer.storage import sqlite_path
from keys.envelope import Envelope, EnvelopeError, parse_keks

SECRET_SETTINGS = {"key_encryption_keys"}


def effective_configuration(settings: Settings) -> list[tuple[str, str]]:
    rows = []
    for name in Settings.model_fields:
        value: Any = getattr(settings, name)
        if name in SECRET_SETTINGS:
            count = len([k for k in value.get_secret_value().split(",") if k.strip()])
            shown = f"({count} key(s), hidden)" if count else "(not set)"
        elif name in ("database_url", "redis_url"):
            shown = redact_url(value) or "(empty)"
        elif isinstance(value, list):
            shown = ",".join(value) or "(empty)"
        else:
            shown = "(empty)" if value in ("", None) else str(value)
        rows.append((f"ISSUER_{name.upper()}", shown))
    rows.append(("database in use", redact_url(settings.effective_database_url)))
    rows.append(("redis in use", describe_redis(settings)))
    return rows


async def _checks(settings: Settings, say: list[str], problems: list[str]) -> None:
    from issuer.startup import check_production, key_policy
    from issuer.storage import SqlStorage
    from issuer.storage.migrate import pending_migrations
    from keys.info import describe_keys
    from keys.keyring import private_key_aad
    from keys.lifecycle import KeyState
    from keys.secrets import secret_aad

    try:
        check_production(settings)
    except ConfigurationError as exc:
        problems.append(str(exc))
    envelope: Envelope | None = None
    value = settings.key_encryption_keys.get_secret_value()
    if not value:
        kek = settings.data_dir / "dev-key-encryption-key"
        if not settings.is_sqlite:
            problems.append("ISSUER_KEY_ENCRYPTION_KEYS is required with PostgreSQL (make one: `issuer keys new-kek`)")
        elif kek.exists():
            value = kek.read_text().strip()
            say.append(f"key-encryption key: the generated development key in {kek}")
    if value:
        try:
            envelope = Envelope(parse_keks(value))
        except EnvelopeError as exc:
            problems.append(f"ISSUER_KEY_ENCRYPTION_KEYS: {exc}")
    if settings.redis_url:
        from issuer.cache.redisconn import connect as connect_redis
        from issuer.cache.redisconn import redis_errors

        redis = connect_redis(settings.redis_url)
        try:
            await redis.ping()
            say.append("redis: reachable")
        except redis_errors() as exc:
            problems.append(f"ISSUER_REDIS_URL: cannot reach {redact_url(settings.redis_url)}: {type(exc).__name__}")
        finally:
            await redis.aclose()

    path = sqlite_path(settings.effective_database_url)
    if path and path != ":memory:" and not Path(path).exists():
        # Opening it would create it: check changes nothing.
        problems.append(f"no database at {path} yet: `issuer migrate` or the first `issuer serve` creates it")
        return
    try:
        db = await connect_database(settings)
    except ConfigurationError as exc:
        problems.append(str(exc))
        return
    try:
        missing = await pending_migrations(db)
        if missing:
            problems.append(f"the database needs migrations {missing}: run `issuer migrate`")
            return
        say.append(f"database: reachable, migrated ({db.dialect})")
        store = SqlStorage(db)
        keys = await store.list_keys()
        secrets = await store.list_secrets()
        if envelope is not None:
            undecryptable = []
            for key in keys:
                if key.state in (KeyState.PENDING, KeyState.ACTIVE, KeyState.RETIRED):
                    try:
                        envelope.decrypt(key.private_ciphertext, private_key_aad(key.kid))
                    except EnvelopeError:
                        undecryptable.append(f"signing key {key.kid}")
            for name, blob in secrets.items():
                try:
                    envelope.decrypt(blob, secret_aad(name))
                except EnvelopeError:
                    undecryptable.append(f"server secret {name}")
            if undecryptable:
                problems.append(
                    "ISSUER_KEY_ENCRYPTION_KEYS cannot decrypt " + ", ".join(undecryptable) + ": is the right key set?"
                )
            else:
                stale = sum(not envelope.is_current(k.private_ciphertext) for k in keys) + sum(
                    not envelope.is_current(b) for b in secrets.values()
                )
                note = f"; {stale} under an older key (`issuer keys rewrap`)" if stale else ""
                say.append(f"key-encryption keys: decrypt {len(keys)} signing key(s), {len(secrets)} secret(s){note}")
        rows = describe_keys(keys, key_policy(settings), time.time())
        active = [r for r in rows if r["state"] == "active"]
        pending = [r for r in rows if r["state"] == "pending"]
        if not keys:
            say.append("key schedule: no keys yet (the first start creates them)")
        elif len(active) != 1:
            problems.append(f"key schedule: {len(active)} active signing keys (exactly one must be active)")
        else:
            nxt = active[0]["next_transition"]
            when = nxt["at"] if nxt and nxt["at"] else "at the next `issuer keys rotate` (no schedule)"
            pend = pending[0]["kid"] if pending else "none"
            say.append(f"key schedule: active {active[0]['kid']}, pending {pend}, next rotation {when}")
    finally:
        await db.close()

def run_check() -> int:
    settings = load_settings()
    print("configuration:")
    rows = effective_configuration(settings)
    width = max(len(name) for name, _ in rows)
    for name, shown in rows:
        print(f"  {name.ljust(width)}  {shown}")
    say: list[str] = []
    # A mistyped name leaves the setting it meant at its default: the service would not run as intended.
    problems = [warning.removeprefix("warning: ") for warning in unknown_variables()]
    asyncio.run(_checks(settings, say, problems))
    print("checks:")
    for line in say:
        print(f"  ok: {line}")
    for line in problems:
        print(f"problem: {line}", file=sys.stderr)
    if not problems:
        print("all checks passed")
    return 1 if problems else 0
