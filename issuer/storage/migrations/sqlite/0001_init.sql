CREATE TABLE server_secrets (
    name        TEXT PRIMARY KEY,
    ciphertext  BLOB NOT NULL,
    created_at  REAL NOT NULL
);

CREATE TABLE clients (
    client_id    TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    secret_hash  BLOB,
    grant_types  TEXT NOT NULL,
    scopes       TEXT NOT NULL,
    audiences    TEXT NOT NULL,
    created_at   REAL NOT NULL,
    updated_at   REAL NOT NULL
);

CREATE TABLE signing_keys (
    kid                 TEXT PRIMARY KEY,
    alg                 TEXT NOT NULL,
    state               TEXT NOT NULL CHECK (state IN ('pending', 'active', 'retired', 'revoked')),
    public_jwk          TEXT NOT NULL,
    private_ciphertext  BLOB NOT NULL,
    created_at          REAL NOT NULL,
    activated_at        REAL,
    retired_at          REAL,
    revoked_at          REAL,
    remove_after        REAL
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
    created_at     REAL NOT NULL,
    updated_at     REAL NOT NULL
);

CREATE TABLE refresh_families (
    family_id       TEXT PRIMARY KEY,
    client_id       TEXT NOT NULL,
    user_id         TEXT NOT NULL,
    created_at      REAL NOT NULL,
    expires_at      REAL NOT NULL,
    revoked_at      REAL,
    revoked_reason  TEXT
);
CREATE INDEX refresh_families_user ON refresh_families (user_id);

CREATE TABLE refresh_tokens (
    token_hash            BLOB PRIMARY KEY,
    family_id             TEXT NOT NULL REFERENCES refresh_families (family_id) ON DELETE CASCADE,
    generation            INTEGER NOT NULL,
    scope                 TEXT NOT NULL,
    audience              TEXT NOT NULL,
    issued_at             REAL NOT NULL,
    expires_at            REAL NOT NULL,
    consumed_at           REAL,
    successor_ciphertext  BLOB,
    UNIQUE (family_id, generation)
);

CREATE TABLE revoked_tokens (
    jti         TEXT PRIMARY KEY,
    expires_at  REAL NOT NULL,
    revoked_at  REAL NOT NULL
);
CREATE INDEX revoked_tokens_expiry ON revoked_tokens (expires_at);

CREATE TABLE audit_log (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    at           REAL NOT NULL,
    actor        TEXT NOT NULL,
    action       TEXT NOT NULL,
    target       TEXT NOT NULL,
    detail       TEXT NOT NULL,
    remote_addr  TEXT NOT NULL
);
