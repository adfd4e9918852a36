"""The OAuth side of the OpenAPI document: the form bodies of /oauth2/* (parsed by issuer.http.forms
and the grants, described here), token and introspection answers, RFC 6749 §5.2 errors, discovery
metadata, the JWKS and the health probes."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from issuer.errors import OAuthError
from issuer.http.schemas import ABSENT, GrantType, no_null_defaults


def _oauth_error_codes() -> list[JsonValue]:
    codes, todo = set(), [OAuthError]
    while todo:
        cls = todo.pop()
        codes.add(cls.error)
        todo.extend(cls.__subclasses__())
    return [code for code in sorted(codes)]


class OAuthErrorBody(BaseModel):
    """RFC 6749 §5.2 / RFC 6750 §3.1 error."""

    model_config = ConfigDict(title="OAuthError")

    error: str = Field(json_schema_extra={"enum": _oauth_error_codes()})
    error_description: str | None = None


_SCOPE = "Space-separated scope tokens"


class _ClientParams(BaseModel):
    model_config = ConfigDict(json_schema_extra=no_null_defaults)

    client_id: str = Field(
        ABSENT, description="client_secret_post, or a public client (auth method none); must match HTTP Basic"
    )
    client_secret: str = Field(ABSENT, description="client_secret_post; not together with HTTP Basic")


class _TokenRequest(_ClientParams):
    scope: str = Field(
        ABSENT, description="Requested scope; defaults to the client's (refresh_token: the original grant's)"
    )
    resource: list[str] = Field(
        ABSENT,
        description="RFC 8707 resource indicators; repeat the parameter for several",
        json_schema_extra={"items": {"type": "string", "format": "uri"}},
    )


class ClientCredentialsRequest(_TokenRequest):
    """RFC 6749 §4.4; confidential clients only."""

    grant_type: Literal["client_credentials"]


class PasswordRequest(_TokenRequest):
    """RFC 6749 §4.3; first-party clients allowed it."""

    grant_type: Literal["password"]
    username: str
    password: str


class RefreshTokenRequest(_TokenRequest):
    """RFC 6749 §6; scope and resource may narrow, never widen."""

    grant_type: Literal["refresh_token"]
    refresh_token: str


class AuthorizationCodeRequest(_ClientParams):
    """RFC 6749 §4.1.3 with PKCE (RFC 7636 §4.5); public clients authenticate as none."""

    grant_type: Literal["authorization_code"]
    code: str
    redirect_uri: str = Field(description="The redirect_uri of the authorization request, exactly")
    code_verifier: str = Field(description="RFC 7636: 43 to 128 characters of [A-Za-z0-9-._~]")
    resource: list[str] = Field(
        ABSENT,
        description="RFC 8707: narrows the audience to resources of the authorization request",
        json_schema_extra={"items": {"type": "string", "format": "uri"}},
    )


TokenRequest = Annotated[
    AuthorizationCodeRequest | ClientCredentialsRequest | PasswordRequest | RefreshTokenRequest,
    Field(discriminator="grant_type"),
]


class TokenHintRequest(_ClientParams):
    token: str
    token_type_hint: Literal["access_token", "refresh_token"] = Field(ABSENT, description="Which kind to try first")


class TokenResponse(BaseModel):
    access_token: str = Field(description="RFC 9068 JWT (typ at+jwt)")
    token_type: Literal["Bearer"]
    expires_in: int
    scope: str | None = Field(None, description=_SCOPE)
    refresh_token: str | None = Field(
        None, description="To clients with the refresh_token grant (not client_credentials); rotated on every use"
    )
    id_token: str | None = Field(
        None, description="OpenID Connect ID token (typ JWT): authorization_code with openid, and its refreshes"
    )


class Introspection(BaseModel):
    """RFC 7662 §2.2: just {active: false} for an unknown, expired, revoked or foreign token."""

    active: bool
    token_type: Literal["Bearer", "refresh_token"] | None = None
    scope: str | None = Field(None, description=_SCOPE)
    client_id: str | None = None
    sub: str | None = None
    aud: str | list[str] | None = None
    iss: str | None = None
    iat: int | None = None
    exp: int | None = None
    jti: str | None = None
    roles: list[str] | None = None


AuthMethod = Literal["client_secret_basic", "client_secret_post", "none"]


class AuthorizationServerMetadata(BaseModel):
    """RFC 8414 §2 and OpenID Connect Discovery 1.0 §3."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    grant_types_supported: list[GrantType]
    token_endpoint_auth_methods_supported: list[AuthMethod]
    revocation_endpoint: str
    revocation_endpoint_auth_methods_supported: list[AuthMethod]
    introspection_endpoint: str
    introspection_endpoint_auth_methods_supported: list[AuthMethod]
    userinfo_endpoint: str
    end_session_endpoint: str = Field(description="OpenID Connect RP-Initiated Logout 1.0")
    response_types_supported: list[Literal["code"]]
    response_modes_supported: list[Literal["query"]]
    code_challenge_methods_supported: list[Literal["S256"]] = Field(description="PKCE is required of every client")
    authorization_response_iss_parameter_supported: bool = Field(description="RFC 9207")
    subject_types_supported: list[Literal["public"]]
    id_token_signing_alg_values_supported: list[str]
    claims_supported: list[str]
    prompt_values_supported: list[str]
    scopes_supported: list[str] = Field(description="Scopes enabled clients may request (none of issuer:*)")
    request_parameter_supported: bool
    request_uri_parameter_supported: bool
    service_documentation: str = Field(description="The interactive API documentation (Swagger UI)")


class JsonWebKey(BaseModel):
    model_config = ConfigDict(extra="allow")

    kty: str
    kid: str


class JsonWebKeySet(BaseModel):
    """Pending, active and retired keys."""

    keys: list[JsonWebKey]


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: str
    checks: dict[str, str]


OpenAPIDocument = dict[str, Any]
