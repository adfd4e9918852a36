"""Entry point for ASGI servers: ``uvicorn --factory issuer.asgi:build``."""

from __future__ import annotations

import logging

from starlette.applications import Starlette

from issuer.app import create_app
from issuer.malloc import fix_mmap_threshold
from issuer.observability.logs import configure_logging
from issuer.startup import load_settings, unknown_variables


def build() -> Starlette:
    fix_mmap_threshold()  # a server started without `issuer serve` (issuer.malloc)
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format, env=settings.env)
    for warning in unknown_variables():
        logging.getLogger("issuer").warning(warning.removeprefix("warning: "))
    return create_app(settings)
