"""Benchmarks of the token issuer, each against an in-run baseline.

    .venv/bin/python -m bench <scenario> [options]     # from the repository root
    .venv/bin/python -m bench --help                  # the scenarios and their options

Layout: ``servers`` starts throw-away issuers (and ``peer`` node-oidc-provider), ``load`` drives them
(wrk when present, else the asyncio generator of ``asyncgen``), ``cpu`` accounts CPU per process,
``baselines`` measures raw signing and hashing rates, ``report`` prints the figures, and
``scenarios/`` holds one module per scenario. Only loopback traffic; every loop is bounded in time
and count; every subprocess is killed in a finally.
"""

from __future__ import annotations

from pathlib import Path

#: The repository root: bench/ lives directly under it.
ROOT = Path(__file__).resolve().parent.parent
