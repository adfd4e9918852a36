"""Request bodies of /register, /account/* and /admin/*, validated strictly (unknown fields and
wrong JSON types refused), and the response bodies the OpenAPI document describes. The checks
reuse the domain's rules (issuer.accounts.policy, issuer.oauth.uris, issuer.oauth.scopes), so
what is documented is what is enforced."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from issuer.accounts.policy import PASSWORD_MAX, PASSWORD_MIN, check_password
from issuer.accounts.users import USERNAME, USERNAME_RULE, normalise_email, normalise_username
from issuer.oauth.clients import MAX_REDIRECT_URIS, redirect_uri_problem
from issuer.oauth.scopes import is_scope_token
from issuer.oauth.uris import MAX_LENGTH, uri_problem
from keys.lifecycle import KeyState


def _invalid(message: str) -> PydanticCustomError:
    return PydanticCustomError("invalid", message)


def _checked(problem: Callable[[str], str | None], prefix: str = "") -> AfterValidator:
    def check(value: str) -> str:
        message = problem(value)
        if message:
            raise _invalid(prefix + message)
        return value

    return AfterValidator(check)


def _unique(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


# -- accounts ---------------------------------------------------------------------------------

Password = Annotated[str, Field(json_schema_extra={"minLength": PASSWORD_MIN, "maxLength": PASSWORD_MAX})]


class Registration(Body):
    username: str = Field(
        json_schema_extra={"pattern": f"^{USERNAME.pattern}$"},
        description=f"{USERNAME_RULE}; checked after NFKC normalisation, compared by its NFKC + casefold key",
    )
    password: Password
    email: str | None = Field(None, json_schema_extra={"format": "email", "maxLength": 254})

    @field_validator("username")
    @classmethod
    def _username(cls, value: str) -> str:
        name, message = normalise_username(value)
        if message:
            raise _invalid(message)
        assert name is not None
        return name

    @field_validator("email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        email, message = normalise_email(value)
        if message:
            raise _invalid(message)
        return email

    @field_validator("password")
    @classmethod
    def _password(cls, value: str, info: ValidationInfo) -> str:
        message = check_password(value, info.data.get("username"))
        if message:
            raise _invalid(message)
        return value


class PasswordChange(Body):
    """``new_password`` follows the policy; the username it must differ from is the caller's
    (validation context ``username``)."""

    current_password: str
    new_password: Password

    @field_validator("new_password")
    @classmethod
    def _policy(cls, value: str, info: ValidationInfo) -> str:
        message = check_password(value, (info.context or {}).get("username"))
        if message:
            raise _invalid(message)
        return value


class Deactivation(Body):
    password: str


# -- admin ------------------------------------------------------------------------------------

GrantType = Literal["authorization_code", "client_credentials", "password", "refresh_token"]
ClientName = Annotated[
    str,
    Field(min_length=1, max_length=200),
    _checked(lambda v: None if v.isprintable() else "must be 1 to 200 printable characters"),
]
Scope = Annotated[
    str,
    Field(json_schema_extra={"pattern": r"^[\x21\x23-\x5b\x5d-\x7e]+$"}),
    _checked(lambda v: None if is_scope_token(v) else f"invalid scope token {v[:64]!r}"),
]
Audience = Annotated[
    str,
    Field(json_schema_extra={"format": "uri", "maxLength": MAX_LENGTH}),
    _checked(uri_problem, "audience "),
]
RedirectUri = Annotated[
    str,
    Field(json_schema_extra={"format": "uri", "maxLength": MAX_LENGTH}),
    _checked(redirect_uri_problem, "redirect URI "),
]
_REDIRECT_URIS = (
    "Where the authorization endpoint may send the browser back, compared as exact strings (any port for "
    "a loopback http URI): absolute https (http only to a loopback host), no wildcard, user info or fragment. "
    "Required by authorization_code"
)
_POST_LOGOUT = "Where RP-initiated logout may send the browser afterwards; the same rules as redirect_uris"
_FIRST_PARTY = "A first-party client is not shown the consent page (the user's consent is implied)"
_AUDIENCES = (
    "Resource URIs the client's tokens may be issued for: absolute https (http only to a loopback host), "
    "without user info or fragment"
)


class _ClientFields(Body):
    @field_validator(
        "grant_types", "scopes", "audiences", "redirect_uris", "post_logout_redirect_uris", check_fields=False
    )
    @classmethod
    def _dedupe(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else _unique(value)


class ClientCreate(_ClientFields):
    name: ClientName
    grant_types: list[GrantType] = Field(min_length=1)
    scopes: list[Scope] = []
    audiences: list[Audience] = Field([], description=_AUDIENCES)
    public: bool = False
    redirect_uris: list[RedirectUri] = Field([], max_length=MAX_REDIRECT_URIS, description=_REDIRECT_URIS)
    post_logout_redirect_uris: list[RedirectUri] = Field([], max_length=MAX_REDIRECT_URIS, description=_POST_LOGOUT)
    first_party: bool = Field(False, description=_FIRST_PARTY)

    @model_validator(mode="after")
    def _public_clients_have_no_secret(self) -> ClientCreate:
        if self.public and "client_credentials" in self.grant_types:
            raise _invalid("a public client cannot use client_credentials")
        return self


# The default of a field that may be left out but is never null: defaults are not validated, so
# an absent field stays unset while null is refused; no_null_defaults keeps it out of the schema.
ABSENT: Any = None


def no_null_defaults(schema: dict[str, Any]) -> None:
    for prop in schema.get("properties", {}).values():
        prop.pop("default", None)


class ClientUpdate(_ClientFields):
    """Only the fields given change (null is not a value); list values are de-duplicated."""

    model_config = ConfigDict(json_schema_extra=no_null_defaults)

    name: ClientName = Field(ABSENT)
    grant_types: list[GrantType] = Field(ABSENT, min_length=1)
    scopes: list[Scope] = Field(ABSENT)
    audiences: list[Audience] = Field(ABSENT, description=_AUDIENCES)
    redirect_uris: list[RedirectUri] = Field(ABSENT, max_length=MAX_REDIRECT_URIS, description=_REDIRECT_URIS)
    post_logout_redirect_uris: list[RedirectUri] = Field(
        ABSENT, max_length=MAX_REDIRECT_URIS, description=_POST_LOGOUT
    )
    first_party: bool = Field(ABSENT, description=_FIRST_PARTY)
    disabled: bool = Field(ABSENT, description="A disabled client fails authentication; its tokens are refused")

    def changes(self) -> dict[str, Any]:
        """The fields given, lists as tuples (the shape of issuer.models.Client)."""
        given = self.model_dump(include=self.model_fields_set)
        return {k: tuple(v) if isinstance(v, list) else v for k, v in given.items()}


class RoleAssignment(Body):
    roles: list[str] = Field(min_length=1, description="Replaces the user's roles; each a configured role")


# -- responses --------------------------------------------------------------------------------


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str
    title: str
    status: int
    detail: str | None = None
    errors: dict[str, Any] | None = Field(None, description="Per-field messages, or details such as safe_at")
    checks: dict[str, str] | None = Field(None, description="readyz: each dependency")


class ClientView(BaseModel):
    client_id: str
    name: str
    type: Literal["public", "confidential"]
    grant_types: list[GrantType]
    scopes: list[str]
    audiences: list[str]
    redirect_uris: list[str]
    post_logout_redirect_uris: list[str]
    first_party: bool
    disabled: bool
    created_at: int
    updated_at: int


class ClientWithSecret(ClientView):
    client_secret: str = Field(description="Shown only in this response")


class ClientPage(BaseModel):
    items: list[ClientView]
    next: str | None = Field(description="Pass as `after` for the next page; null on the last page")


class UserView(BaseModel):
    user_id: str
    username: str
    email: str | None
    roles: list[str]
    effective_roles: list[str] = Field(description="roles plus every role they imply")
    disabled: bool
    created_at: int


class UserPage(BaseModel):
    items: list[UserView]
    next: str | None = Field(description="Pass as `after` for the next page; null on the last page")


class UserInfo(BaseModel):
    """With an ``openid`` token, the claims its scopes allow (profile: preferred_username; email:
    email, email_verified; roles only with ISSUER_ID_TOKEN_ROLES); otherwise the whole profile."""

    sub: str
    preferred_username: str | None = None
    email: str | None = None
    email_verified: bool | None = None
    roles: list[str] | None = None


class KeyTransition(BaseModel):
    to: Literal["active", "retired", "removed"]
    at: str | None


class SigningKey(BaseModel):
    kid: str
    alg: str
    state: KeyState
    created_at: str | None
    published_at: str | None
    activated_at: str | None
    retired_at: str | None
    revoked_at: str | None
    next_transition: KeyTransition | None
    earliest_activation: str | None = Field(description="Pending keys: when every JWKS cache holds it")


class KeyList(BaseModel):
    items: list[SigningKey]


class AuditEntry(BaseModel):
    id: int
    at: int = Field(description="Unix time, seconds")
    actor: str = Field(description="client:<id> or user:<id> (admin API), cli:<os user>@<host>, or scheduler")
    action: str
    target: str
    detail: dict[str, Any]
    remote_addr: str | None = Field(description="The caller's address for HTTP; empty for the CLI and scheduler")


class AuditPage(BaseModel):
    items: list[AuditEntry]
    next: int | None = Field(description="Pass as `before` for the next page; null on the last page")


class SessionRevocation(BaseModel):
    revoked_families: int = Field(description="Refresh-token families revoked")
