"""A readable view of the key schedule, shared by `issuer keys list` and GET /admin/keys."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from keys.lifecycle import KeyState, Policy, SigningKey, next_scheduled_rotation, safe_activation_at


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def describe_keys(keys: list[SigningKey], policy: Policy, now: float) -> list[dict[str, Any]]:
    rotation = next_scheduled_rotation(keys, policy)
    rows = []
    for key in keys:
        nxt: tuple[str, float | None] | None = None
        if key.state is KeyState.PENDING:
            # Without a schedule it waits for a manual rotation (earliest_activation says from when).
            nxt = ("active", rotation)
        elif key.state is KeyState.ACTIVE:
            nxt = ("retired", rotation)
        elif key.state is KeyState.RETIRED:
            nxt = ("removed", key.remove_after)
        rows.append(
            {
                "kid": key.kid,
                "alg": key.alg,
                "state": key.state.value,
                "created_at": _iso(key.created_at),
                "published_at": None if key.state is KeyState.REVOKED else _iso(key.created_at),
                "activated_at": _iso(key.activated_at),
                "retired_at": _iso(key.retired_at),
                "revoked_at": _iso(key.revoked_at),
                "next_transition": None if nxt is None else {"to": nxt[0], "at": _iso(nxt[1])},
                "earliest_activation": _iso(safe_activation_at(key, policy)) if key.state is KeyState.PENDING else None,
            }
        )
    return rows
