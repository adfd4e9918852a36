"""Versioned plain-SQL migrations per dialect (``migrations/<dialect>/NNNN_name.sql``)."""

from __future__ import annotations

from importlib import resources

from issuer.storage.database import Database

_TABLE = "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL)"


def _migrations(dialect: str) -> list[tuple[int, str, str]]:
    folder = resources.files("issuer.storage") / "migrations" / dialect
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            version = int(entry.name.split("_", 1)[0])
            found.append((version, entry.name, entry.read_text()))
    return sorted(found)


async def migrate(db: Database) -> list[str]:
    """Apply every migration not yet applied; return the names applied.

    Concurrent runs (two `issuer migrate`, or every worker of `serve --workers N` on a new data
    directory) wait for each other's whole run, so the later one finds everything applied
    instead of failing on a table the other just created."""
    async with db.migration_lock():
        return await _migrate(db)


async def _migrate(db: Database) -> list[str]:
    await db.execute(_TABLE)
    applied: list[str] = []
    for version, name, sql in _migrations(db.dialect):
        done = await db.fetchrow("SELECT 1 FROM schema_migrations WHERE version = $1", version)
        if done:
            continue
        guard = ""
        if db.dialect == "postgres":
            # Concurrent `migrate` runs serialise here; the loser's insert fails and rolls back.
            guard = "SELECT pg_advisory_xact_lock(7210388);\n"
        record = f"INSERT INTO schema_migrations (version, name) VALUES ({version}, '{name}');"
        await db.run_script(guard + sql + "\n" + record)
        applied.append(name)
    return applied


async def pending_migrations(db: Database) -> list[str]:
    await db.execute(_TABLE)
    rows = await db.fetch("SELECT version FROM schema_migrations")
    done = {r["version"] for r in rows}
    return [name for version, name, _ in _migrations(db.dialect) if version not in done]
