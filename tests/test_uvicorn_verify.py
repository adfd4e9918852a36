"""End to end over a real socket: a uvicorn process issues a token, and a verifier that knows
only the JWKS URL (PyJWT's PyJWKClient) accepts it, and rejects a tampered or expired one."""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import jwt
import pytest

from keys.envelope import new_kek

pytestmark = pytest.mark.slow

API = "https://api.example.com"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Server:
    url: str
    client_id: str
    client_secret: str


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for this module's tests: it only issues tokens, which changes nothing they check."""
    tmp_path = tmp_path_factory.mktemp("uvicorn")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ISSUER_")}
    env.update(
        ISSUER_DATABASE_URL=f"sqlite:///{tmp_path / 'issuer.sqlite3'}",
        ISSUER_DATA_DIR=str(tmp_path / "data"),
        ISSUER_KEY_ENCRYPTION_KEYS=new_kek(),
        ISSUER_URL=url,
        PYTHONUNBUFFERED="1",
    )
    created = subprocess.run(
        [
            sys.executable, "-m", "issuer.cli", "clients", "create", "--name", "e2e",
            "--grant-type", "client_credentials", "--scope", "read", "write", "--audience", API, "--json",
        ],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert created.returncode == 0, created.stderr
    client = json.loads(created.stdout)

    log = (tmp_path / "uvicorn.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "issuer.asgi:build", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise AssertionError(
                    f"uvicorn exited with {process.returncode}:\n{(tmp_path / 'uvicorn.log').read_text()}"
                )
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"uvicorn did not answer /healthz:\n{(tmp_path / 'uvicorn.log').read_text()}")
            time.sleep(0.1)
        yield Server(url, client["client_id"], client["client_secret"])
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()


def get_token(server: Server) -> tuple[str, int]:
    response = httpx.post(
        f"{server.url}/oauth2/token",
        data={"grant_type": "client_credentials", "scope": "read"},
        auth=(server.client_id, server.client_secret),
        timeout=10,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    return body["access_token"], body["expires_in"]


def discover_jwks_uri(server: Server) -> str:
    meta = httpx.get(f"{server.url}/.well-known/oauth-authorization-server", timeout=10).json()
    assert meta["issuer"] == server.url
    jwks_uri: str = meta["jwks_uri"]
    return jwks_uri


def test_a_verifier_with_only_the_jwks_url_accepts_issued_tokens(server: Server) -> None:
    token, ttl = get_token(server)
    jwks = jwt.PyJWKClient(discover_jwks_uri(server))
    signing_key = jwks.get_signing_key_from_jwt(token)
    claims = jwt.decode(token, signing_key.key, algorithms=["RS256"], audience=API, issuer=server.url)
    assert claims["sub"] == claims["client_id"] == server.client_id
    assert claims["scope"] == "read"
    assert claims["exp"] - claims["iat"] == ttl == 900
    assert jwt.get_unverified_header(token)["typ"] == "at+jwt"
    # the wrong audience or issuer is refused by the same verifier
    with pytest.raises(jwt.InvalidAudienceError):
        jwt.decode(
            token, signing_key.key, algorithms=["RS256"], audience="https://elsewhere.example.com", issuer=server.url
        )
    with pytest.raises(jwt.InvalidIssuerError):
        jwt.decode(token, signing_key.key, algorithms=["RS256"], audience=API, issuer="https://evil.example.com")


def test_a_tampered_token_is_rejected(server: Server) -> None:
    token, _ = get_token(server)
    jwks = jwt.PyJWKClient(discover_jwks_uri(server))
    key = jwks.get_signing_key_from_jwt(token).key
    head, payload, signature = token.split(".")

    # flip one character of the payload
    index = len(payload) // 2
    flipped = payload[:index] + ("A" if payload[index] != "A" else "B") + payload[index + 1 :]
    with pytest.raises(jwt.InvalidTokenError):
        jwt.decode(f"{head}.{flipped}.{signature}", key, algorithms=["RS256"], audience=API, issuer=server.url)

    # a well-formed payload with one claim changed fails the signature check specifically
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["scope"] = "read write"
    forged = base64.urlsafe_b64encode(json.dumps(claims, separators=(",", ":")).encode()).rstrip(b"=").decode()
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(f"{head}.{forged}.{signature}", key, algorithms=["RS256"], audience=API, issuer=server.url)

    # and "alg: none" is never accepted
    none_head = base64.urlsafe_b64encode(b'{"alg":"none","typ":"at+jwt"}').rstrip(b"=").decode()
    with pytest.raises(jwt.InvalidTokenError):
        jwt.decode(f"{none_head}.{payload}.", key, algorithms=["RS256"], audience=API, issuer=server.url)


def test_an_expired_token_is_rejected(server: Server) -> None:
    token, ttl = get_token(server)
    jwks = jwt.PyJWKClient(discover_jwks_uri(server))
    key = jwks.get_signing_key_from_jwt(token).key
    # Rather than wait out the lifetime, the verifier's clock is moved forward: a negative
    # leeway of L checks ``exp`` as if L seconds had passed. PyJWT applies the same leeway to
    # ``iat`` in the other direction (it would call the token "not yet valid"), so that one
    # check is switched off here; ``exp`` is the one under test.
    shifted: jwt.types.Options = {"verify_iat": False}
    # 60 seconds before expiry the token is still good ...
    jwt.decode(token, key, algorithms=["RS256"], audience=API, issuer=server.url, leeway=-(ttl - 60), options=shifted)
    # ... one second after it, it is expired
    with pytest.raises(jwt.ExpiredSignatureError):
        jwt.decode(
            token, key, algorithms=["RS256"], audience=API, issuer=server.url, leeway=-(ttl + 1), options=shifted
        )
