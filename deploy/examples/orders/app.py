"""Orders: a small resource server protected by the issuer's access tokens.

    pip install './verifier[fastapi]' uvicorn
    ISSUER_URL=http://127.0.0.1:8000 uvicorn app:app --app-dir deploy/examples/orders --port 8001

``GET /health`` is public, ``GET /orders`` needs the scope ``orders:read``, ``GET /reports/revenue``
needs the role ``manager`` (or one above it). Swagger UI at ``/docs`` signs in at the issuer.
"""

from __future__ import annotations

import os
from typing import Any

from fastapi import FastAPI, Security

from issuer_verifier import AccessToken
from issuer_verifier.fastapi import IssuerAuth

ORDERS = [{"id": "o-1001", "item": "espresso beans", "quantity": 3}, {"id": "o-1002", "item": "grinder", "quantity": 1}]


def create_app(
    issuer: str = os.environ.get("ISSUER_URL", "http://127.0.0.1:8000"),
    audience: str = os.environ.get("ORDERS_AUDIENCE", "https://api.example.com"),
    docs_client_id: str = os.environ.get("ORDERS_DOCS_CLIENT_ID", ""),
    **verifier_options: Any,
) -> FastAPI:
    auth = IssuerAuth(issuer, audience, scopes={"orders:read": "Read orders"}, realm="orders", **verifier_options)
    managers = auth.require(roles=["manager"])
    app = FastAPI(title="Orders", swagger_ui_init_oauth=auth.swagger_ui_init_oauth(docs_client_id))

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/orders")
    async def list_orders(token: AccessToken = Security(auth, scopes=["orders:read"])) -> dict[str, Any]:
        return {"orders": ORDERS, "for": token.subject}

    @app.get("/reports/revenue")
    async def revenue(token: AccessToken = Security(managers)) -> dict[str, Any]:
        return {"revenue": 1234.5, "currency": "EUR", "for": token.subject}

    app.state.auth = auth
    return app


app = create_app()
