"""The peer: panva/node-oidc-provider serving client_credentials with RS256 at+jwt tokens.

The recipe is read from the peers directory: --peers-dir, else $BENCH_PEERS_DIR, else
``../shared/peers`` beside the repository root. It is npm-installed in a scratch directory
outside the repository ($TMPDIR/issuer-bench-peer-oidc, reused between runs).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from bench import ROOT
from bench.common import (
    CC_BODY,
    FORM,
    HOST,
    basic_auth,
    http,
    jwt_segment,
    log,
    port_in_use,
    stop_process,
    taskset,
    wait_http_ok,
)
from bench.cpu import wait_for_quiet
from bench.load import run_load

PEER_PORT = 3000
PEER_CLIENT = ("s6BhdRkqt3", "gX1fBat3bV")


def peers_dir(args: argparse.Namespace) -> Path:
    given = getattr(args, "peers_dir", None) or os.environ.get("BENCH_PEERS_DIR")
    return Path(given) if given else ROOT.parent / "shared" / "peers"


def _pkg_version(path: Path) -> str | None:
    with contextlib.suppress(OSError, ValueError, KeyError):
        return str(json.loads(path.read_text())["version"])
    return None


def setup_peer(source: Path) -> tuple[Path | None, str]:
    """npm-install oidc-provider@9 and jose@6 into a scratch dir; (dir, versions) or (None, why not)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        return None, "node/npm not found on PATH"
    if not source.exists():
        return None, f"{source} missing (set --peers-dir or BENCH_PEERS_DIR)"
    peer_dir = Path(tempfile.gettempdir()) / "issuer-bench-peer-oidc"
    peer_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, peer_dir / "server.mjs")
    op = _pkg_version(peer_dir / "node_modules/oidc-provider/package.json")
    jose = _pkg_version(peer_dir / "node_modules/jose/package.json")
    if not (op and op.startswith("9.") and jose and jose.startswith("6.")):
        log(f"npm install oidc-provider@9 jose@6 in {peer_dir}")
        try:
            proc = subprocess.run([npm, "install", "--no-audit", "--no-fund", "oidc-provider@9", "jose@6"],
                                  cwd=peer_dir, capture_output=True, text=True, timeout=300)
        except subprocess.TimeoutExpired:
            return None, "npm install timed out after 300 s"
        if proc.returncode != 0:
            return None, f"npm install failed ({proc.returncode}): {(proc.stderr or proc.stdout).strip()[-600:]}"
        op = _pkg_version(peer_dir / "node_modules/oidc-provider/package.json")
        jose = _pkg_version(peer_dir / "node_modules/jose/package.json")
        if not op:
            return None, "npm install did not produce node_modules/oidc-provider"
    node_v = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=10).stdout.strip()
    return peer_dir, f"oidc-provider {op}, jose {jose}, node {node_v}"


def run_peer(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """The same client_credentials load against node-oidc-provider (RS256 at+jwt, in-memory), pinned
    like our server; {"skipped": why} when it cannot run."""
    peer_dir, note = setup_peer(peers_dir(args) / "oidc-provider" / "server.mjs")
    if peer_dir is None:
        return {"skipped": note}
    if port_in_use(PEER_PORT):
        return {"skipped": f"port {PEER_PORT} is already in use on {HOST}"}
    url = f"http://{HOST}:{PEER_PORT}"
    logfile = workdir / "peer.log"
    proc = None
    with open(logfile, "wb") as out:
        try:
            proc = subprocess.Popen([*taskset(0 if args.pin else None), "node", "server.mjs"], cwd=peer_dir,
                                    env={**os.environ, "NODE_ENV": "production"}, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)
            try:
                wait_http_ok(url + "/.well-known/openid-configuration", proc, 30, "oidc-provider", logfile)
            except RuntimeError as exc:
                return {"skipped": str(exc)}
            headers = {"Authorization": basic_auth(*PEER_CLIENT)}
            if args.wait_idle:
                wait_for_quiet(args.wait_idle)
            status, body = http("POST", url + "/token", CC_BODY, {**FORM, **headers})
            if status != 200:
                return {"skipped": f"peer token request answered {status}: {body[:300]!r}"}
            token = json.loads(body)["access_token"]
            res = run_load(args, url + "/token", CC_BODY, headers, workdir, cpu=1 if args.pin else None,
                           watch_pid=proc.pid)
            res.update(version=note, token_header=jwt_segment(token, 0), token_bytes=len(token))
            return res
        finally:
            stop_process(proc, "oidc-provider", grace=5.0)
