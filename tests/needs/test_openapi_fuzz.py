"""Schemathesis throws generated input at every operation of the needs service: nothing may cause a 5xx."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from starlette.testclient import TestClient

from services.needs.app import create_app
from services.needs.config import NeedsSettings
from tests.support import Tokens, fuzz_headers, migrated_sqlite_url

SCHEMA = schemathesis.openapi.from_dict(create_app(NeedsSettings()).openapi())


@pytest.fixture(scope="module")
def needs_fuzz_client(tmp_path_factory: pytest.TempPathFactory, tokens: Tokens) -> Iterator[TestClient]:
    url = migrated_sqlite_url(tmp_path_factory.mktemp("fuzz"), "needs")
    app = create_app(NeedsSettings(database_url=url, jwt_public_key=tokens.public_pem))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


@SCHEMA.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_generated_request_makes_the_needs_service_fail(
    case: schemathesis.Case, needs_fuzz_client: TestClient, tokens: Tokens
) -> None:
    kwargs = case.as_transport_kwargs(base_url="http://testserver", headers=fuzz_headers(tokens, case.path))
    response = needs_fuzz_client.request(**kwargs)
    assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.text}"
