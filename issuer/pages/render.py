"""The pages' Jinja2 environment (autoescaped, templates overridable from a directory), their
static files, cookies and security headers: a strict CSP without inline script or style,
``frame-ancestors 'none'``, ``Cache-Control: no-store``."""

from __future__ import annotations

import functools
import hashlib
import mimetypes
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from issuer.pages.seal import Seal, new_browser_token
from issuer.settings import Settings

if TYPE_CHECKING:
    from jinja2 import Environment

_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action {form_action}; frame-ancestors 'none'; base-uri 'none'"
)
PAGE_HEADERS = {"Cache-Control": "no-store", "Pragma": "no-cache", "X-Frame-Options": "DENY"}
_LOGO_TYPES = {".svg": "image/svg+xml", ".png": "image/png", ".webp": "image/webp"}


@dataclass(frozen=True)
class StaticFile:
    body: bytes
    media_type: str
    etag: str


def _static(body: bytes, media_type: str) -> StaticFile:
    return StaticFile(body, media_type, '"' + hashlib.sha256(body).hexdigest()[:32] + '"')


def _static_files(settings: Settings) -> dict[str, StaticFile]:
    package = resources.files("issuer.pages") / "static"
    files = {
        "pages.css": _static(package.joinpath("pages.css").read_bytes(), "text/css; charset=utf-8"),
        "logo": _static(package.joinpath("logo.svg").read_bytes(), "image/svg+xml"),
        "theme.css": _static(
            (
                f":root{{--brand:{settings.brand_color};--background:{settings.brand_background};}}\n"
            ).encode(),
            "text/css; charset=utf-8",
        ),
    }
    logo = settings.brand_logo_file
    if logo is not None:
        media = _LOGO_TYPES.get(logo.suffix.lower()) or mimetypes.guess_type(logo.name)[0] or ""
        if not media.startswith("image/"):
            raise ValueError(f"ISSUER_BRAND_LOGO_FILE must be one of {', '.join(_LOGO_TYPES)}: {logo}")
        files["logo"] = _static(logo.read_bytes(), media)
    return files


def origin_of(uri: str) -> str:
    parts = urlsplit(uri)
    return f"{parts.scheme}://{parts.netloc}"


class Pages:
    """What the page handlers share; built once in the app's lifespan."""

    def __init__(self, settings: Settings, key: bytes, clock: Callable[[], float]) -> None:
        self.settings = settings
        self.seal = Seal(key, clock)
        self.static = _static_files(settings)
        https = settings.url.startswith("https://")
        # Browsers refuse a __Host- cookie that is not Secure, and plain-http loopback development
        # cannot set Secure ones: there the cookies go without the prefix.
        prefix = "__Host-" if https else ""
        self.secure = https
        self.session_cookie = prefix + "issuer-session"
        self.csrf_cookie = prefix + "issuer-csrf"

    @functools.cached_property
    def env(self) -> Environment:
        """Built at the first page rendered: Jinja2 (about 2 MB) stays out of processes serving only APIs."""
        from jinja2 import (
            ChoiceLoader,
            Environment,
            FileSystemLoader,
            PackageLoader,
            StrictUndefined,
            select_autoescape,
        )

        loaders: list[Any] = [PackageLoader("issuer.pages", "templates")]
        if self.settings.templates_dir is not None:
            loaders.insert(0, FileSystemLoader(str(self.settings.templates_dir)))
        return Environment(
            loader=ChoiceLoader(loaders), autoescape=select_autoescape(default=True), undefined=StrictUndefined
        )

    def browser(self, request: Request) -> tuple[str, bool]:
        """This browser's CSRF cookie value, and whether it is new (to be set on the response)."""
        known = request.cookies.get(self.csrf_cookie, "")
        if 20 <= len(known) <= 100:
            return known, False
        return new_browser_token(), True

    def set_cookie(self, response: Response, name: str, value: str, max_age: int | None = None) -> None:
        response.set_cookie(
            name, value, max_age=max_age, path="/", secure=self.secure, httponly=True, samesite="lax"
        )

    def clear_cookie(self, response: Response, name: str) -> None:
        response.delete_cookie(name, path="/", secure=self.secure, httponly=True, samesite="lax")

    def render(
        self,
        template: str,
        status: int = 200,
        *,
        browser: tuple[str, bool] | None = None,
        redirects_to: Iterable[str] = (),
        **context: Any,
    ) -> Response:
        """The page; ``browser`` (from ``browser()``) adds the CSRF token and sets a new cookie;
        ``redirects_to`` are URIs a form on the page may end up redirected to (CSP form-action
        applies to redirects too)."""
        if browser is not None:
            context["csrf"] = self.seal.csrf_token(browser[0])
        settings = self.settings
        context.setdefault("signup", settings.open_registration)
        html = self.env.get_template(template).render(product=settings.product_name, **context)
        form_action = " ".join(["'self'", *sorted({origin_of(uri) for uri in redirects_to})])
        headers = {**PAGE_HEADERS, "Content-Security-Policy": _CSP.format(form_action=form_action)}
        response = HTMLResponse(html, status, headers)
        if browser is not None and browser[1]:
            self.set_cookie(response, self.csrf_cookie, browser[0])
        return response

    def error(self, status: int, error: str, description: str, **context: Any) -> Response:
        context.setdefault("title", "Sign-in problem")
        description = sentence(description)
        return self.render("error.html", status, error=error, description=description, **context)


def sentence(text: str) -> str:
    """A protocol message ("unknown client") as a sentence for a person ("Unknown client.")."""
    text = text.strip()
    if not text:
        return text
    return text[0].upper() + text[1:] + ("" if text[-1] in ".!?" else ".")


def redirect(location: str, headers: dict[str, str] | None = None) -> Response:
    return Response(status_code=303, headers={**PAGE_HEADERS, "Location": location, **(headers or {})})


async def static(request: Request) -> Response:
    pages: Pages = request.state.pages
    found = pages.static.get(request.path_params["name"])
    if found is None:
        return Response("not found", 404, media_type="text/plain")
    headers = {"ETag": found.etag, "Cache-Control": "public, max-age=3600"}
    if request.headers.get("if-none-match") == found.etag:
        return Response(status_code=304, headers=headers)
    return Response(found.body, 200, headers, found.media_type)
