-- A disabled client fails authentication, and its tokens are refused at once by our own
-- endpoints and by introspection; it keeps its registration and can be enabled again.
ALTER TABLE clients ADD COLUMN disabled BOOLEAN NOT NULL DEFAULT FALSE;
