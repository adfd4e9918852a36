"""OAuth protocol values that are not HTTP: client records, scopes, redirect/audience URIs, request parameters."""
