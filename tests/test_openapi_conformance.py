"""Real responses against /openapi.json: every documented operation is called at least once
successfully and at least once with an error, through the real app, and each answer must be a
status the operation documents, with a documented media type and a body its schema accepts.

The document is generated (issuer.http.openapi) from the route table, each handler's
@documented declaration and the pydantic models; this checks that what it says is what happens."""

from __future__ import annotations

from typing import Any, get_args

import httpx
import jsonschema
import jwt
import pytest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from issuer.app import routes
from issuer.grants import GRANTS
from issuer.http.openapi import Undocumented, document
from issuer.http.schemas import ClientCreate, GrantType, Registration
from issuer.oauth.clients import GRANT_TYPES
from issuer.operations import Actor
from tests.conftest import make_client, services_of
from tests.test_admin_api import client_token
from tests.users_helpers import PASSWORD, first_party, login

HTTP_METHODS = {"get", "put", "post", "delete", "patch"}


class Conformance:
    def __init__(self, http: httpx.AsyncClient, document: dict[str, Any]) -> None:
        self.http = http
        self.document = document
        self.outcomes: dict[tuple[str, str], set[str]] = {}

    async def call(self, method: str, template: str, expect: int, path: str | None = None, **kwargs: Any) -> Any:
        response = await self.http.request(method, path or template, **kwargs)
        assert response.status_code == expect, (method, path or template, response.status_code, response.text)
        self.check(method.lower(), template, response)
        self.outcomes.setdefault((template, method.lower()), set()).add("ok" if expect < 400 else "error")
        return response.json() if response.content and "json" in response.headers["content-type"] else None

    def check(self, method: str, template: str, response: httpx.Response) -> None:
        where = f"{method.upper()} {template} -> {response.status_code}"
        documented = self.document["paths"][template][method]["responses"].get(str(response.status_code))
        assert documented is not None, f"{where}: status not documented"
        content = documented.get("content")
        if not content:
            assert response.content == b"", f"{where}: a body where none is documented"
            return
        media = response.headers["content-type"].split(";")[0].strip()
        assert media in content, f"{where}: {media} is not one of {sorted(content)}"
        schema = {**content[media]["schema"], "components": self.document["components"]}
        body = response.json() if "json" in media else response.text
        errors = [e.message for e in jsonschema.Draft202012Validator(schema).iter_errors(body)]
        assert not errors, f"{where}: body does not match its schema: {errors[:3]}"
        for name in documented.get("headers", {}):
            if name == "Retry-After" and name.lower() in response.headers:
                assert response.headers[name].isdigit(), where

    def uncovered(self) -> list[str]:
        missing = []
        for path, item in self.document["paths"].items():
            for method in HTTP_METHODS & set(item):
                seen = self.outcomes.get((path, method), set())
                missing += [f"{method.upper()} {path}: no {kind} call" for kind in ("ok", "error") if kind not in seen]
        return missing


