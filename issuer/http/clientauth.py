"""Client credentials from a request (RFC 6749 §2.3.1): ``client_secret_basic``,
``client_secret_post``, or ``none`` (public clients send only ``client_id``). HTTP Basic with an
empty password counts as ``none``: Swagger UI and other generic OAuth clients send a public
client's id that way (``client_id:``); a confidential client authenticating so simply fails."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from starlette.requests import Request

from issuer.errors import InvalidClient, InvalidRequest
from issuer.http.forms import form_decode
from issuer.http.responses import note
from issuer.http.scope import header
from issuer.models import Client
from issuer.oauth.clients import ClientRegistry
from issuer.oauth.params import Params

AUTH_METHODS = ("client_secret_basic", "client_secret_post", "none")


@dataclass(frozen=True)
class Credentials:
    client_id: str
    secret: str | None
    method: str
    basic: bool = False  # came in an Authorization header: a failure answers with a Basic challenge


def _challenge(realm: str) -> dict[str, str]:
    return {"WWW-Authenticate": f'Basic realm="{realm}", charset="UTF-8"'}


def read_credentials(request: Request, params: Params, realm: str) -> Credentials:
    authorization = header(request.scope, b"authorization")
    body_id, body_secret = params.get("client_id"), params.get("client_secret")
    if authorization is not None:
        scheme, _, encoded = authorization.partition(" ")
        if scheme.lower() != "basic":
            raise InvalidClient("only HTTP Basic client authentication is accepted here", headers=_challenge(realm))
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
            raw_id, sep, raw_secret = decoded.partition(":")
            if not sep:
                raise ValueError
            client_id, secret = form_decode(raw_id), form_decode(raw_secret)
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise InvalidClient("malformed HTTP Basic credentials", headers=_challenge(realm)) from None
        if body_secret is not None:
            raise InvalidRequest("use only one client authentication method")
        if body_id is not None and body_id != client_id:
            raise InvalidRequest("client_id in the body differs from the authenticated client")
        if not secret:
            return Credentials(client_id, None, "none", basic=True)
        return Credentials(client_id, secret, "client_secret_basic", basic=True)
    if body_id is None:
        raise InvalidClient("client authentication required", headers=_challenge(realm))
    if body_secret is not None:
        return Credentials(body_id, body_secret, "client_secret_post")
    return Credentials(body_id, None, "none")


async def authenticate_client(request: Request, params: Params, clients: ClientRegistry, realm: str) -> Client:
    credentials = read_credentials(request, params, realm)
    # The id the client claims, even if it fails to authenticate (truncated: it is request input).
    note(request, client_id=credentials.client_id[:64])
    try:
        return await clients.authenticate(credentials.client_id, credentials.secret)
    except InvalidClient as exc:
        if credentials.basic:
            exc.headers.update(_challenge(realm))
        raise
