"""The ``issuer`` command (``issuer = "issuer.cli:main"``; ``python -m issuer.cli``)."""

from __future__ import annotations

from issuer.cli.app import main, parser

__all__ = ["main", "parser"]
