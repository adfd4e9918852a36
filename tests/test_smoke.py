from __future__ import annotations

import httpx

from tests.conftest import make_client


async def test_client_credentials_token_is_issued(client: httpx.AsyncClient) -> None:
    client_id, secret = await make_client(client)
    assert secret is not None
    response = await client.post(
        "/oauth2/token", data={"grant_type": "client_credentials", "scope": "read"}, auth=(client_id, secret)
    )
    assert response.status_code == 200, response.text
    assert response.json()["token_type"] == "Bearer"
    assert response.headers["cache-control"] == "no-store"
