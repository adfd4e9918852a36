"""Signing-key lifecycle: generation, envelope encryption, the pending → active → retired
schedule, the in-memory keyring each instance signs from, and the public JWKS."""
