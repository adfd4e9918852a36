"""Rotating the key-encryption key: prepend a new KEK, run ``issuer keys rewrap``, drop the old one.

Before the rewrap, an issuer given only the new KEK must refuse to start with a clear message;
after it, the new KEK alone decrypts every signing key and server secret, so the service and
the CLI work exactly as before (same keys, same client secrets).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import jwt
import pytest

from keys.envelope import Envelope, new_kek, parse_keks
from keys.keyring import private_key_aad
from keys.secrets import secret_aad
from tests.conftest import run_cli, sqlite_file_url
from tests.servers import IssuerServer, ServerFailed

pytestmark = pytest.mark.slow

API = "https://api.example.com"
ISSUER = "https://issuer.example.com"


def cli(database: str, keks: str, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli({"ISSUER_DATABASE_URL": database, "ISSUER_KEY_ENCRYPTION_KEYS": keks, "ISSUER_URL": ISSUER}, *args)


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)
    return result.stdout


def stored_blobs(database: str) -> tuple[dict[str, bytes], dict[str, bytes]]:
    """(kid → private-key ciphertext, secret name → ciphertext), read straight from the database."""
    if database.startswith("sqlite:"):
        conn = sqlite3.connect(database.removeprefix("sqlite:///"))
        try:
            keys = {r[0]: bytes(r[1]) for r in conn.execute("SELECT kid, private_ciphertext FROM signing_keys")}
            stored = {r[0]: bytes(r[1]) for r in conn.execute("SELECT name, ciphertext FROM server_secrets")}
        finally:
            conn.close()
        return keys, stored

    async def fetch() -> tuple[dict[str, bytes], dict[str, bytes]]:
        conn = await asyncpg.connect(database)
        try:
            rows = await conn.fetch("SELECT kid, private_ciphertext FROM signing_keys")
            keys = {r["kid"]: bytes(r["private_ciphertext"]) for r in rows}
            rows = await conn.fetch("SELECT name, ciphertext FROM server_secrets")
            stored = {r["name"]: bytes(r["ciphertext"]) for r in rows}
        finally:
            await conn.close()
        return keys, stored

    return asyncio.run(fetch())


def server_env(database: str, keks: str) -> dict[str, str]:
    return {
        "ISSUER_DATABASE_URL": database,
        "ISSUER_KEY_ENCRYPTION_KEYS": keks,
        "ISSUER_URL": ISSUER,
        "ISSUER_LOG_LEVEL": "WARNING",
    }


def issue_and_verify(server: IssuerServer, client_id: str, secret: str) -> dict[str, Any]:
    with httpx.Client(timeout=10) as http:
        response = http.post(
            server.url + "/oauth2/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret)
        )
        assert response.status_code == 200, response.text
        token = response.json()["access_token"]
        jwks = http.get(server.url + "/.well-known/jwks.json").json()
    key = jwt.PyJWKSet.from_dict(jwks)[jwt.get_unverified_header(token)["kid"]]
    claims: dict[str, Any] = jwt.decode(token, key.key, algorithms=["RS256"], audience=API, issuer=ISSUER)
    return {"kid": jwt.get_unverified_header(token)["kid"], **claims}


def test_rewrap_moves_everything_to_the_new_kek(own_database: str) -> None:
    old, new = new_kek(), new_kek()
    if own_database.startswith("postgresql"):
        ok(cli(own_database, old, "migrate"))
    created = json.loads(
        ok(cli(own_database, old, "clients", "create", "--name", "svc", "--grant-type", "client_credentials",
               "--scope", "read", "--audience", API, "--json"))
    )
    client_id, secret = created["client_id"], created["client_secret"]
    before = json.loads(ok(cli(own_database, old, "keys", "list", "--json")))
    assert sorted(k["state"] for k in before) == ["active", "pending"]
    keys_before, secrets_before = stored_blobs(own_database)
    assert len(keys_before) == 2 and len(secrets_before) >= 1
    old_envelope = Envelope(parse_keks(old))
    assert all(old_envelope.is_current(b) for b in [*keys_before.values(), *secrets_before.values()])

    # only the new KEK, before the rewrap: a clear refusal from the CLI and the server
    refused = cli(own_database, new, "keys", "list", "--json")
    assert refused.returncode == 2, (refused.stdout, refused.stderr)
    assert "ISSUER_KEY_ENCRYPTION_KEYS" in refused.stderr
    assert "Traceback" not in refused.stderr
    server = IssuerServer(server_env(own_database, new), startup_timeout=20)
    try:
        with pytest.raises(ServerFailed) as info:
            server.start()
        assert "ISSUER_KEY_ENCRYPTION_KEYS" in str(info.value)
    finally:
        server.close()

    # both KEKs, new first: rewrap
    both = f"{new},{old}"
    assert json.loads(ok(cli(own_database, both, "keys", "list", "--json"))) == before
    out = ok(cli(own_database, both, "keys", "rewrap"))
    assert f"re-encrypted 2 signing key(s) and {len(secrets_before)} server secret(s)" in out, out
    again = ok(cli(own_database, both, "keys", "rewrap"))
    assert "re-encrypted 0 signing key(s) and 0 server secret(s)" in again, again

    keys_after, secrets_after = stored_blobs(own_database)
    assert set(keys_after) == set(keys_before) and set(secrets_after) == set(secrets_before)
    new_envelope = Envelope(parse_keks(new))
    for kid, blob in keys_after.items():
        assert new_envelope.is_current(blob) and blob != keys_before[kid]
        assert new_envelope.decrypt(blob, private_key_aad(kid)) == old_envelope.decrypt(
            keys_before[kid], private_key_aad(kid)
        )
    for name, blob in secrets_after.items():
        assert new_envelope.is_current(blob)
        assert new_envelope.decrypt(blob, secret_aad(name)) == old_envelope.decrypt(
            secrets_before[name], secret_aad(name)
        )

    # the new KEK alone now works everywhere, with the same keys and the same client secret
    assert json.loads(ok(cli(own_database, new, "keys", "list", "--json"))) == before
    active = next(k["kid"] for k in before if k["state"] == "active")
    with IssuerServer(server_env(own_database, new)) as server:
        claims = issue_and_verify(server, client_id, secret)
        assert claims["kid"] == active and claims["client_id"] == client_id
    # a rotation under the new KEK alone promotes the (rewrapped) pending key
    rotated = ok(cli(own_database, new, "keys", "rotate", "--force"))
    pending = next(k["kid"] for k in before if k["state"] == "pending")
    assert any(line.split()[:3] == [pending, "RS256", "active"] for line in rotated.splitlines()), rotated

    # and the old KEK alone is no longer enough
    stale = cli(own_database, old, "keys", "list", "--json")
    assert stale.returncode == 2 and "ISSUER_KEY_ENCRYPTION_KEYS" in stale.stderr


def test_malformed_kek_is_a_clear_error(tmp_path: Path) -> None:
    database = sqlite_file_url(tmp_path)
    for value in ("short", "not base64 at all!", new_kek() + ",tooshort"):
        result = cli(database, value, "keys", "list", "--json")
        assert result.returncode == 2, (value, result.stderr)
        assert "ISSUER_KEY_ENCRYPTION_KEYS" in result.stderr
        assert "Traceback" not in result.stderr
