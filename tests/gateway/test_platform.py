"""Health, readiness and metrics at the gateway; the settings it refuses to start with."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from gateway.config import GatewaySettings
from tests.gateway.conftest import Gateway, gateway_settings
from tests.support import Tokens


async def test_health_readiness_and_metrics(gateway: Gateway) -> None:
    assert (await gateway.client.get("/healthz")).json() == {"status": "ok", "service": "gateway", "revision": None}
    ready = await gateway.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["revision"] == "0001"
    await gateway.client.get("/api/matches")
    metrics = await gateway.client.get("/metrics")
    assert 'duijie_http_requests_total{method="GET",route="/api/{path:path}",service="gateway",status="503"}' in metrics.text


def test_the_public_key_is_derived_from_the_private_one(tokens: Tokens) -> None:
    settings = gateway_settings("sqlite+aiosqlite://", tokens, jwt_public_key="")
    assert "".join(settings.jwt_public_key.split()) == "".join(tokens.public_pem.split())
    assert settings.bootstrap_credentials == ("root", "duijie-root-passphrase")
    assert "duijie-root-passphrase" not in repr(settings) and "PRIVATE" not in repr(settings)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"jwt_private_key": ""}, "Ed25519 private key in PEM"),
        ({"jwt_private_key": "-----BEGIN PRIVATE KEY-----\nnonsense\n-----END PRIVATE KEY-----"}, "Ed25519"),
        ({"jwt_public_key": Tokens.generate().public_pem}, "not the public half"),
        ({"DUIJIE_BOOTSTRAP_ADMIN": "root-without-password"}, "must be username:password"),
        ({"DUIJIE_BOOTSTRAP_ADMIN": "root:"}, "must be username:password"),
        ({"DUIJIE_BOOTSTRAP_ADMIN": "root:123456789012"}, "digits only"),
        ({"DUIJIE_BOOTSTRAP_ADMIN": "root:short"}, "at least 10 characters"),
        ({"needs_url": "needs:8001"}, "http://"),
    ],
)
def test_the_gateway_refuses_to_start_on_a_missing_or_broken_secret(
    tokens: Tokens, overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError) as raised:
        gateway_settings("sqlite+aiosqlite://", tokens, **overrides)
    assert message in str(raised.value)
    assert "nonsense" not in str(raised.value) and "123456789012" not in str(raised.value)


def test_without_a_private_key_nothing_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DUIJIE_GATEWAY_JWT_PRIVATE_KEY", raising=False)
    with pytest.raises(ValidationError, match="DUIJIE_GATEWAY_JWT_PRIVATE_KEY must be an Ed25519 private key"):
        GatewaySettings()


def test_the_bootstrap_admin_is_read_without_the_prefix(monkeypatch: pytest.MonkeyPatch, tokens: Tokens) -> None:
    monkeypatch.setenv("DUIJIE_GATEWAY_JWT_PRIVATE_KEY", tokens.private_pem)
    monkeypatch.setenv("DUIJIE_BOOTSTRAP_ADMIN", "Chief:a-long-passphrase")
    monkeypatch.setenv("DUIJIE_GATEWAY_MATCHING_URL", "http://127.0.0.1:8003/")
    settings = GatewaySettings()
    assert settings.bootstrap_credentials == ("chief", "a-long-passphrase")
    assert settings.matching_url == "http://127.0.0.1:8003"

    monkeypatch.delenv("DUIJIE_BOOTSTRAP_ADMIN")
    monkeypatch.setenv("DUIJIE_GATEWAY_BOOTSTRAP_ADMIN", "other:a-long-passphrase")
    assert GatewaySettings().bootstrap_credentials is None