async def test_every_operation_answers_as_documented_on_success_and_on_error(http: httpx.AsyncClient) -> None:
    issuer = services_of(http).settings.url
    doc = (await http.get("/openapi.json")).json()
    c = Conformance(http, doc)
    too_big = {"content": b"x" * (services_of(http).settings.max_body_bytes + 1)}

    # -- public: discovery and operations (their only error is the body-size guard) --
    for path in ("/.well-known/oauth-authorization-server", "/.well-known/openid-configuration", "/healthz",
                 "/readyz", "/metrics", "/openapi.json"):
        await c.call("GET", path, 200)
        await c.call("GET", path, 413, **too_big)
    jwks = await http.get("/.well-known/jwks.json")
    await c.call("GET", "/.well-known/jwks.json", 200)
    await c.call("GET", "/.well-known/jwks.json", 304, headers={"If-None-Match": jwks.headers["etag"]})
    await c.call("GET", "/.well-known/jwks.json", 413, **too_big)

    # -- oauth --
    service_id, service_secret = await make_client(http, name="service", scopes=("read", "issuer:introspect"))
    assert service_secret is not None
    basic = (service_id, service_secret)
    cc = {"grant_type": "client_credentials"}
    token = (await c.call("POST", "/oauth2/token", 200, data=cc, auth=basic))["access_token"]
    await c.call("POST", "/oauth2/token", 401, data=cc, auth=(service_id, "wrong"))
    await c.call("POST", "/oauth2/token", 400, data={"grant_type": "implicit"}, auth=basic)
    await c.call("POST", "/oauth2/introspect", 200, data={"token": token}, auth=basic)
    await c.call("POST", "/oauth2/introspect", 401, data={"token": token}, auth=(service_id, "wrong"))
    await c.call("POST", "/oauth2/revoke", 200, data={"token": token}, auth=basic)
    await c.call("POST", "/oauth2/revoke", 400, data={}, auth=basic)

    # -- account --
    await c.call("POST", "/register", 201, json={"username": "conformer", "password": PASSWORD})
    await c.call("POST", "/register", 422, json={"username": "-x", "password": "short", "extra": 1})
    await c.call("POST", "/register", 409, json={"username": "conformer", "password": PASSWORD})
    await c.call("POST", "/register", 415, data={"username": "x"})
    session = await login(http, await first_party(http), "conformer", resource=issuer)
    user = {"Authorization": f"Bearer {session['access_token']}"}
    for method in ("GET", "POST"):
        await c.call(method, "/userinfo", 200, headers=user)
        await c.call(method, "/userinfo", 401)
    conformer = await services_of(http).users.store.find_user("conformer")
    signed_in, _ = await services_of(http).authorize.sessions.start(conformer.user_id, "", "")
    await c.call("GET", "/account/sessions", 200, headers=user)
    await c.call("GET", "/account/sessions", 401)
    own = "/account/sessions/{session_id}"
    await c.call("DELETE", own, 204, f"/account/sessions/{signed_in.session_id}", headers=user)
    await c.call("DELETE", own, 404, f"/account/sessions/{signed_in.session_id}", headers=user)
    allowed = service_id
    await services_of(http).ops.consents.grant(Actor.user(conformer.user_id), conformer.user_id, allowed, ("read",))
    await c.call("GET", "/account/consents", 200, headers=user)
    await c.call("GET", "/account/consents", 401)
    consent = "/account/consents/{client_id}"
    await c.call("DELETE", consent, 204, f"/account/consents/{allowed}", headers=user)
    await c.call("DELETE", consent, 404, f"/account/consents/{allowed}", headers=user)
    new_password = "another-password-1"
    change = {"current_password": PASSWORD, "new_password": new_password}
    await c.call("POST", "/account/password", 422, json={**change, "new_password": "conformer"}, headers=user)
    await c.call("POST", "/account/password", 400, content=b"[]", headers={**user, "Content-Type": "application/json"})
    await c.call("POST", "/account/password", 204, json=change, headers=user)
    await c.call("POST", "/account/deactivate", 422, json={"password": PASSWORD}, headers=user)
    await c.call("POST", "/account/deactivate", 204, json={"password": new_password}, headers=user)

    # -- admin --
    admin_id, admin_secret = await make_client(http, name="operator", scopes=("issuer:admin",))
    assert admin_secret is not None
    admin = {"Authorization": f"Bearer {await client_token(http, admin_id, admin_secret)}"}
    await c.call("GET", "/admin/keys", 200, headers=admin)
    await c.call("GET", "/admin/keys", 401)
    await c.call("POST", "/admin/keys/rotate", 400, params={"force": "maybe"}, headers=admin)
    await c.call("POST", "/admin/keys/rotate", 200, params={"force": "true"}, headers=admin)
    await c.call("POST", "/admin/keys/{kid}/revoke", 404, "/admin/keys/no-such-kid/revoke", headers=admin)
    signer = jwt.get_unverified_header(admin["Authorization"].split()[1])["kid"]
    keys = (await http.get("/admin/keys", headers=admin)).json()["items"]
    other = next(k["kid"] for k in keys if k["kid"] != signer and k["state"] != "revoked")
    await c.call("POST", "/admin/keys/{kid}/revoke", 200, f"/admin/keys/{other}/revoke", headers=admin)

    await c.call("GET", "/admin/clients", 200, headers=admin)
    await c.call("GET", "/admin/clients", 400, params={"limit": "0"}, headers=admin)
    body = {"name": "made", "grant_types": ["client_credentials"], "scopes": ["read"]}
    made = await c.call("POST", "/admin/clients", 201, json=body, headers=admin)
    public = {**body, "public": True, "grant_types": ["password"]}
    await c.call("POST", "/admin/clients", 201, json=public, headers=admin)
    await c.call("POST", "/admin/clients", 422, json={**body, "client_secret": "mine"}, headers=admin)
    one, none = f"/admin/clients/{made['client_id']}", "/admin/clients/no-such-client"
    template = "/admin/clients/{client_id}"
    await c.call("GET", template, 200, one, headers=admin)
    await c.call("GET", template, 404, none, headers=admin)
    await c.call("PATCH", template, 200, one, json={"disabled": True, "scopes": ["read", "read"]}, headers=admin)
    await c.call("PATCH", template, 422, one, json={"name": None}, headers=admin)
    public_id = (await http.get("/admin/clients", headers=admin)).json()["items"]
    public_id = next(item["client_id"] for item in public_id if item["type"] == "public")
    refused = await c.call(
        "PATCH", template, 422, f"/admin/clients/{public_id}", json={"grant_types": ["client_credentials"]},
        headers=admin,
    )
    assert "client_credentials" in refused["errors"]["body"]
    await c.call("POST", template + "/secret", 200, one + "/secret", headers=admin)
    await c.call("POST", template + "/secret", 404, none + "/secret", headers=admin)
    await c.call("DELETE", template, 204, one, headers=admin)
    await c.call("DELETE", template, 404, one, headers=admin)

    target = (await http.get("/admin/users", headers=admin)).json()["items"][0]["user_id"]
    await c.call("GET", "/admin/users", 200, headers=admin)
    await c.call("GET", "/admin/users", 400, params={"limit": "x"}, headers=admin)
    template, one, none = "/admin/users/{user_id}", f"/admin/users/{target}", "/admin/users/nobody"
    await c.call("GET", template, 200, one, headers=admin)
    await c.call("GET", template, 404, none, headers=admin)
    await c.call("PUT", template + "/roles", 200, one + "/roles", json={"roles": ["user"]}, headers=admin)
    await c.call("PUT", template + "/roles", 422, one + "/roles", json={"roles": ["root"]}, headers=admin)
    for action in ("/disable", "/enable", "/sessions/revoke"):
        await c.call("POST", template + action, 200, one + action, headers=admin)
        await c.call("POST", template + action, 404, none + action, headers=admin)
    browser, _ = await services_of(http).authorize.sessions.start(target, "", "")
    await c.call("GET", template + "/sessions", 200, one + "/sessions", headers=admin)
    await c.call("GET", template + "/sessions", 404, none + "/sessions", headers=admin)
    single = template + "/sessions/{session_id}"
    await c.call("DELETE", single, 204, f"{one}/sessions/{browser.session_id}", headers=admin)
    await c.call("DELETE", single, 404, f"{one}/sessions/{browser.session_id}", headers=admin)
    await c.call("DELETE", template + "/sessions", 200, one + "/sessions", headers=admin)
    await c.call("DELETE", template + "/sessions", 404, none + "/sessions", headers=admin)
    await services_of(http).ops.consents.grant(Actor.user(target), target, service_id, ("read",))
    await c.call("GET", template + "/consents", 200, one + "/consents", headers=admin)
    await c.call("GET", template + "/consents", 404, none + "/consents", headers=admin)
    allowed_one = template + "/consents/{client_id}"
    await c.call("DELETE", allowed_one, 204, f"{one}/consents/{service_id}", headers=admin)
    await c.call("DELETE", allowed_one, 404, f"{one}/consents/{service_id}", headers=admin)
    await c.call("GET", "/admin/audit", 200, headers=admin)
    await c.call("GET", "/admin/audit", 400, params={"before": "-1"}, headers=admin)

    assert not c.uncovered(), c.uncovered()


def test_a_route_without_a_declaration_cannot_be_documented() -> None:
    async def undeclared(request: Request) -> Response:
        return Response()

    with pytest.raises(Undocumented, match="/new"):
        document("https://issuer.example", [*routes(), Route("/new", undeclared, methods=["GET"])])


def test_request_bodies_are_the_validating_models() -> None:
    doc = document("https://issuer.example", routes())
    schemas = doc["components"]["schemas"]
    for path, method, model in (("/admin/clients", "post", ClientCreate), ("/register", "post", Registration)):
        ref = doc["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        generated = model.model_json_schema(ref_template="#/components/schemas/{model}")
        generated.pop("$defs", None)
        assert schemas[ref.rsplit("/", 1)[1]] == generated
        assert generated["additionalProperties"] is False


def test_the_documented_grant_types_are_the_registry_and_token_endpoint_ones() -> None:
    assert set(get_args(GrantType)) == set(GRANT_TYPES) == set(GRANTS)
