"""Service credentials: the gateway's OAuth2 client-credentials grant, and matching's use of it."""

from __future__ import annotations

import logging

import httpx
import pytest
from pydantic import ValidationError

from gateway.app import create_app
from gateway.config import GatewaySettings
from services.common.identity import Role, TokenVerifier
from services.common.settings import JWT_AUDIENCE, JWT_ISSUER
from services.matching.clients import FeedClient, ServiceTokenProvider, UpstreamError
from tests.gateway.conftest import Gateway, another_gateway, gateway_settings
from tests.support import Tokens

SECRET = "matching-client-secret-2026"
CLIENTS = f"matching:{SECRET},reports:another-long-secret-xyz"


def _verify(tokens: Tokens, token: str) -> tuple[str, Role]:
    principal = TokenVerifier(tokens.public_pem, issuer=JWT_ISSUER, audience=JWT_AUDIENCE).verify(token)
    return principal.subject, principal.role


def _form(**overrides: str) -> dict[str, str]:
    return {"grant_type": "client_credentials", "client_id": "matching", "client_secret": SECRET, **overrides}


async def test_a_known_client_gets_a_short_lived_service_token(gateway_database_url: str, tokens: Tokens) -> None:
    async with another_gateway(gateway_database_url, tokens, service_clients=CLIENTS, service_token_ttl_seconds=120) as client:
        response = await client.post("/auth/service-token", data=_form())

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["token_type"], body["expires_in"]) == ("bearer", 120)
    assert response.headers["Cache-Control"] == "no-store"
    assert _verify(tokens, body["access_token"]) == ("service:matching", Role.SERVICE)


@pytest.mark.parametrize(
    ("form", "status"),
    [
        (_form(client_secret="matching-client-secret-2027"), 401),
        (_form(client_secret=""), 422),  # an empty form field counts as missing
        (_form(client_id="needs"), 401),
        (_form(client_id="reports"), 401),  # another client's name with matching's secret
        (_form(grant_type="password"), 400),
        ({"grant_type": "client_credentials", "client_id": "matching"}, 422),
    ],
)
async def test_wrong_credentials_are_refused_as_problems_without_echoing_the_secret(
    gateway_database_url: str, tokens: Tokens, caplog: pytest.LogCaptureFixture, form: dict[str, str], status: int
) -> None:
    caplog.set_level(logging.DEBUG)
    async with another_gateway(gateway_database_url, tokens, service_clients=CLIENTS) as client:
        response = await client.post("/auth/service-token", data=form, headers={"Accept-Language": "en"})

    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "access_token" not in response.text
    if status == 401:
        assert response.json()["detail"] == "Wrong client id or secret."
    for secret in (SECRET, form.get("client_secret") or SECRET):
        assert secret not in response.text and secret not in caplog.text


async def test_without_configured_clients_nobody_gets_a_service_token(gateway: Gateway) -> None:
    response = await gateway.client.post("/auth/service-token", data=_form())
    assert response.status_code == 401


@pytest.mark.parametrize("raw", ["matching", "matching:short", "Matching:" + SECRET, f"matching:{SECRET},matching:{SECRET}"])
def test_malformed_client_settings_refuse_to_start_without_printing_secrets(tokens: Tokens, raw: str) -> None:
    with pytest.raises(ValidationError) as error:
        gateway_settings("sqlite://", tokens, service_clients=raw)
    assert "DUIJIE_GATEWAY_SERVICE_CLIENTS" in str(error.value)
    assert SECRET not in str(error.value)


class Counting(httpx.AsyncBaseTransport):
    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.calls = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        return await self.inner.handle_async_request(request)


async def test_matching_fetches_caches_and_renews_its_token_and_reads_a_feed_with_it(
    gateway_database_url: str, tokens: Tokens, gateway_needs_app: object
) -> None:
    settings: GatewaySettings = gateway_settings(gateway_database_url, tokens, service_clients=CLIENTS)
    app = create_app(settings)
    counting = Counting(httpx.ASGITransport(app=app))
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=counting, base_url="http://gateway") as gw, \
            httpx.AsyncClient(transport=httpx.ASGITransport(app=gateway_needs_app), base_url="http://needs") as needs:  # type: ignore[arg-type]
        provider = ServiceTokenProvider(gw, client_id="matching", client_secret=SECRET)
        first = await provider.token()
        assert await provider.token() == first and counting.calls == 1  # cached
        provider.invalidate()
        renewed = await provider.token()
        assert counting.calls == 2 and renewed != first
        assert _verify(tokens, renewed) == ("service:matching", Role.SERVICE)

        page = await FeedClient("needs", needs, provider).changes(after=0, limit=10)
        assert page.items == [] and page.last_seq == 0
        # A person's token cannot read the feed.
        refused = await needs.get("/internal/changes", headers=tokens.admin())
        assert refused.status_code == 403

        wrong = ServiceTokenProvider(gw, client_id="matching", client_secret="not-the-secret-at-all")
        with pytest.raises(UpstreamError) as error:
            await wrong.token()
        assert "401" in str(error.value) and "not-the-secret" not in str(error.value)
