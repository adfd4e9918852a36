"""The README is the front door: its commands and its configuration table must stay true."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

from issuer.cli import main

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def _shell_blocks(text: str) -> list[str]:
    return [b.strip() for b in re.findall(r"```sh\n(.*?)```", text, re.S)]


def test_ci_runs_the_readme_test_command() -> None:
    test_command = _shell_blocks(README)[1]
    assert "pytest" in test_command
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test_command in ci


def test_quickstart_runs_the_service_on_the_embedded_default() -> None:
    run_command = _shell_blocks(README)[0]
    assert run_command.endswith("issuer serve")
    assert "DATABASE_URL" not in run_command


def test_configuration_table_matches_the_settings() -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["config-table"]) == 0
    documented = README.split("<!-- config-table:start -->\n", 1)[1].split("<!-- config-table:end -->", 1)[0]
    assert documented.strip() == out.getvalue().strip()
