"""Schemathesis over every operation of /openapi.json, on SQLite and PostgreSQL (issue 7 §4).

Each operation is fuzzed with schema-valid and schema-violating requests, without credentials
and with the credentials it asks for (an admin client_credentials token for /admin, a user's
token for /account and /userinfo, HTTP Basic for /oauth2), against the real app over ASGI.
Every response must be documented: no 5xx, a status the operation lists, its media type and
body schema, its headers. Generation is derandomised and bounded (``max_examples`` per
operation), and Hypothesis keeps no example database, so a run is reproducible and writes nothing.

Excluded from the authenticated run, because they would make the rest meaningless: the admin
client's own id and the signing key ids are never used as path parameters (deleting the admin
client, or revoking the key that signed the admin token, would turn every later admin request
into a 401). Random ids still reach those operations, and a victim client and user (not the
caller) are used as real ids so the 200 paths of the client and user operations are fuzzed too.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, configuration, given, reject, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from issuer.accounts.users import NewUser
from tests.conftest import OPERATOR, make_client, services_of
from tests.test_admin_api import client_token
from tests.users_helpers import first_party, login

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
# Examples per operation and generation mode; the authenticated runs reach deeper, so get more. Was 15 / 50
# (about 3,000 requests per backend, ~65 s on an idle 2-core machine); 10 / 30 give about 1,800.
ANONYMOUS_EXAMPLES = 10
AUTHENTICATED_EXAMPLES = 30
MIN_REQUESTS = 1200
_REQUEST_FIELDS = ("method", "url", "headers", "files", "data", "params", "auth", "cookies", "json")


@dataclass
class Tally:
    requests: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    failures: dict[tuple[str, int, str], str] = field(default_factory=dict)

    def record(self, label: str, status: int, problem: str) -> None:
        kind = problem.strip().splitlines()[0][:160] if problem.strip() else "failure"
        self.failures.setdefault((label, status, kind), problem[:800])

    def record_failures(self, label: str, status: int, exc: BaseException) -> None:
        """One entry per schemathesis check that failed, e.g. "Undocumented status code"."""
        failures = exc.exceptions if isinstance(exc, BaseExceptionGroup) else [exc]
        for failure in failures:
            title = getattr(failure, "title", type(failure).__name__)
            message = " ".join(str(getattr(failure, "message", failure)).split())
            self.record(label, status, f"{title}: {message}")

    def report(self) -> str:
        lines = [f"{label} -> {status}: {kind}" for label, status, kind in sorted(self.failures)]
        lines.append("(declare each status in the handler's @documented(...), or fix the handler that answered it)")
        detail = next(iter(self.failures.values()), "")
        return "undocumented or non-conforming responses:\n  " + "\n  ".join(lines) + f"\nfirst in full:\n{detail}"


@dataclass
class Credentials:
    admin: dict[str, str]
    user: dict[str, str]
    client: dict[str, str]
    ids: dict[str, str]

    def for_operation(self, path: str) -> dict[str, str]:
        if path.startswith("/admin/"):
            return self.admin
        if path.startswith(("/account/", "/userinfo")):
            return self.user
        if path.startswith("/oauth2/"):
            return self.client
        return {}


async def credentials(http: httpx.AsyncClient) -> Credentials:
    admin_id, admin_secret = await make_client(http, name="operator", scopes=("issuer:admin",))
    assert admin_secret is not None
    admin_token = await client_token(http, admin_id, admin_secret)
    app = await first_party(http)
    # aud must name the issuer for /account and /userinfo to accept it (RFC 9068 §4)
    user_token = (await login(http, app, "fuzzer", resource=services_of(http).settings.url))["access_token"]
    service_id, service_secret = await make_client(
        http, name="service", grant_types=("client_credentials", "password", "refresh_token")
    )
    basic = base64.b64encode(f"{service_id}:{service_secret}".encode()).decode()
    victim_client, _ = await make_client(http, name="victim")
    victim = await services_of(http).ops.users.create(OPERATOR, NewUser("victim", "password-123", "victim@example.com"))
    return Credentials(
        admin={"Authorization": f"Bearer {admin_token}"},
        user={"Authorization": f"Bearer {user_token}"},
        client={"Authorization": f"Basic {basic}"},
        ids={"client_id": victim_client, "user_id": victim.user_id},
    )


def _sender(http: httpx.AsyncClient, loop: asyncio.AbstractEventLoop) -> Callable[[requests.PreparedRequest], Any]:
    async def send(prepared: requests.PreparedRequest) -> httpx.Response:
        return await http.request(
            str(prepared.method),
            str(prepared.url),
            # requests may hold str or bytes header values; httpx encodes either at runtime
            headers=list(prepared.headers.items()),  # type: ignore[arg-type]
            content=prepared.body,  # type: ignore[arg-type]
            follow_redirects=False,
        )

    return lambda prepared: asyncio.run_coroutine_threadsafe(send(prepared), loop).result(timeout=30)


def fuzz_operation(
    operation: Any,
    mode: GenerationMode,
    examples: int,
    headers: dict[str, str],
    path_parameters: dict[str, str],
    send: Callable[[requests.PreparedRequest], httpx.Response],
    tally: Tally,
) -> None:
    strategy = operation.as_strategy(
        generation_mode=mode, headers=headers or None, path_parameters=path_parameters or None
    )

    @settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def run(case: Any) -> None:
        kwargs = case.as_transport_kwargs(base_url="http://testserver")
        try:
            prepared = requests.Request(**{k: v for k, v in kwargs.items() if k in _REQUEST_FIELDS}).prepare()
        except (ValueError, requests.RequestException):
            reject()  # not sendable over HTTP at all (e.g. a header value requests refuses)
        try:
            response = send(prepared)
        except (httpx.InvalidURL, UnicodeEncodeError, httpx.LocalProtocolError):
            reject()
        except Exception as exc:  # noqa: BLE001 - the in-process transport re-raises what became a 500
            tally.requests += 1
            tally.statuses[500] += 1
            tally.record(operation.label, 500, f"server error: {type(exc).__name__}: {exc}")
            return
        tally.requests += 1
        tally.statuses[response.status_code] += 1
        try:
            case.validate_response(response, checks=CHECKS)
        except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - collected, reported at the end
            tally.record_failures(operation.label, response.status_code, exc)

    try:
        run()
    except Unsatisfiable:
        pass  # nothing to negate (an operation without parameters or body): the positive run covers it


def fuzz_schema(document: dict[str, Any], creds: Credentials, send: Callable[..., httpx.Response]) -> Tally:
    schema = schemathesis.openapi.from_dict(document)
    tally = Tally()
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            raise result.err()
        operation = result.ok()
        path_ids = {k: v for k, v in creds.ids.items() if "{" + k + "}" in operation.path}
        auth = creds.for_operation(operation.path)
        runs: list[tuple[dict[str, str], dict[str, str], int]] = [({}, {}, ANONYMOUS_EXAMPLES)]
        if auth:
            runs.append((auth, {}, AUTHENTICATED_EXAMPLES))
        if auth and path_ids:
            runs.append((auth, path_ids, AUTHENTICATED_EXAMPLES))
        for headers, ids, examples in runs:
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                fuzz_operation(operation, mode, examples, headers, ids, send, tally)
    return tally


@pytest.fixture(autouse=True)
def hypothesis_home_outside_the_repository(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Hypothesis caches what it learns under ./.hypothesis; keep even that out of the checkout."""
    previous = configuration.storage_directory(intent_to_write=False).home_directory
    configuration.set_hypothesis_home_dir(tmp_path_factory.mktemp("hypothesis"))
    yield
    configuration.set_hypothesis_home_dir(previous)


@pytest.mark.timeout(180)
async def test_fuzzing_every_operation_finds_no_server_error_and_no_undocumented_response(
    http: httpx.AsyncClient, database_url: str
) -> None:
    backend = "postgres" if database_url.startswith("postgres") else "sqlite"
    creds = await credentials(http)
    document = (await http.get("/openapi.json")).json()
    started = time.monotonic()
    send = _sender(http, asyncio.get_running_loop())
    tally = await asyncio.to_thread(fuzz_schema, document, creds, send)
    elapsed = time.monotonic() - started
    server_errors = sum(n for status, n in tally.statuses.items() if status >= 500)
    statuses = ", ".join(f"{s}: {n}" for s, n in sorted(tally.statuses.items()))
    print(f"\nfuzz [{backend}]: {tally.requests} requests in {elapsed:.1f} s, {server_errors} 5xx ({statuses})")
    assert not tally.failures, tally.report()
    assert server_errors == 0
    assert tally.requests >= MIN_REQUESTS, f"only {tally.requests} requests were fuzzed"
