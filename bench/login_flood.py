#!/usr/bin/env python3
"""Old entry point, kept as a shim: ``python bench/login_flood.py [options]`` runs
``python -m bench register_flood [options]``."""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this directory is sys.path[0] and would shadow the bench package.
sys.path[:1] = [str(Path(__file__).resolve().parent.parent)]

from bench.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["register_flood", *sys.argv[1:]]))
