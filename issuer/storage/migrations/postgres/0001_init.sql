CREATE TABLE server_secrets (
    name        TEXT PRIMARY KEY,
    ciphertext  BYTEA NOT NULL,
    created_at  DOUBLE PRECISION NOT NULL
);

CREATE TABLE clients (
    client_id    TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    secret_hash  BYTEA,
    grant_types  TEXT NOT NULL,
    scopes       TEXT NOT NULL,
    audiences    TEXT NOT NULL,
    created_at   DOUBLE PRECISION NOT NULL,
    updated_at   DOUBLE PRECISION NOT NULL
);

CREATE TABLE signing_keys (
    kid                 TEXT PRIMARY KEY,
    alg                 TEXT NOT NULL,
    state               TEXT NOT NULL CHECK (state IN ('pending', 'active', 'retired', 'revoked')),
    public_jwk          TEXT NOT NULL,
    private_ciphertext  BYTEA NOT NULL,
    created_at          DOUBLE PRECISION NOT NULL,
    activated_at        DOUBLE PRECISION,
    retired_at          DOUBLE PRECISION,
    revoked_at          DOUBLE PRECISION,
    remove_after        DOUBLE PRECISION
);
-- exactly one active and one pending key, whatever the number of instances
CREATE UNIQUE INDEX signing_keys_one_live ON signing_keys (state) WHERE state IN ('pending', 'active');

CREATE TABLE users (
    user_id        TEXT PRIMARY KEY,
    username       TEXT NOT NULL,
    username_norm  TEXT NOT NULL UNIQUE,
    email          TEXT,
    email_norm     TEXT UNIQUE,
    password_hash  TEXT NOT NULL,
    roles          TEXT NOT NULL,
    disabled       BOOLEAN NOT NULL DEFAULT FALSE,
    created_at     DOUBLE PRECISION NOT NULL,
    updated_at     DOUBLE PRECISION NOT NULL
);

CREATE TABLE refresh_families (
    family_id       TEXT PRIMARY KEY,
    client_id       TEXT NOT NULL,
    user_id         TEXT NOT NULL,
    created_at      DOUBLE PRECISION NOT NULL,
    expires_at      DOUBLE PRECISION NOT NULL,
    revoked_at      DOUBLE PRECISION,
    revoked_reason  TEXT
);
CREATE INDEX refresh_families_user ON refresh_families (user_id);

CREATE TABLE refresh_tokens (
    token_hash            BYTEA PRIMARY KEY,
    family_id             TEXT NOT NULL REFERENCES refresh_families (family_id) ON DELETE CASCADE,
    generation            INTEGER NOT NULL,
    scope                 TEXT NOT NULL,
    audience              TEXT NOT NULL,
    issued_at             DOUBLE PRECISION NOT NULL,
    expires_at            DOUBLE PRECISION NOT NULL,
    consumed_at           DOUBLE PRECISION,
    successor_ciphertext  BYTEA,
    UNIQUE (family_id, generation)
);

CREATE TABLE revoked_tokens (
    jti         TEXT PRIMARY KEY,
    expires_at  DOUBLE PRECISION NOT NULL,
    revoked_at  DOUBLE PRECISION NOT NULL
);
CREATE INDEX revoked_tokens_expiry ON revoked_tokens (expires_at);

CREATE TABLE audit_log (
    id           BIGSERIAL PRIMARY KEY,
    at           DOUBLE PRECISION NOT NULL,
    actor        TEXT NOT NULL,
    action       TEXT NOT NULL,
    target       TEXT NOT NULL,
    detail       TEXT NOT NULL,
    remote_addr  TEXT NOT NULL
);
