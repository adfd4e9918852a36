"""Reading request bodies strictly: content type, size limit, encoding, structure."""

from __future__ import annotations

import json
from typing import Any, TypeVar
from urllib.parse import unquote_plus

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails
from starlette.requests import ClientDisconnect, Request
from starlette.types import Receive

from issuer.errors import BodyTooLarge as BodyTooLargeError
from issuer.errors import InvalidRequest, ProblemError
from issuer.http.scope import header
from issuer.oauth.params import Params

_MAX_FIELDS = 64
# No endpoint takes JSON deeper than a list inside an object; 32 leaves room and keeps the
# walk below cheap. (json.loads itself recurses: 5,000 levels raise RecursionError.)
_MAX_JSON_DEPTH = 32

M = TypeVar("M", bound=BaseModel)


class BodyTooLarge(Exception):
    pass


async def read_body(request: Request, limit: int) -> bytes:
    return await receive_body(header(request.scope, b"content-length"), request.receive, limit)


async def receive_body(declared: str | None, receive: Receive, limit: int) -> bytes:
    """The whole body from ASGI ``receive``, refusing more than ``limit`` bytes (declared or sent);
    ClientDisconnect if the client hangs up first."""
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _media_type(request: Request) -> tuple[str, dict[str, str]]:
    return media_type(header(request.scope, b"content-type") or "")


def media_type(raw: str) -> tuple[str, dict[str, str]]:
    media, _, rest = raw.partition(";")
    options = {}
    for part in rest.split(";"):
        key, _, value = part.strip().partition("=")
        if key:
            options[key.lower()] = value.strip('"').lower()
    return media.strip().lower(), options


async def read_form(request: Request, limit: int) -> Params:
    scope = request.scope
    content_type, length = header(scope, b"content-type"), header(scope, b"content-length")
    return await receive_form(content_type or "", length, request.receive, limit)


async def receive_form(content_type: str, declared: str | None, receive: Receive, limit: int) -> Params:
    """An application/x-www-form-urlencoded (UTF-8) body as Params, or InvalidRequest / BodyTooLarge."""
    media, options = media_type(content_type)
    if media != "application/x-www-form-urlencoded" or options.get("charset", "utf-8") != "utf-8":
        raise InvalidRequest("the body must be application/x-www-form-urlencoded (UTF-8)")
    try:
        body = await receive_body(declared, receive, limit)
    except BodyTooLarge:
        raise BodyTooLargeError(f"the body exceeds {limit} bytes") from None
    try:
        pairs = parse_form(body.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        raise InvalidRequest("the body is not valid form encoding") from None
    if any("\x00" in n or "\x00" in v for n, v in pairs):
        raise InvalidRequest("the body contains NUL characters")
    return Params(pairs)


def parse_form(text: str) -> list[tuple[str, str]]:
    """``urllib.parse.parse_qsl(text, keep_blank_values=True, max_num_fields=_MAX_FIELDS,
    errors="strict")``, several times faster on the usual bodies: a component without ``%`` or
    ``+`` needs no decoding. ValueError beyond _MAX_FIELDS fields, UnicodeDecodeError for
    percent-escapes that are not UTF-8."""
    if text.count("&") >= _MAX_FIELDS:
        raise ValueError("too many fields")
    pairs = []
    for field in text.split("&"):
        if field:
            name, _, value = field.partition("=")
            pairs.append((form_decode(name), form_decode(value)))
    return pairs


def form_decode(component: str) -> str:
    """One application/x-www-form-urlencoded component (``+`` is a space), strict UTF-8."""
    return unquote_plus(component, errors="strict") if "%" in component or "+" in component else component


async def read_json(request: Request, limit: int) -> dict[str, Any]:
    media, _ = _media_type(request)
    if media != "application/json":
        raise ProblemError(415, "Unsupported Media Type", "the body must be application/json")
    try:
        body = await read_body(request, limit)
    except BodyTooLarge:
        raise ProblemError(413, "Content Too Large", f"the body exceeds {limit} bytes") from None
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ProblemError(400, "Bad Request", "the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ProblemError(400, "Bad Request", "the body must be a JSON object")
    if _depth(data) > _MAX_JSON_DEPTH:
        raise ProblemError(400, "Bad Request", f"the body is nested deeper than {_MAX_JSON_DEPTH} levels")
    if b"\\u" in body and not _encodable(data):
        # JSON may escape a lone UTF-16 surrogate ("\ud800"); no UTF-8 text, password or database can hold it.
        raise ProblemError(400, "Bad Request", "the body contains an unpaired surrogate escape")
    return data


def _encodable(data: object) -> bool:
    try:
        json.dumps(data, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        return False
    return True


def _depth(data: object) -> int:
    """How deeply objects and arrays nest; iterative, so no depth can exhaust the stack.
    (Strings are checked by each field's validation, which refuses NUL and control characters.)"""
    deepest, todo = 0, [(data, 1)]
    while todo:
        value, depth = todo.pop()
        if isinstance(value, dict | list):
            deepest = max(deepest, depth)
            if depth > _MAX_JSON_DEPTH:
                break
            todo.extend((item, depth + 1) for item in (value.values() if isinstance(value, dict) else value))
    return deepest


async def parse_body(request: Request, model: type[M], context: dict[str, Any] | None = None) -> M:
    """The JSON body as ``model`` (issuer.http.schemas), or a 4xx: 415 not application/json, 413
    too large, 400 not a JSON object, 422 with ``errors`` naming each invalid field (``body`` for
    unknown fields and for rules spanning several fields)."""
    data = await read_json(request, request.state.services.settings.max_body_bytes)
    try:
        return model.model_validate(data, strict=True, context=context)
    except ValidationError as exc:
        errors = field_errors(exc.errors(include_url=False, include_input=False))
        detail = "the request has invalid fields: " + "; ".join(f"{k}: {v}" for k, v in errors.items())
        raise ProblemError(422, "Unprocessable Content", detail, errors=errors) from None


def field_errors(details: list[ErrorDetails]) -> dict[str, str]:
    """One message per top-level field, the first found."""
    errors: dict[str, str] = {}
    unknown: list[str] = []
    for error in details:
        loc = error["loc"]
        if error["type"] == "extra_forbidden":
            unknown.append(str(loc[0])[:64])
            continue
        message = "required" if error["type"] == "missing" else error["msg"]
        if len(loc) > 1:
            message = f"item {loc[1]}: {message}" if isinstance(loc[1], int) else message
        errors.setdefault(str(loc[0])[:64] if loc else "body", message)
    if unknown:
        errors["body"] = f"unknown field(s): {', '.join(unknown[:10])}"
    return errors
