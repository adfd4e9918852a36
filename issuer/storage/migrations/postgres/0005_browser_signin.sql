-- Step 6, browser sign-in (one migration for the whole step).

-- Clients: where the authorization endpoint may send the browser back (exact strings), where
-- RP-initiated logout may send it, and whether the user's consent is implied (first party).
ALTER TABLE clients ADD COLUMN redirect_uris TEXT NOT NULL DEFAULT '[]';
ALTER TABLE clients ADD COLUMN post_logout_redirect_uris TEXT NOT NULL DEFAULT '[]';
ALTER TABLE clients ADD COLUMN first_party BOOLEAN NOT NULL DEFAULT FALSE;

-- A signed-in browser. The cookie value is stored only as its SHA-256 hash; session_id is public
-- (the ID token's sid). The row is the truth: idle and absolute expiry, and ended_at.
CREATE TABLE browser_sessions (
    session_id    TEXT PRIMARY KEY,
    cookie_hash   BYTEA NOT NULL UNIQUE,
    user_id       TEXT NOT NULL,
    auth_time     DOUBLE PRECISION NOT NULL,
    created_at    DOUBLE PRECISION NOT NULL,
    last_seen_at  DOUBLE PRECISION NOT NULL,
    expires_at    DOUBLE PRECISION NOT NULL,
    ended_at      DOUBLE PRECISION,
    ended_reason  TEXT,
    remote_addr   TEXT NOT NULL DEFAULT '',
    user_agent    TEXT NOT NULL DEFAULT ''
);
CREATE INDEX browser_sessions_user ON browser_sessions (user_id);
CREATE INDEX browser_sessions_expiry ON browser_sessions (expires_at);

-- What a user allowed a client, one row per scope: a new grant adds to what was granted before.
CREATE TABLE consents (
    user_id     TEXT NOT NULL,
    client_id   TEXT NOT NULL,
    scope       TEXT NOT NULL,
    granted_at  DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (user_id, client_id, scope)
);
CREATE INDEX consents_client ON consents (client_id);

-- Authorization codes, stored hashed, single-use (consumed_at by compare-and-swap). The first
-- exchange records what it issued (family_id, access_jti) so that a replay can revoke it; a
-- replay racing the first exchange sets replayed_at, and the first exchange then revokes its own.
CREATE TABLE authorization_codes (
    code_hash          BYTEA PRIMARY KEY,
    client_id          TEXT NOT NULL,
    user_id            TEXT NOT NULL,
    session_id         TEXT NOT NULL,
    redirect_uri       TEXT NOT NULL,
    code_challenge     TEXT NOT NULL,
    nonce              TEXT,
    scope              TEXT NOT NULL,
    audience           TEXT NOT NULL,
    auth_time          DOUBLE PRECISION NOT NULL,
    issued_at          DOUBLE PRECISION NOT NULL,
    expires_at         DOUBLE PRECISION NOT NULL,
    consumed_at        DOUBLE PRECISION,
    family_id          TEXT,
    access_jti         TEXT,
    access_expires_at  DOUBLE PRECISION,
    replayed_at        DOUBLE PRECISION
);
CREATE INDEX authorization_codes_expiry ON authorization_codes (expires_at);

-- A refresh family started by a browser sign-in remembers its session (ended with it) and
-- the original authentication time (ID tokens on refresh keep sid and auth_time).
ALTER TABLE refresh_families ADD COLUMN session_id TEXT;
ALTER TABLE refresh_families ADD COLUMN auth_time DOUBLE PRECISION;
CREATE INDEX refresh_families_session ON refresh_families (session_id) WHERE session_id IS NOT NULL;
