-- An email is contact data, not a login identifier: two accounts may give the same one, so
-- registration never reveals whether an address is registered (README: "Registration and passwords").
-- SQLite cannot drop an inline UNIQUE constraint (its index is sqlite_autoindex_users_2): rebuild.
CREATE TABLE users_new (
    user_id        TEXT PRIMARY KEY,
    username       TEXT NOT NULL,
    username_norm  TEXT NOT NULL UNIQUE,
    email          TEXT,
    email_norm     TEXT,
    password_hash  TEXT NOT NULL,
    roles          TEXT NOT NULL,
    disabled       BOOLEAN NOT NULL DEFAULT FALSE,
    created_at     REAL NOT NULL,
    updated_at     REAL NOT NULL
);
INSERT INTO users_new (user_id, username, username_norm, email, email_norm, password_hash, roles, disabled,
                       created_at, updated_at)
    SELECT user_id, username, username_norm, email, email_norm, password_hash, roles, disabled, created_at, updated_at
    FROM users;
DROP TABLE users;
ALTER TABLE users_new RENAME TO users;
