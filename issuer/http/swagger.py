"""GET /docs: Swagger UI on /openapi.json, served from the swagger-ui-py package's files (no CDN:
it works offline) under a Content-Security-Policy with no inline script. Its initializer is a file
of ours configured through data- attributes, and GET /docs/oauth2-redirect completes the
"Authorize" popup (authorization code + PKCE, RFC 7636) with the docs client, when it exists."""

from __future__ import annotations

import html
import importlib.util
from pathlib import Path
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response

from issuer.operations.docs_client import DOCS_REDIRECT_PATH
from issuer.services import Services


def _package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)  # located, not imported: only its files are used
    if spec is None or spec.origin is None:
        raise RuntimeError(f"the {package} package is not installed")
    return Path(spec.origin).parent


_SWAGGER = _package_dir("swagger_ui") / "static"
_OURS = Path(__file__).parent / "swagger_static"

# Every file /docs serves (as /docs/<name>): nothing else of either directory is reachable.
ASSETS: dict[str, tuple[Path, str]] = {
    "swagger-ui.css": (_SWAGGER / "swagger-ui.css", "text/css"),
    "index.css": (_SWAGGER / "index.css", "text/css"),
    "swagger-ui-bundle.js": (_SWAGGER / "swagger-ui-bundle.js", "text/javascript"),
    "favicon-32x32.png": (_SWAGGER / "favicon-32x32.png", "image/png"),
    "swagger-initializer.js": (_OURS / "swagger-initializer.js", "text/javascript"),
    "oauth2-redirect.js": (_OURS / "oauth2-redirect.js", "text/javascript"),
}
_REDIRECT_PAGE = _OURS / "oauth2-redirect.html"
_ASSET_MAX_AGE = 86400


def content_security_policy(issuer_url: str) -> str:
    """Scripts and styles from this origin only; Swagger UI calls the API at the issuer URL, and
    its stylesheet embeds its icons as data: URIs. (React sets styles through the CSSOM, which
    `style-src 'self'` allows.)"""
    parts = urlsplit(issuer_url)
    origin = f"{parts.scheme}://{parts.netloc}"
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        f"connect-src 'self' {origin}; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )


def _page(openapi_url: str, redirect_url: str, client_id: str) -> str:
    attrs = {"openapi-url": openapi_url, "oauth2-redirect-url": redirect_url, "client-id": client_id}
    data = " ".join(f'data-{name}="{html.escape(value)}"' for name, value in attrs.items())
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>issuer API</title>
<link rel="stylesheet" href="docs/swagger-ui.css">
<link rel="stylesheet" href="docs/index.css">
<link rel="icon" type="image/png" href="docs/favicon-32x32.png" sizes="32x32">
</head>
<body>
<noscript><p>The interactive documentation needs JavaScript. The OpenAPI document is at
<a href="openapi.json">/openapi.json</a>.</p></noscript>
<div id="swagger-ui" {data}></div>
<script src="docs/swagger-ui-bundle.js"></script>
<script src="docs/swagger-initializer.js"></script>
</body>
</html>
"""


def _headers(request: Request, cache: str) -> dict[str, str]:
    services: Services = request.state.services
    return {"Content-Security-Policy": content_security_policy(services.settings.url), "Cache-Control": cache}


async def docs(request: Request) -> Response:
    services: Services = request.state.services
    settings = services.settings
    client_id = settings.docs_client_id
    # Preconfigured only when the client exists, so "Authorize" never starts with an unknown client.
    client = await services.clients.get(client_id) if client_id else None
    usable = client is not None and not client.disabled
    page = _page("openapi.json", settings.endpoint(DOCS_REDIRECT_PATH), client_id if usable else "")
    return HTMLResponse(page, headers=_headers(request, "no-cache"))


async def docs_oauth2_redirect(request: Request) -> Response:
    return FileResponse(_REDIRECT_PAGE, media_type="text/html", headers=_headers(request, "no-cache"))


async def docs_asset(request: Request) -> Response:
    path, media = ASSETS[request.scope["path"].rsplit("/", 1)[1]]
    return FileResponse(path, media_type=media, headers=_headers(request, f"public, max-age={_ASSET_MAX_AGE}"))
