"""create_app(settings): routes, middleware, error rendering, and a lifespan that opens Services
and runs the background jobs (keyring refresh, change notifications, key schedule, sweeps)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.routing import Route

from issuer.errors import OAuthError, ProblemError, ServiceUnavailable
from issuer.http import admin, consents, discovery, oauth, openapi, sessions, swagger, token, users
from issuer.http.forwarded import TrustedProxies
from issuer.http.lean import LeanJSON
from issuer.http.middleware import AllowedMethods, BrowserCORS, Front, RequestMiddleware
from issuer.http.responses import (
    handle_http_exception,
    handle_oauth_error,
    handle_problem,
    handle_unavailable,
    handle_unexpected,
)
from issuer.http.routing import IndexedRouter
from issuer.operations import SCHEDULER
from issuer.operations.docs_client import DOCS_REDIRECT_PATH, ensure_docs_client
from issuer.pages import open_pages
from issuer.pages.routes import page_routes
from issuer.retention import Retention, RetentionPolicy
from issuer.services import Clock, Services, open_services
from issuer.settings import Settings
from issuer.startup import started_fields

log = logging.getLogger("issuer")


# Endpoints a web page may call (CORS). Introspection is for resource servers, which are not
# browsers; /admin and /account are never exposed to scripts of another origin.
BROWSER_PATHS = frozenset(
    {
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
        "/.well-known/jwks.json",
        "/oauth2/token",
        "/oauth2/revoke",
        "/userinfo",
    }
)


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
        Route("/account/sessions", sessions.list_my_sessions, methods=["GET"]),
        Route("/account/sessions/{session_id}", sessions.end_my_session, methods=["DELETE"]),
        Route("/account/consents", consents.list_my_consents, methods=["GET"]),
        Route("/account/consents/{client_id}", consents.withdraw_my_consent, methods=["DELETE"]),
        Route("/admin/keys", admin.list_keys, methods=["GET"]),
        Route("/admin/keys/rotate", admin.rotate_keys, methods=["POST"]),
        Route("/admin/keys/{kid}/revoke", admin.revoke_key, methods=["POST"]),
        Route("/admin/clients", admin.list_clients, methods=["GET"]),
        Route("/admin/clients", admin.create_client, methods=["POST"]),
        Route("/admin/clients/{client_id}", admin.get_client, methods=["GET"]),
        Route("/admin/clients/{client_id}", admin.update_client, methods=["PATCH"]),
        Route("/admin/clients/{client_id}", admin.delete_client, methods=["DELETE"]),
        Route("/admin/clients/{client_id}/secret", admin.rotate_client_secret, methods=["POST"]),
        Route("/admin/users", admin.list_users, methods=["GET"]),
        Route("/admin/users/{user_id}", admin.get_user, methods=["GET"]),
        Route("/admin/users/{user_id}/roles", admin.set_user_roles, methods=["PUT"]),
        Route("/admin/users/{user_id}/disable", admin.disable_user, methods=["POST"]),
        Route("/admin/users/{user_id}/enable", admin.enable_user, methods=["POST"]),
        Route("/admin/users/{user_id}/sessions/revoke", admin.revoke_user_sessions, methods=["POST"]),
        Route("/admin/users/{user_id}/sessions", admin.list_user_browser_sessions, methods=["GET"]),
        Route("/admin/users/{user_id}/sessions", admin.end_user_browser_sessions, methods=["DELETE"]),
        Route("/admin/users/{user_id}/consents", admin.list_user_consents, methods=["GET"]),
        Route("/admin/users/{user_id}/consents/{client_id}", admin.withdraw_user_consent, methods=["DELETE"]),
        Route(
            "/admin/users/{user_id}/sessions/{session_id}", admin.end_user_browser_session, methods=["DELETE"]
        ),
        Route("/admin/audit", admin.list_audit, methods=["GET"]),
        Route("/healthz", discovery.healthz, methods=["GET"]),
        Route("/readyz", discovery.readyz, methods=["GET"]),
        Route("/metrics", discovery.metrics, methods=["GET"]),
        Route("/openapi.json", openapi.openapi_endpoint, methods=["GET"]),
        # Swagger UI: HTML and files for browsers, left out of /openapi.json like the hosted pages
        Route("/docs", swagger.docs, methods=["GET"], include_in_schema=False),
        Route(DOCS_REDIRECT_PATH, swagger.docs_oauth2_redirect, methods=["GET"], include_in_schema=False),
        *(
            Route(f"/docs/{name}", swagger.docs_asset, methods=["GET"], include_in_schema=False)
            for name in swagger.ASSETS
        ),
        *page_routes(),
    ]


async def _every(seconds: float, job: Callable[[], Awaitable[Any]], name: str) -> None:
    while True:
        await asyncio.sleep(seconds)
        try:
            await job()
        except ServiceUnavailable as exc:
            # An outage is not a bug: one line per tick, no traceback.
            log.warning("background job %s: %s; will retry", name, type(exc.__cause__ or exc).__name__)
        except Exception:  # noqa: BLE001 - a background job must outlive a failed run
            log.exception("background job %s failed; will retry", name)


def retention(services: Services) -> Retention:
    settings, store = services.settings, services.store
    return Retention(
        store.db,
        store,
        store,
        store,
        RetentionPolicy(settings.audit_retention_days, settings.refresh_reuse_grace, settings.clock_skew),
        services.clock,
        on_deleted=lambda kind, n: services.metrics.retention_deleted.labels(kind).inc(n),
        sessions=store,
        codes=store,
    )


def _background(services: Services) -> list[asyncio.Task[None]]:
    settings = services.settings
    tick = settings.keyring_refresh_interval
    jobs: list[tuple[float, Callable[[], Awaitable[Any]], str]] = [
        (tick, services.keyring.refresh, "keyring"),
        (settings.retention_sweep_interval, retention(services).sweep, "retention"),
        (min(tick, 10.0), services.ops.keys.run_schedule_once, "key-schedule"),
    ]
    if services.redis is None:
        # Without Redis, other processes' revocations reach this one's cache by polling.
        jobs.append((tick, services.revocations.cache.warm, "revocations"))
    else:
        # With Redis, polling still bounds what a failed cache write on another instance hides.
        jobs.append((tick, services.revocations.poll, "revocations"))
    tasks = [asyncio.create_task(_every(seconds, job, name)) for seconds, job, name in jobs]
    tasks.append(asyncio.create_task(services.bus.listen(services.on_notification)))
    return tasks


def create_app(settings: Settings, *, clock: Clock = time.time) -> Starlette:
    holder: dict[str, Services] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        services = await open_services(settings, clock=clock)
        try:
            await services.ops.keys.ensure_initial(SCHEDULER)
            await ensure_docs_client(services.ops.clients, settings)
            await services.keyring.refresh()
            await services.revocations.cache.warm()
            pages = await open_pages(services)
            holder["services"] = services
            tasks = _background(services)
            log.info("started", extra=started_fields(services))
            try:
                yield {"services": services, "pages": pages}
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            holder.pop("services", None)
            await services.close()

    route_list = routes()
    front = Front(
        metrics=lambda: holder["services"].metrics if "services" in holder else None,
        max_body=settings.max_body_bytes,
        https=settings.url.startswith("https://"),
        proxies=TrustedProxies(settings.forwarded_allow_ips, trust_peer=settings.trust_forwarded_for),
    )
    middleware = [Middleware(RequestMiddleware, front=front)]
    if settings.cors_origins:
        middleware.append(
            Middleware(
                BrowserCORS,
                paths=BROWSER_PATHS,
                origins=settings.cors_origins,
            )
        )
    middleware.append(Middleware(AllowedMethods, routes=route_list))
    app = Starlette(
        routes=route_list,
        middleware=middleware,
        lifespan=lifespan,
        exception_handlers={
            OAuthError: handle_oauth_error,
            ProblemError: handle_problem,
            HTTPException: handle_http_exception,
            ServiceUnavailable: handle_unavailable,
            Exception: handle_unexpected,
        },
    )
    # The same routes, found without trying each in turn; and no redirect of /path/ to /path
    # (Starlette would build its Location from the Host header).
    app.router = IndexedRouter(route_list, lifespan=lifespan, redirect_slashes=False)
    # The hot endpoints are answered outside the stack Starlette builds (issuer.http.lean).
    app.middleware_stack = LeanJSON(
        app.build_middleware_stack(),
        front,
        endpoints={"/oauth2/token": token.LEAN, "/oauth2/introspect": oauth.LEAN},
        gets=discovery.LEAN_GETS,
        cors_paths=BROWSER_PATHS if settings.cors_origins else frozenset(),
    )
    return app
