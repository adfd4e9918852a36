"""Server secrets, stored only encrypted (keys.secrets)."""

from __future__ import annotations

from issuer.storage.sql._rows import SqlStore


class SecretSql(SqlStore):
    """keys.store.SecretStore."""

    async def get_secret(self, name: str) -> bytes | None:
        row = await self.db.fetchrow("SELECT ciphertext FROM server_secrets WHERE name = $1", name)
        return bytes(row["ciphertext"]) if row else None

    async def put_secret_if_absent(self, name: str, ciphertext: bytes, now: float) -> bytes:
        await self.db.execute(
            "INSERT INTO server_secrets (name, ciphertext, created_at) VALUES ($1, $2, $3)"
            " ON CONFLICT (name) DO NOTHING",
            name,
            ciphertext,
            now,
        )
        stored = await self.get_secret(name)
        assert stored is not None
        return stored

    async def list_secrets(self) -> dict[str, bytes]:
        rows = await self.db.fetch("SELECT name, ciphertext FROM server_secrets")
        return {r["name"]: bytes(r["ciphertext"]) for r in rows}

    async def replace_secret(self, name: str, old: bytes, new: bytes) -> bool:
        return (
            await self.db.execute(
                "UPDATE server_secrets SET ciphertext = $3 WHERE name = $1 AND ciphertext = $2", name, old, new
            )
            == 1
        )
