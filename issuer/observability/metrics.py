"""Prometheus metrics, one registry per process (GET /metrics)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from keys.lifecycle import KeyState, SigningKey, active_key


class Metrics:
    def __init__(self, *, client_labels: bool = False) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        # A client_id label makes one series per client: unbounded with dynamic registration,
        # so it is opt-in (ISSUER_METRICS_CLIENT_LABELS).
        self._client_labels = client_labels
        self.tokens_issued = Counter(
            "issuer_tokens_issued",
            "Access tokens issued",
            ["grant_type", "client_id"] if client_labels else ["grant_type"],
            registry=r,
        )
        self.token_errors = Counter(
            "issuer_token_endpoint_errors", "Token-endpoint errors by RFC 6749 error code", ["error"], registry=r
        )
        self.refresh_reuse = Counter(
            "issuer_refresh_reuse_detected", "Consumed refresh tokens presented again (family revoked)", registry=r
        )
        self.retention_deleted = Counter(
            "issuer_retention_deleted", "Rows deleted by the retention sweeps, by kind", ["kind"], registry=r
        )
        self.login_failures = Counter("issuer_login_failures", "Failed password logins", registry=r)
        self.key_rotations = Counter("issuer_key_rotations", "Signing-key schedule changes", ["kind"], registry=r)
        self.active_key_age = Gauge(
            "issuer_signing_key_age_seconds", "Age of the active signing key since activation", registry=r
        )
        self.keys_by_state = Gauge("issuer_signing_keys", "Signing keys by state", ["state"], registry=r)
        self.request_latency = Histogram(
            "issuer_http_request_duration_seconds",
            "Request latency by route",
            ["method", "route", "status"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
            registry=r,
        )

        # Labelled children, looked up once per label set rather than per request (``labels()``
        # validates and locks on every call). Bounded: routes x methods x statuses, grant types.
        self._latency: dict[tuple[str, str, int], Any] = {}
        self._issued: dict[str, Any] = {}

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        child = self._latency.get(key)
        if child is None:
            child = self._latency[key] = self.request_latency.labels(method, route, str(status))
        child.observe(seconds)

    def token_issued(self, grant_type: str, client_id: str) -> None:
        if self._client_labels:  # one series per client: not cached (unbounded)
            self.tokens_issued.labels(grant_type, client_id).inc()
            return
        child = self._issued.get(grant_type)
        if child is None:
            child = self._issued[grant_type] = self.tokens_issued.labels(grant_type)
        child.inc()

    def render(self, keys: list[SigningKey], now: float) -> bytes:
        active = active_key(keys)
        self.active_key_age.set(now - (active.activated_at or active.created_at) if active else 0)
        for state in KeyState:
            self.keys_by_state.labels(state.value).set(sum(1 for k in keys if k.state is state))
        return generate_latest(self.registry)
