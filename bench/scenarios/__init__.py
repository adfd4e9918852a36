"""One module per scenario. Each has NAME, a docstring (its --help), ``add_arguments(parser)`` for
its own options and ``run(args) -> dict`` that prints its block and returns its figures (with
"passed"). Scenarios with LOAD_OPTIONS (the default) also get the shared load options of bench.cli
and are the ones ``all`` runs.

Adding one: write bench/scenarios/<name>.py from the helpers in bench.servers, bench.load,
bench.baselines and bench.report, and list it in SCENARIOS below.
"""

from __future__ import annotations

from types import ModuleType

from bench.scenarios import (
    client_credentials,
    flood,
    goals,
    http_attacks,
    instructions,
    logins,
    memory,
    reads,
    refresh,
    register_flood,
    scaling,
    signin,
    verifier,
)

SCENARIOS: dict[str, ModuleType] = {
    m.NAME: m
    for m in (
        client_credentials, reads, scaling, memory, refresh, logins, flood, register_flood, http_attacks, verifier,
        signin, goals, instructions,
    )
}


def load_scenarios() -> list[str]:
    """The scenarios ``all`` runs: the ones driven by the shared load options (but ``goals``,
    which runs several of them itself)."""
    return [name for name, m in SCENARIOS.items() if getattr(m, "LOAD_OPTIONS", True) and getattr(m, "IN_ALL", True)]
