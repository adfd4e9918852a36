"""create_app(settings): routes, error rendering, and a lifespan that opens Services."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.routing import Route

from issuer.errors import OAuthError, ProblemError
from issuer.http import discovery, oauth, openapi, token, users
from issuer.http.responses import handle_http_exception, handle_oauth_error, handle_problem, handle_unexpected
from issuer.services import Clock, Services, open_services
from issuer.settings import Settings

log = logging.getLogger("issuer")


def routes() -> list[Route]:
    return [
        Route("/.well-known/oauth-authorization-server", discovery.oauth_metadata, methods=["GET"]),
        Route("/.well-known/openid-configuration", discovery.oauth_metadata, methods=["GET"]),
        Route("/.well-known/jwks.json", discovery.jwks, methods=["GET"]),
        Route("/oauth2/token", token.token, methods=["POST"]),
        Route("/oauth2/revoke", oauth.revoke, methods=["POST"]),
        Route("/oauth2/introspect", oauth.introspect, methods=["POST"]),
        Route("/userinfo", users.userinfo, methods=["GET", "POST"]),
        Route("/register", users.register, methods=["POST"]),
        Route("/account/password", users.change_password, methods=["POST"]),
        Route("/account/deactivate", users.deactivate, methods=["POST"]),
        Route("/healthz", discovery.healthz, methods=["GET"]),
        Route("/readyz", discovery.readyz, methods=["GET"]),
        Route("/openapi.json", openapi.openapi_endpoint, methods=["GET"]),
    ]


async def _every(seconds: float, job: Callable[[], Awaitable[Any]], name: str) -> None:
    while True:
        await asyncio.sleep(seconds)
        try:
            await job()
        except Exception:  # noqa: BLE001 - a background job must outlive a failed run
            log.exception("background job %s failed; will retry", name)


def create_app(settings: Settings, *, clock: Clock = time.time) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        services = await open_services(settings, clock=clock)
        try:
            await services.keys.ensure_initial()
            await services.keyring.refresh()
            await services.revocations.cache.warm()
            tasks = [
                asyncio.create_task(_every(settings.keyring_refresh_interval, services.keyring.refresh, "keyring")),
                asyncio.create_task(_every(max(1, settings.refresh_reuse_grace), services.refresh_tokens.sweep, "sweep")),
            ]
            if services.redis is None:
                # Without Redis, other processes' revocations reach this one's cache by polling.
                warm = services.revocations.cache.warm
                tasks.append(asyncio.create_task(_every(settings.keyring_refresh_interval, warm, "revocations")))
            try:
                yield {"services": services}
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            await services.close()

    return Starlette(
        routes=routes(),
        lifespan=lifespan,
        exception_handlers={
            OAuthError: handle_oauth_error,
            ProblemError: handle_problem,
            HTTPException: handle_http_exception,
            Exception: handle_unexpected,
        },
    )
