"""One OpenAPI for the platform, and Swagger UI served without any CDN."""

from __future__ import annotations

import re
from typing import Any

import httpx
from fastapi import FastAPI

from gateway.openapi import merge_specs
from tests.gateway.conftest import Gateway, another_gateway, closed_port

REF = "#/components/schemas/"


def spec(paths: dict[str, Any], schemas: dict[str, Any]) -> dict[str, Any]:
    return {"openapi": "3.1.0", "info": {"title": "t", "version": "1"}, "paths": paths,
            "components": {"schemas": schemas}}


def returning(schema: str) -> dict[str, Any]:
    return {"get": {"responses": {"200": {"content": {"application/json": {"schema": {"$ref": REF + schema}}}}}}}


async def test_the_merged_spec_has_the_gateways_and_the_services_public_paths(gateway: Gateway) -> None:
    response = await gateway.client.get("/openapi.json")
    assert response.status_code == 200
    merged = response.json()
    paths = set(merged["paths"])
    assert {"/auth/token", "/auth/me", "/auth/users", "/healthz", "/readyz"} <= paths
    assert {"/api/needs", "/api/needs/{need_id}", "/api/organisations/{organisation_id}"} <= paths
    assert not [path for path in paths if "internal" in path]
    assert not {"/api/{path}", "/openapi.json", "/docs", "/metrics"} & paths
    schemas = merged["components"]["schemas"]
    assert "NeedCreate" in schemas and "NeedRead" in schemas
    assert not {"ChangePage", "CommitmentCreate"} & set(schemas)  # internal shapes stay out
    assert merged["components"]["securitySchemes"]["OAuth2PasswordBearer"]["flows"]["password"]["tokenUrl"] == "/auth/token"
    assert merged["paths"]["/auth/token"]["post"]["security"] == []
    dangling = {ref for ref in re.findall(r'"#/components/schemas/([^"]+)"', response.text) if ref not in schemas}
    assert dangling == set()


async def test_a_service_that_is_down_is_left_out_not_fatal(
    gateway_database_url: str, gateway: Gateway, gateway_needs_app: FastAPI
) -> None:
    async with another_gateway(gateway_database_url, gateway.tokens,
                               transports={"needs": httpx.ASGITransport(app=gateway_needs_app)},
                               offers_url=f"http://127.0.0.1:{closed_port()}") as client:
        response = await client.get("/openapi.json")
    assert response.status_code == 200
    paths = set(response.json()["paths"])
    assert "/api/needs" in paths and "/auth/token" in paths
    assert not [path for path in paths if path.startswith(("/api/organisations", "/api/offers"))]


def test_same_name_schemas_are_kept_once_when_identical_and_prefixed_when_not() -> None:
    own = spec({"/auth/me": returning("Me")}, {"Me": {"type": "object"}, "Error": {"type": "object"}})
    needs = spec(
        {"/api/needs": returning("Page"), "/internal/changes": returning("ChangePage")},
        {
            "Error": {"type": "object"},  # the same as the gateway's
            "Item": {"type": "string"},
            "Page": {"type": "array", "items": {"$ref": REF + "Item"}},
            "ChangePage": {"type": "object"},
        },
    )
    offers = spec(
        {"/api/offers": returning("Page"), "/api/offers/{id}": returning("Error")},
        {
            "Error": {"type": "object"},
            "Item": {"type": "integer"},  # differs from needs' Item...
            "Page": {"type": "array", "items": {"$ref": REF + "Item"}},  # ...so this Page differs too
        },
    )

    merged = merge_specs(own, {"needs": needs, "offers": offers})

    schemas = merged["components"]["schemas"]
    assert set(schemas) == {"Me", "Error", "Item", "Page", "offers.Item", "offers.Page"}
    assert schemas["offers.Page"]["items"]["$ref"] == REF + "offers.Item"
    assert schemas["Page"]["items"]["$ref"] == REF + "Item"
    offers_get = merged["paths"]["/api/offers"]["get"]["responses"]["200"]["content"]["application/json"]
    assert offers_get["schema"]["$ref"] == REF + "offers.Page"
    assert "/internal/changes" not in merged["paths"]
    assert own["components"]["schemas"].keys() == {"Me", "Error"}  # the gateway's own spec is not mutated


async def test_docs_use_the_merged_spec_and_only_local_assets(gateway: Gateway) -> None:
    response = await gateway.client.get("/docs")
    assert response.status_code == 200
    html = response.text
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert assets and all(asset.startswith("/static/swagger/") for asset in assets), assets
    assert "url: '/openapi.json'" in html
    assert "cdn" not in html.lower() and "https://" not in html
    for asset in assets:
        served = await gateway.client.get(asset)
        assert served.status_code == 200, asset
    script = await gateway.client.get("/static/swagger/swagger-ui-bundle.js")
    assert script.headers["content-type"].startswith(("application/javascript", "text/javascript"))
