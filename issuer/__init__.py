"""The token issuer service."""
