"""Hosted pages: sign-in, consent, logout, registration and the authorization endpoint that
leads to them; server-rendered, usable without JavaScript, under a strict CSP."""

from __future__ import annotations

from issuer.errors import ConfigurationError
from issuer.pages.render import Pages
from issuer.services import Services
from keys.secrets import load_or_create


async def open_pages(services: Services) -> Pages:
    settings = services.settings
    if settings.templates_dir is not None and not settings.templates_dir.is_dir():
        raise ConfigurationError(f"ISSUER_TEMPLATES_DIR is not a directory: {settings.templates_dir}")
    key = await load_or_create(services.store, services.envelope, "pages-seal-key", services.clock())
    try:
        return Pages(settings, key, services.clock)
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"ISSUER_BRAND_LOGO_FILE: {exc}") from None
