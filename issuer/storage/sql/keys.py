"""Signing keys: every lifecycle transition is one transaction of compare-and-swap updates."""

from __future__ import annotations

import json

from issuer.storage.database import unique_violations
from issuer.storage.sql._rows import SqlStore, _key, _Lost
from keys.lifecycle import KeyState, SigningKey, Transition

_STATE_TIME = {
    KeyState.ACTIVE: "activated_at",
    KeyState.RETIRED: "retired_at",
    KeyState.REVOKED: "revoked_at",
}


class KeySql(SqlStore):
    """keys.store.KeyStore."""

    async def list_keys(self) -> list[SigningKey]:
        rows = await self.db.fetch("SELECT * FROM signing_keys ORDER BY created_at, kid")
        return [_key(r) for r in rows]

    async def apply_transition(self, transition: Transition) -> bool:
        try:
            async with self.db.transaction() as tx:
                for change in transition.changes:
                    column = _STATE_TIME.get(change.to_state)
                    assert column is not None
                    changed = await tx.execute(
                        f"UPDATE signing_keys SET state = $3, {column} = $4, remove_after = $5"
                        " WHERE kid = $1 AND state = $2",
                        change.kid,
                        change.from_state.value,
                        change.to_state.value,
                        change.at,
                        change.remove_after,
                    )
                    if changed != 1:
                        raise _Lost
                for key in transition.inserts:
                    await tx.execute(
                        "INSERT INTO signing_keys (kid, alg, state, public_jwk, private_ciphertext, created_at,"
                        " activated_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                        key.kid,
                        key.alg,
                        key.state.value,
                        json.dumps(key.public_jwk),
                        key.private_ciphertext,
                        key.created_at,
                        key.activated_at,
                    )
                for kid in transition.deletes:
                    if await tx.execute("DELETE FROM signing_keys WHERE kid = $1 AND state = 'retired'", kid) != 1:
                        raise _Lost
        except unique_violations(_Lost):
            return False
        return True

    async def replace_ciphertext(self, kid: str, old: bytes, new: bytes) -> bool:
        return (
            await self.db.execute(
                "UPDATE signing_keys SET private_ciphertext = $3 WHERE kid = $1 AND private_ciphertext = $2",
                kid,
                old,
                new,
            )
            == 1
        )
