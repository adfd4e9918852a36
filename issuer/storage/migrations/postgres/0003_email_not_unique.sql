-- An email is contact data, not a login identifier: two accounts may give the same one, so
-- registration never reveals whether an address is registered (README: "Registration and passwords").
ALTER TABLE users DROP CONSTRAINT IF EXISTS users_email_norm_key;
