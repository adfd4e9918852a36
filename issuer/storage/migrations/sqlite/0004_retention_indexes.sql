-- The retention sweeps (issuer.retention) find what they delete through these indexes rather
-- than by scanning the tables; tests/test_retention.py checks each sweep's plan.
CREATE INDEX IF NOT EXISTS refresh_families_expiry ON refresh_families (expires_at);
CREATE INDEX IF NOT EXISTS refresh_families_revoked ON refresh_families (revoked_at) WHERE revoked_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS refresh_tokens_sealed ON refresh_tokens (consumed_at) WHERE successor_ciphertext IS NOT NULL;
CREATE INDEX IF NOT EXISTS audit_log_at ON audit_log (at);
