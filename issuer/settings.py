"""Settings, read once from the environment (prefix ``ISSUER_``) or a ``.env`` file.

Every field carries a description; ``issuer config-table`` renders them as the README's
configuration table, so the documentation cannot drift from the code.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from issuer.resources import database_pool_size, hash_concurrency, signing_threads, workers

CommaList = Annotated[list[str], NoDecode]
_COLOR = r"^#[0-9a-fA-F]{6}$"


def _split(value: object) -> object:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ISSUER_", env_file=".env", extra="ignore")

    env: Literal["development", "production"] = Field(
        "development",
        description="`production` refuses to start with development defaults "
        "(generated key-encryption key, SQLite, plain-http issuer URL off loopback).",
    )
    url: str = Field(
        "http://127.0.0.1:8000", description="Issuer identifier: the `iss` claim and base of every endpoint URL."
    )
    data_dir: Path = Field(
        Path(".issuer-data"), description="Where the embedded mode keeps its SQLite file and development key."
    )
    database_url: str = Field(
        "", description="`postgresql://…` or `sqlite:///path`. Empty: a SQLite file in the data directory."
    )
    redis_url: str = Field(
        "", description="`redis://…` for shared rate limits, revocation cache and key-change notifications."
    )
    redis_prefix: str = Field("issuer:", description="Prefix of every Redis key and channel this issuer uses.")
    key_encryption_keys: SecretStr = Field(
        SecretStr(""),
        description="Comma-separated base64url 32-byte keys; the first encrypts, all decrypt. "
        "Required with PostgreSQL. Make one: `issuer keys new-kek`.",
    )
    signing_alg: Literal["RS256", "ES256"] = Field("RS256", description="Algorithm of newly generated signing keys.")
    access_token_ttl: int = Field(900, ge=30, le=86400, description="Access-token lifetime in seconds.")
    jwks_max_age: int = Field(
        300, ge=0, le=86400, description="Upper bound of the JWKS `Cache-Control: max-age`, in seconds."
    )
    clock_skew: int = Field(60, ge=0, le=600, description="Allowed clock skew between us and verifiers, seconds.")
    key_rotation_interval: int = Field(
        0, ge=0, description="Rotate signing keys automatically every N seconds (0: only on request)."
    )
    keyring_refresh_interval: float = Field(
        5.0, gt=0, le=300, description="How often each instance re-reads the key set from the database, seconds."
    )
    signing_threads: int | None = Field(
        None,
        ge=0,
        le=64,
        description="Threads that sign RS256 tokens beside the event loop (RSA releases the GIL). "
        "Empty: one when the CPU quota (cgroup `cpu.max` and affinity) is two or more CPUs per worker "
        "(`WEB_CONCURRENCY`, set by `serve --workers`), else 0 (sign inline).",
    )
    database_pool_size: int = Field(
        0,
        ge=0,
        le=200,
        description="PostgreSQL connections per process. 0: four per CPU of quota (cgroup `cpu.max` and "
        "affinity), between 4 and 10.",
    )
    max_body_bytes: int = Field(16384, ge=1024, le=1048576, description="Largest request body accepted, bytes.")
    open_registration: bool = Field(True, description="Whether `POST /register` is open to anyone.")
    roles: CommaList = Field(
        ["user", "manager", "admin"], description="Role hierarchy, lowest first; a role includes those before it."
    )
    admin_role: str = Field(
        "admin",
        description="The role (and every role above it in `ISSUER_ROLES`) whose users may use everything "
        "under `/admin` and obtain the `issuer:admin` scope; if it is not in `ISSUER_ROLES`, no user may.",
    )
    argon2_time_cost: int = Field(2, ge=1, le=20, description="argon2id iterations (OWASP minimum: 2 at 19 MiB).")
    argon2_memory_kib: int = Field(19456, ge=7168, le=1048576, description="argon2id memory in KiB.")
    argon2_parallelism: int = Field(1, ge=1, le=16, description="argon2id lanes.")
    password_hash_threads: int = Field(
        0,
        ge=0,
        le=64,
        description="Concurrent password hashes, on threads at low CPU priority. 0: the CPU quota (cgroup "
        "`cpu.max` and affinity) divided by the argon2 lanes, capped so the hashes fit in half the memory "
        "limit (`memory.max`) at `ISSUER_ARGON2_MEMORY_KIB` each; at least one.",
    )
    password_hash_queue: int = Field(
        0,
        ge=0,
        le=10000,
        description="Logins that may wait for a hash thread; beyond that they get 503 + Retry-After. "
        "Registrations may wait only one per thread. 0: 16 per thread.",
    )
    bcrypt_max_cost: int = Field(
        12,
        ge=4,
        le=16,
        description="Highest bcrypt cost `users import` accepts. Every failed login lasts at least one "
        "verification at this cost, so timing does not reveal accounts still on an imported hash.",
    )
    refresh_token_idle_ttl: int = Field(
        1209600, ge=60, description="A refresh token expires if unused this long, seconds (default 14 days)."
    )
    refresh_token_absolute_ttl: int = Field(
        2592000, ge=60, description="A refresh-token family ends this long after login, seconds (default 30 days)."
    )
    session_idle_ttl: int = Field(
        28800, ge=60, description="A browser sign-in session ends if unused this long, seconds (default 8 hours)."
    )
    session_absolute_ttl: int = Field(
        604800, ge=60, description="A browser sign-in session ends this long after sign-in, seconds (default 7 days)."
    )
    session_logout_revokes_refresh: bool = Field(
        True,
        description="Ending a browser session (logout, the user or an admin) also revokes the refresh-token "
        "families it created.",
    )
    id_token_roles: bool = Field(False, description="Put the user's effective `roles` in ID tokens and userinfo.")
    id_token_ttl: int = Field(900, ge=60, le=86400, description="ID-token lifetime in seconds.")
    refresh_reuse_grace: int = Field(
        10, ge=0, le=300, description="Seconds in which a retried refresh gets the same successor (0: off)."
    )
    audit_retention_days: int = Field(
        365, ge=0, le=36500, description="Audit entries older than this many days are deleted (0: keep forever)."
    )
    retention_sweep_interval: float = Field(
        300.0,
        ge=1,
        le=86400,
        description="Seconds between retention sweeps (expired revocations, ended refresh-token families, "
        "old audit entries); one instance sweeps at a time.",
    )
    rate_limit_login_per_user: int = Field(10, ge=0, description="Password attempts per username per minute (0: off).")
    rate_limit_login_per_ip: int = Field(60, ge=0, description="Password attempts per client IP per minute (0: off).")
    rate_limit_token_per_client: int = Field(
        1000, ge=0, description="Token-endpoint requests per client per second (0: off)."
    )
    rate_limit_register_per_ip: int = Field(
        20, ge=0, description="Registrations per client IP per hour (0: off). Checked before any hashing."
    )
    rate_limit_register_global: int = Field(
        60, ge=0, description="Registrations per minute for the whole issuer (0: off). Checked before any hashing."
    )
    register_refusal_pause: float = Field(
        1.0,
        ge=0,
        le=10,
        description="Seconds `POST /register` waits before answering 429 or 503, so a flood that ignores "
        "Retry-After gets one attempt per pause per connection (0: answer at once).",
    )
    forwarded_allow_ips: CommaList = Field(
        [],
        description="Addresses or CIDR ranges of the proxies in front of us. The client IP is the right-most "
        "`X-Forwarded-For` entry that is not one of them (empty: the header is ignored).",
    )
    trust_forwarded_for: bool = Field(
        False,
        description="Deprecated (use `ISSUER_FORWARDED_ALLOW_IPS`): `true` trusts the direct peer as a proxy, "
        "so the right-most `X-Forwarded-For` address is the client.",
    )
    max_header_bytes: int = Field(
        16384, ge=1024, le=1048576, description="Largest request head (request line and headers), bytes; beyond: 431."
    )
    header_timeout: float = Field(
        10.0, gt=0, le=300, description="Seconds a connection has to send a complete request head; then it is closed."
    )
    body_timeout: float = Field(
        10.0, gt=0, le=300, description="Seconds a request has to send its whole body once the head is in."
    )
    max_connections: int = Field(
        1000, ge=1, le=100000, description="Open connections per worker process; beyond, new ones get 503 at once."
    )
    keep_alive_timeout: int = Field(5, ge=1, le=300, description="Seconds an idle kept-alive connection stays open.")
    reuse_port: bool = Field(
        True,
        description="With `serve --workers N` (N > 1), a listening socket per worker (`SO_REUSEPORT`), so new "
        "connections spread over the workers; false: one shared socket, as uvicorn does.",
    )
    cors_origins: CommaList = Field([], description="Origins allowed to call the token endpoints from a browser.")
    product_name: str = Field(
        "Issuer", min_length=1, max_length=64, description="Product name shown on the sign-in, consent and other pages."
    )
    brand_logo_file: Path | None = Field(
        None, description="SVG, PNG or WebP file shown as the logo on the pages (empty: the built-in logo)."
    )
    brand_color: str = Field(
        "#1d4ed8", pattern=_COLOR, description="Accent colour of the pages (buttons, links, focus ring): `#rrggbb`."
    )
    brand_background: str = Field("#f3f4f6", pattern=_COLOR, description="Page background colour: `#rrggbb`.")
    templates_dir: Path | None = Field(
        None,
        description="Directory of Jinja2 templates that replace the built-in ones of the same name "
        "(`base.html`, `login.html`, `consent.html`, `logout.html`, `message.html`, `signup.html`, `error.html`).",
    )
    metrics_client_labels: bool = Field(
        False,
        description="Label `issuer_tokens_issued_total` by `client_id`. High cardinality: one series per "
        "client, unbounded with open registration of clients; leave off unless clients are few.",
    )
    log_level: str = Field("INFO", description="Log level of the JSON logs.")
    log_format: Literal["json", "console"] | None = Field(
        None,
        description="`json` (one object per line) or `console` (one readable line). Empty: `console` when "
        "standard output is a terminal and `ISSUER_ENV=development`, else `json`.",
    )
    docs_client_id: str = Field(
        "issuer-docs",
        max_length=256,
        description="client_id that Swagger UI at `/docs` signs in with (\"Authorize\"), when that client exists. "
        "The embedded development mode (SQLite, not production) creates it at startup: public, first-party, "
        "redirect URI `<ISSUER_URL>/docs/oauth2-redirect`; elsewhere only an operator does (README). Empty: none.",
    )

    _split_lists = field_validator("roles", "cors_origins", "forwarded_allow_ips", mode="before")(_split)

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _proxies_are_networks(cls, value: list[str]) -> list[str]:
        for item in value:
            if item != "*":
                try:
                    ipaddress.ip_network(item, strict=False)
                except ValueError:
                    raise ValueError(f"ISSUER_FORWARDED_ALLOW_IPS: {item!r} is not an IP address or network") from None
        return value

    @field_validator("database_url")
    @classmethod
    def _database_url_is_supported(cls, value: str) -> str:
        # Checked before anything else reads it, so `mysql://…` is named as the problem rather
        # than the key-encryption key PostgreSQL would need.
        scheme = urlsplit(value).scheme
        if value and not (scheme in ("postgres", "postgresql") or (scheme == "sqlite" and value.startswith("sqlite:///"))):
            raise ValueError("must be postgresql://user@host/db or sqlite:///path")
        return value

    @field_validator("url")
    @classmethod
    def _url_has_no_trailing_slash(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
            raise ValueError("ISSUER_URL must be an http(s) URL without query or fragment")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _rotation_outlasts_caches(self) -> Settings:
        if self.key_rotation_interval and self.key_rotation_interval < self.jwks_max_age + self.clock_skew:
            raise ValueError(
                "ISSUER_KEY_ROTATION_INTERVAL must be at least ISSUER_JWKS_MAX_AGE + ISSUER_CLOCK_SKEW, "
                "so a pending key is in every JWKS cache before it signs"
            )
        if len(self.roles) < 1:
            raise ValueError("ISSUER_ROLES needs at least one role")
        return self

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'issuer.sqlite3'}"

    @property
    def sign_threads(self) -> int:
        if self.signing_threads is not None:
            return self.signing_threads
        # The container's CPU quota and affinity, not the host's cores, shared by the workers: a
        # signing thread only helps when a second CPU can run it beside each event loop.
        return signing_threads(workers())

    @property
    def pool_size(self) -> int:
        return self.database_pool_size or database_pool_size()

    @property
    def hash_threads(self) -> int:
        return self.password_hash_threads or hash_concurrency(self.argon2_memory_kib, self.argon2_parallelism)

    @property
    def is_sqlite(self) -> bool:
        return self.effective_database_url.startswith("sqlite:")

    def endpoint(self, path: str) -> str:
        return self.url + path
