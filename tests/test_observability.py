"""Operations visibility: Prometheus metrics, secret-free structured logs, readiness probes."""

from __future__ import annotations

import asyncio
import logging
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from prometheus_client.parser import text_string_to_metric_families

from issuer.observability.logs import JsonFormatter
from issuer.settings import Settings
from tests.conftest import FakeClock, make_client, running_app, services_of
from tests.servers import free_port

TOKEN = "/oauth2/token"
PASSWORD = "a long and secret passphrase"
WRONG_PASSWORD = "a wrong guess of the passphrase"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(http: httpx.AsyncClient) -> Samples:
    response = await http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert response.headers["cache-control"] == "no-store"
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """Sum over every series of ``name`` whose labels include ``labels``."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


async def admin_token(http: httpx.AsyncClient) -> tuple[str, str]:
    cid, secret = await make_client(http, name="operator", scopes=("issuer:admin",))
    assert secret is not None
    response = await http.post(TOKEN, data={"grant_type": "client_credentials"}, auth=(cid, secret))
    assert response.status_code == 200
    return cid, response.json()["access_token"]


# -- metrics ---------------------------------------------------------------------------------


async def test_token_metrics_by_grant_client_and_error(client: httpx.AsyncClient, clock: FakeClock) -> None:
    svc_id, svc_secret = await make_client(client, name="svc", scopes=("read",))
    app_id, app_secret = await make_client(client, name="app", grant_types=("password", "refresh_token"))
    assert svc_secret is not None and app_secret is not None
    reg = await client.post("/register", json={"username": "metric-user", "password": PASSWORD})
    assert reg.status_code == 201

    for _ in range(3):
        assert (
            await client.post(TOKEN, data={"grant_type": "client_credentials"}, auth=(svc_id, svc_secret))
        ).status_code == 200
    login = await client.post(
        TOKEN,
        data={"grant_type": "password", "username": "metric-user", "password": PASSWORD},
        auth=(app_id, app_secret),
    )
    assert login.status_code == 200
    first_refresh = login.json()["refresh_token"]
    rotated = await client.post(
        TOKEN, data={"grant_type": "refresh_token", "refresh_token": first_refresh}, auth=(app_id, app_secret)
    )
    assert rotated.status_code == 200

    errors = [
        (await client.post(TOKEN, data={"grant_type": "client_credentials"}, auth=(svc_id, "wrong"))).json()["error"],
        (await client.post(TOKEN, data={"grant_type": "client_credentials"}, auth=("nobody", "x"))).json()["error"],
        (await client.post(TOKEN, data={"grant_type": "magic"}, auth=(svc_id, svc_secret))).json()["error"],
        (
            await client.post(
                TOKEN, data={"grant_type": "client_credentials", "scope": "write"}, auth=(svc_id, svc_secret)
            )
        ).json()["error"],
        (
            await client.post(
                TOKEN, data={"grant_type": "password", "username": "x", "password": "y"}, auth=(svc_id, svc_secret)
            )
        ).json()["error"],
        (
            await client.post(
                TOKEN,
                data={"grant_type": "password", "username": "metric-user", "password": WRONG_PASSWORD},
                auth=(app_id, app_secret),
            )
        ).json()["error"],
    ]
    assert errors == [
        "invalid_client",
        "invalid_client",
        "unsupported_grant_type",
        "invalid_scope",
        "unauthorized_client",
        "invalid_grant",
    ]

    samples = await scrape(client)
    issued = "issuer_tokens_issued_total"
    # no client_id label by default: its values would grow with the number of clients
    assert value(samples, issued, grant_type="client_credentials") == 3
    assert value(samples, issued, grant_type="password") == 1
    assert value(samples, issued, grant_type="refresh_token") == 1
    assert total(samples, issued) == 5
    assert not any(n == issued and "client_id" in dict(ls) for n, ls in samples)
    errs = "issuer_token_endpoint_errors_total"
    assert value(samples, errs, error="invalid_client") == 2
    assert value(samples, errs, error="unsupported_grant_type") == 1
    assert value(samples, errs, error="invalid_scope") == 1
    assert value(samples, errs, error="unauthorized_client") == 1
    assert value(samples, errs, error="invalid_grant") == 1
    assert value(samples, "issuer_refresh_reuse_detected_total") == 0

    # a consumed refresh token presented again after the retry grace: reuse, family revoked
    clock.advance(services_of(client).settings.refresh_reuse_grace + 1)
    reuse = await client.post(
        TOKEN, data={"grant_type": "refresh_token", "refresh_token": first_refresh}, auth=(app_id, app_secret)
    )
    assert reuse.status_code == 400 and reuse.json()["error"] == "invalid_grant"
    successor = await client.post(
        TOKEN,
        data={"grant_type": "refresh_token", "refresh_token": rotated.json()["refresh_token"]},
        auth=(app_id, app_secret),
    )
    assert successor.status_code == 400  # the whole family is gone
    samples = await scrape(client)
    assert value(samples, "issuer_refresh_reuse_detected_total") == 1
    assert value(samples, errs, error="invalid_grant") == 3
    assert total(samples, issued) == 5


async def test_key_metrics(client: httpx.AsyncClient, clock: FakeClock) -> None:
    _, token = await admin_token(client)
    headers = {"Authorization": f"Bearer {token}"}
    samples = await scrape(client)
    assert total(samples, "issuer_key_rotations_total") == 0
    assert value(samples, "issuer_signing_key_age_seconds") == pytest.approx(0, abs=1)
    assert value(samples, "issuer_signing_keys", state="active") == 1
    assert value(samples, "issuer_signing_keys", state="pending") == 1

    clock.advance(120)
    samples = await scrape(client)
    assert value(samples, "issuer_signing_key_age_seconds") == pytest.approx(120, abs=1)

    forced = await client.post("/admin/keys/rotate", params={"force": "true"}, headers=headers)
    assert forced.status_code == 200
    settings = services_of(client).settings
    clock.advance(settings.jwks_max_age + settings.clock_skew + settings.keyring_refresh_interval + 1)
    manual = await client.post("/admin/keys/rotate", headers=headers)
    assert manual.status_code == 200, manual.text
    refused = await client.post("/admin/keys/rotate", headers=headers)
    assert refused.status_code == 409
    clock.advance(30)
    samples = await scrape(client)
    assert value(samples, "issuer_key_rotations_total", kind="forced") == 1
    assert value(samples, "issuer_key_rotations_total", kind="manual") == 1
    assert total(samples, "issuer_key_rotations_total") == 2  # the refused attempt is not a rotation
    assert value(samples, "issuer_signing_key_age_seconds") == pytest.approx(30, abs=1)
    assert value(samples, "issuer_signing_keys", state="retired") == 2


async def test_request_latency_histogram_per_route(client: httpx.AsyncClient) -> None:
    cid, secret = await make_client(client)
    assert secret is not None
    for _ in range(4):
        await client.post(TOKEN, data={"grant_type": "client_credentials"}, auth=(cid, secret))
    await client.post(TOKEN, data={"grant_type": "client_credentials"}, auth=(cid, "wrong"))
    for _ in range(2):
        await client.get("/.well-known/jwks.json")
    await client.get("/no-such-page")

    samples = await scrape(client)
    name = "issuer_http_request_duration_seconds"
    assert value(samples, f"{name}_count", method="POST", route="token", status="200") == 4
    assert value(samples, f"{name}_count", method="POST", route="token", status="401") == 1
    assert value(samples, f"{name}_count", method="GET", route="jwks", status="200") == 2
    assert value(samples, f"{name}_count", method="GET", route="unmatched", status="404") == 1
    # a proper histogram: cumulative buckets ending in +Inf == count, and a sum
    buckets = sorted(
        ((float(dict(ls)["le"]), v) for (n, ls), v in samples.items()
         if n == f"{name}_bucket" and {("route", "token"), ("status", "200"), ("method", "POST")} <= ls),
    )
    assert len(buckets) >= 5
    assert [v for _, v in buckets] == sorted(v for _, v in buckets)
    assert buckets[-1] == (float("inf"), 4)
    assert value(samples, f"{name}_sum", method="POST", route="token", status="200") > 0


# -- logs ------------------------------------------------------------------------------------


def record_text(record: logging.LogRecord) -> str:
    """Everything a handler could write: the message, every extra, and the JSON line."""
    parts = [record.getMessage(), JsonFormatter().format(record)]
    parts.extend(repr(v) for v in record.__dict__.values())
    return "\n".join(parts)


async def test_logs_carry_no_secrets_and_one_line_per_request(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture, clock: FakeClock
) -> None:
    svc_id, svc_secret = await make_client(client, name="svc")
    app_id, app_secret = await make_client(client, name="app", grant_types=("password", "refresh_token"))
    assert svc_secret is not None and app_secret is not None
    caplog.set_level(logging.DEBUG, logger="issuer")
    caplog.clear()

    sent: list[tuple[str, str, int]] = []

    async def call(method: str, url: str, route: str, **kwargs: object) -> httpx.Response:
        response = await client.request(method, url, **kwargs)  # type: ignore[arg-type]
        sent.append((method, route, response.status_code))
        return response

    await call("POST", "/register", "register", json={"username": "logged-user", "password": PASSWORD})
    login = await call(
        "POST", TOKEN, "token",
        data={"grant_type": "password", "username": "logged-user", "password": PASSWORD,
              "client_id": app_id, "client_secret": app_secret},
    )
    assert login.status_code == 200
    refreshed = await call(
        "POST", TOKEN, "token",
        data={"grant_type": "refresh_token", "refresh_token": login.json()["refresh_token"]}, auth=(app_id, app_secret),
    )
    assert refreshed.status_code == 200
    cc = await call("POST", TOKEN, "token", data={"grant_type": "client_credentials"}, auth=(svc_id, svc_secret))
    assert cc.status_code == 200
    failed = await call(
        "POST",
        TOKEN,
        "token",
        data={"grant_type": "password", "username": "logged-user", "password": WRONG_PASSWORD},
        auth=(app_id, app_secret),
    )
    assert failed.status_code == 400
    bad_client = await call(
        "POST", TOKEN, "token", data={"grant_type": "client_credentials"}, auth=(svc_id, svc_secret + "x")
    )
    assert bad_client.status_code == 401
    await call("GET", "/userinfo", "userinfo", headers={"Authorization": f"Bearer {login.json()['access_token']}"})
    await call(
        "POST", "/oauth2/introspect", "introspect", data={"token": cc.json()["access_token"]}, auth=(svc_id, svc_secret)
    )
    # a token in a query string must not reach the log either
    await call("GET", f"/.well-known/jwks.json?access_token={cc.json()['access_token']}", "jwks")
    clock.advance(services_of(client).settings.refresh_reuse_grace + 1)
    reuse = await call(
        "POST", TOKEN, "token",
        data={"grant_type": "refresh_token", "refresh_token": login.json()["refresh_token"]}, auth=(app_id, app_secret),
    )
    assert reuse.status_code == 400
    await call(
        "POST", "/oauth2/revoke", "revoke", data={"token": refreshed.json()["refresh_token"]}, auth=(app_id, app_secret)
    )
    await call("GET", "/nowhere", "unmatched")

    secrets_ = {
        "svc secret": svc_secret,
        "app secret": app_secret,
        "password": PASSWORD,
        "wrong password": WRONG_PASSWORD,
    }
    for name, body in (("login", login), ("refresh", refreshed), ("client_credentials", cc)):
        data = body.json()
        secrets_[f"{name} access token"] = data["access_token"]
        secrets_[f"{name} access token signature"] = data["access_token"].rsplit(".", 1)[1]
        if "refresh_token" in data:
            secrets_[f"{name} refresh token"] = data["refresh_token"]

    records = [r for r in caplog.records if r.name == "issuer" or r.name.startswith("issuer.")]
    for record in records:
        text = record_text(record)
        for what, secret in secrets_.items():
            assert secret not in text, f"{what} appears in log record {record.name}: {record.getMessage()}"

    requests = [r for r in records if r.name == "issuer.access" and r.getMessage() == "request"]
    assert len(requests) == len(sent)
    for record, (method, route, status) in zip(requests, sent, strict=True):
        fields = record.__dict__
        assert (fields["method"], fields["route"], fields["status"]) == (method, route, status)
        assert isinstance(fields["duration_ms"], float | int) and fields["duration_ms"] >= 0
        assert "?" not in fields["path"]
    assert requests[-1].__dict__["path"] == "/nowhere"


# -- readiness -------------------------------------------------------------------------------


async def test_readyz_reports_the_database(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert response.json() == {"status": "ready", "checks": {"database": "ok"}}
    assert (await client.get("/healthz")).status_code == 200


@pytest.mark.redis
async def test_readyz_reports_redis(make_settings: Callable[..., Settings], sqlite_url: str, redis_url: str) -> None:
    async with running_app(make_settings(database_url=sqlite_url, redis_url=redis_url)) as http:
        response = await http.get("/readyz")
        assert response.status_code == 200, response.text
        assert response.json()["checks"] == {"database": "ok", "redis": "ok"}


@pytest.mark.redis
async def test_readyz_stays_ready_when_redis_is_unreachable(
    make_settings: Callable[..., Settings], sqlite_url: str
) -> None:
    """Redis is an accelerator: an outage is reported, but must not take every instance out of service."""
    closed = f"redis://127.0.0.1:{free_port()}/0"
    async with running_app(make_settings(database_url=sqlite_url, redis_url=closed)) as http:
        response = await http.get("/readyz")
        assert response.status_code == 200, response.text
        assert response.headers["cache-control"] == "no-store"
        assert response.json() == {"status": "ready", "checks": {"database": "ok", "redis": "degraded"}}
        # still alive, and still issuing tokens from the database alone
        assert (await http.get("/healthz")).status_code == 200
        cid, secret = await make_client(http)
        assert secret is not None
        token = await http.post(TOKEN, data={"grant_type": "client_credentials"}, auth=(cid, secret))
        assert token.status_code == 200


class OwnRedis:
    """A private redis-server on a fixed port, which the test may stop and start again."""

    def __init__(self, binary: str, directory: Path) -> None:
        self.binary = binary
        self.directory = directory
        self.port = free_port()
        self.processes: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        import redis

        process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.processes.append(process)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                conn = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=0.5)
                try:
                    conn.ping()
                    return
                finally:
                    conn.close()
            except redis.RedisError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
                process.wait(10)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    server = OwnRedis(binary, tmp_path)
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.slow
async def test_readyz_follows_a_redis_outage(
    make_settings: Callable[..., Settings], sqlite_url: str, own_redis: OwnRedis
) -> None:
    own_redis.start()
    async with running_app(make_settings(database_url=sqlite_url, redis_url=own_redis.url)) as http:
        assert (await http.get("/readyz")).status_code == 200
        own_redis.stop()
        down = await http.get("/readyz")
        assert down.status_code == 200
        assert down.json()["checks"] == {"database": "ok", "redis": "degraded"}
        own_redis.start()
        deadline = time.monotonic() + 10
        checks: dict[str, str] = {}
        while time.monotonic() < deadline:
            checks = (await http.get("/readyz")).json()["checks"]
            if checks["redis"] == "ok":
                break
            await asyncio.sleep(0.2)
        assert checks == {"database": "ok", "redis": "ok"}


async def test_admin_token_subject_is_the_client(
    make_settings: Callable[..., Settings], sqlite_url: str
) -> None:
    """The audit actor and the opt-in client_id label (ISSUER_METRICS_CLIENT_LABELS) name the
    same thing: the client id."""
    async with running_app(make_settings(database_url=sqlite_url, metrics_client_labels=True)) as http:
        cid, token = await admin_token(http)
        assert jwt.decode(token, options={"verify_signature": False})["sub"] == cid
        samples = await scrape(http)
        assert value(samples, "issuer_tokens_issued_total", grant_type="client_credentials", client_id=cid) == 1


async def test_access_lines_of_bearer_calls_name_the_tokens_client(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    """Allowed or refused (a verified token without the power), the access line says whose token it was."""
    from tests.test_admin_api import client_token

    admin_id, admin_secret = await make_client(client, name="ops", scopes=("issuer:admin",))
    # A token meant for us (aud = the issuer) but without issuer:admin: it verifies, then is refused.
    plain_id, plain_secret = await make_client(client, name="svc", scopes=("read",), audiences=(str(client.base_url),))
    assert admin_secret is not None and plain_secret is not None
    caplog.set_level("INFO", logger="issuer.access")
    for client_id, secret, status in ((admin_id, admin_secret, 200), (plain_id, plain_secret, 403)):
        token = await client_token(client, client_id, secret)
        response = await client.get("/admin/clients", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == status, response.text
        line = [r for r in caplog.records if r.name == "issuer.access" and r.__dict__.get("path") == "/admin/clients"]
        assert line[-1].__dict__["status"] == status and line[-1].__dict__["client_id"] == client_id


def test_json_log_lines_hold_any_extra_value() -> None:
    """orjson writes the line; what it cannot hold (an integer beyond 64 bits, a non-str key) falls
    back to the json module, and anything else not JSON becomes its str(): never a lost line."""
    import datetime
    import json

    def line(**extra: object) -> dict[str, Any]:
        record = logging.getLogger("issuer.test").makeRecord(
            "issuer.test", logging.INFO, __file__, 0, "event %s", ("x",), None, extra=extra)
        return json.loads(JsonFormatter().format(record))  # type: ignore[no-any-return]

    plain = line(status=200, ratio=0.5, client="127.0.0.1", tags=("a", "b"))
    assert plain["msg"] == "event x" and plain["level"] == "info" and plain["logger"] == "issuer.test"
    assert (plain["status"], plain["ratio"], plain["client"], plain["tags"]) == (200, 0.5, "127.0.0.1", ["a", "b"])
    assert plain["ts"].endswith("+00:00") and len(plain["ts"]) == len("2026-11-30T22:27:20.288+00:00")
    assert line(big=2**70)["big"] == 2**70
    assert line(keys={1: "one"})["keys"] == {"1": "one"}
    assert line(obj=Path("/tmp/x"))["obj"] == "/tmp/x"
    assert line(when=datetime.date(2026, 11, 30))["when"] == "2026-11-30"


@pytest.fixture
def own_logging() -> Iterator[None]:
    """configure_logging changes the root logger: put back what pytest had."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def test_access_lines_written_directly_equal_formatted_records(
    own_logging: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``info_line`` skips the LogRecord when the JSON handler is the line's only destination; the
    line is the one JsonFormatter writes for the same record, timestamp aside."""
    import io
    import json

    from issuer.observability.logs import configure_logging, info_line

    stream = io.StringIO()
    configure_logging("INFO", "json", stream=stream)
    access = logging.getLogger("issuer.access")
    fields = {"method": "POST", "path": "/oauth2/token", "route": "token", "status": 401, "duration_ms": 1.25,
              "client": "127.0.0.1", "error": "invalid_client", "client_id": "c-1", "big": 2**70}
    with monkeypatch.context() as patch:
        patch.setattr(access, "makeRecord", lambda *a, **k: pytest.fail("the direct path made a LogRecord"))
        info_line(access, "request", dict, fields)
    record = access.makeRecord(access.name, logging.INFO, "", 0, "request", (), None, extra=dict(fields))
    direct, formatted = json.loads(stream.getvalue()), json.loads(JsonFormatter().format(record))
    assert stream.getvalue().count("\n") == 1
    assert abs(datetime_of(direct["ts"]) - datetime_of(formatted["ts"])) < 5
    del direct["ts"], formatted["ts"]
    assert list(direct.items()) == list(formatted.items())

    # Anyone else listening (pytest's caplog, an embedding application's handler, a filter) gets an
    # ordinary record, and the JSON line is still written once.
    seen: list[logging.LogRecord] = []
    extra = logging.Handler()
    extra.emit = seen.append  # type: ignore[method-assign,assignment]
    logging.getLogger("issuer").addHandler(extra)
    try:
        info_line(access, "request", dict, fields)
    finally:
        logging.getLogger("issuer").removeHandler(extra)
    assert len(seen) == 1 and seen[0].__dict__["client_id"] == "c-1" and seen[0].getMessage() == "request"
    assert stream.getvalue().count("\n") == 2

    dropped = logging.Filter("nothing-matches")
    access.addFilter(dropped)
    try:
        info_line(access, "request", dict, fields)
    finally:
        access.removeFilter(dropped)
    assert stream.getvalue().count("\n") == 2


def test_a_failed_access_line_write_is_reported_not_raised(
    own_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    from issuer.observability.logs import configure_logging, info_line

    class Closed:
        def write(self, text: str) -> int:
            raise OSError("stdout closed")

        def flush(self) -> None:
            pass

    configure_logging("INFO", "json", stream=Closed())  # type: ignore[arg-type]
    # no exception: as StreamHandler.emit
    info_line(logging.getLogger("issuer.access"), "request", dict, {"status": 200})
    assert "stdout closed" in capsys.readouterr().err


def datetime_of(ts: str) -> float:
    import datetime

    return datetime.datetime.fromisoformat(ts).timestamp()


async def test_access_lines_are_held_for_the_end_of_the_turn_in_order(own_logging: None) -> None:
    """Inside a running loop, ``info_line``'s lines are written together when the loop's turn ends;
    a record of another kind (or a flush) writes what is held first, so the order is kept."""
    import asyncio
    import io
    import json

    from issuer.observability.logs import configure_logging, info_line

    stream = io.StringIO()
    configure_logging("INFO", "json", stream=stream)
    access, other = logging.getLogger("issuer.access"), logging.getLogger("issuer.keys")
    info_line(access, "request", dict, {"n": 1})
    info_line(access, "request", dict, {"n": 2})
    assert stream.getvalue() == ""  # held
    await asyncio.sleep(0)
    assert [json.loads(line)["n"] for line in stream.getvalue().splitlines()] == [1, 2]

    info_line(access, "request", dict, {"n": 3})
    other.warning("rotated")  # an ordinary record: the held line goes first
    info_line(access, "request", dict, {"n": 4})
    logging.getLogger().handlers[0].flush()  # what logging.shutdown does at exit
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(e["msg"], e.get("n")) for e in lines[2:]] == [("request", 3), ("rotated", None), ("request", 4)]
    await asyncio.sleep(0)
    assert len(stream.getvalue().splitlines()) == 5  # nothing written twice
