"""The product code, its tests and the benchmark stay lint-clean (ruff) and type-checked (mypy --strict with the
pydantic plugin)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_ruff_finds_nothing() -> None:
    result = _run("ruff", "check", "issuer", "keys", "tests", "bench", "verifier", "deploy/examples")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_mypy_strict_finds_nothing() -> None:
    result = _run("mypy", "-p", "issuer", "-p", "keys", "-p", "tests", "-p", "bench", "-p", "issuer_verifier")
    assert result.returncode == 0, result.stdout + result.stderr
    examples = _run("mypy", *(str(p.relative_to(ROOT)) for p in sorted(ROOT.glob("deploy/examples/*/*.py"))))
    assert examples.returncode == 0, examples.stdout + examples.stderr
