#!/usr/bin/env python3
"""Old entry point, kept as a shim: ``python bench/bench.py [--scenario NAME|all] [options]`` runs
``python -m bench NAME [options]`` (default client_credentials)."""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this directory is sys.path[0] and would shadow the bench package with this file.
ROOT = Path(__file__).resolve().parent.parent
sys.path[:1] = [str(ROOT)]

from bench.cli import main  # noqa: E402


def translate(argv: list[str]) -> list[str]:
    scenario, rest, i = "client_credentials", [], 0
    while i < len(argv):
        if argv[i] == "--scenario" and i + 1 < len(argv):
            scenario, i = argv[i + 1], i + 2
        elif argv[i].startswith("--scenario="):
            scenario, i = argv[i].split("=", 1)[1], i + 1
        else:
            rest.append(argv[i])
            i += 1
    return [scenario, *rest]


if __name__ == "__main__":
    sys.exit(main(translate(sys.argv[1:])))
