"""The README's walkthrough commands, run as pasted (one bash session, so each command's variables
reach the next) against a real `issuer serve` in a scratch directory. Only the port differs."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.servers import REPO_ROOT, child_env, free_port

pytestmark = pytest.mark.timeout(180)


def walkthrough_script(port: int) -> str:
    text = (REPO_ROOT / "README.md").read_text()
    # The browser sign-in walkthrough that follows needs a person at a browser: not run here.
    start, end = text.index("## Walkthrough: service-to-service tokens"), text.index("## Walkthrough: browser sign-in")
    section = text[start:end]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.S)
    assert len(blocks) >= 6
    # pyjwt is a test dependency already; installing it would need the network
    lines = [line for block in blocks for line in block.splitlines() if not line.startswith(".venv/bin/pip ")]
    return "set -e -o pipefail\n" + "\n".join(lines).replace("127.0.0.1:8000", f"127.0.0.1:{port}") + "\n"


def test_every_walkthrough_command_runs_as_pasted(tmp_path: Path) -> None:
    for tool in ("bash", "curl", "jq"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    (tmp_path / ".venv").symlink_to(Path(sys.executable).parent.parent)
    port = free_port()
    env = child_env({"ISSUER_URL": f"http://127.0.0.1:{port}", "ISSUER_LOG_LEVEL": "WARNING"})
    server = subprocess.Popen(
        [str(tmp_path / ".venv/bin/issuer"), "serve", "--port", str(port)],
        env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None and time.monotonic() < deadline, "issuer serve did not start"
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        result = subprocess.run(
            ["bash", "-c", walkthrough_script(port)], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120
        )
    finally:
        server.terminate()
        server.wait(30)
    assert result.returncode == 0, (result.stdout, result.stderr)
    out = result.stdout
    assert "'aud': 'https://api.example.com'" in out  # the verifier accepted the service token
    assert '"preferred_username":"alice"' in out  # /userinfo with the user's token
    assert "['user'] ['orders', 'profile']" in out  # the verifier accepted the user's token too
    assert out.rstrip().endswith("200")  # logout
