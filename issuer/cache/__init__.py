"""What can be rebuilt: rate-limit counters, a cache of revoked access-token ids, and change
notifications. Redis-backed where ISSUER_REDIS_URL is set, in-process otherwise. Redis
failures never stop issuance: limits fail open and the database stays the source of truth."""
