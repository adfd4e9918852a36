"""Entry point for ASGI servers: ``uvicorn --factory issuer.asgi:build``."""

from __future__ import annotations

from starlette.applications import Starlette

from issuer.app import create_app
from issuer.observability.logs import configure_logging
from issuer.settings import Settings


def build() -> Starlette:
    settings = Settings()
    configure_logging(settings.log_level)
    return create_app(settings)
