"""Request parameters with RFC 6749 §3.1/§3.2 rules: empty values count as omitted, and no
parameter may repeat (except those a spec lets repeat, such as RFC 8707 ``resource``)."""

from __future__ import annotations

from collections.abc import Iterable

from issuer.errors import InvalidRequest

_REPEATABLE = frozenset({"resource"})


class Params:
    def __init__(self, pairs: Iterable[tuple[str, str]]) -> None:
        values: dict[str, list[str]] = {}
        for name, value in pairs:
            if value != "":
                values.setdefault(name, []).append(value)
        repeated = sorted(n for n, v in values.items() if len(v) > 1 and n not in _REPEATABLE)
        if repeated:
            raise InvalidRequest(f"parameter repeated: {', '.join(repeated)}")
        self._values = values

    def get(self, name: str) -> str | None:
        found = self._values.get(name)
        return found[0] if found else None

    def require(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise InvalidRequest(f"missing parameter: {name}")
        return value

    def all(self, name: str) -> list[str]:
        return list(self._values.get(name, ()))

    def __contains__(self, name: str) -> bool:
        return name in self._values

    def pairs(self) -> list[tuple[str, str]]:
        return [(name, value) for name, values in self._values.items() for value in values]
