"""The matching service on its own database, fed by the real needs and offers apps, all in-process."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import MetaData, select

from services.common.db import Database
from services.matching.app import create_app
from services.matching.clients import StaticToken
from services.matching.config import MatchingSettings
from services.matching.models import Base as MatchingBase
from services.matching.models import NeedRM, OfferRM, OrganisationRM, PairingRM
from services.needs.app import create_app as create_needs_app
from services.needs.config import NeedsSettings
from services.needs.models import Base as NeedsBase
from services.offers.app import create_app as create_offers_app
from services.offers.config import OffersSettings
from services.offers.models import Base as OffersBase
from services.offers.schemas import credit_code_check_character
from tests.support import TestDatabases, Tokens

# 芦洲镇, 惠城区, 惠州: two villages of one township, and one of another township of the county.
VILLAGE_A = "441302104201"
VILLAGE_B = "441302104202"
VILLAGE_C = "441302105201"
TOWNSHIP = "441302104"
COUNTY = "441302"
HUIZHOU = "4413"
CENSHAN = "450123105203"  # 岑山村, 隆安县, 南宁

_serials = itertools.count(1)


def new_credit_code() -> str:
    body = f"51441300{next(_serials):09d}"
    return body + credit_code_check_character(body)


def in_days(days: int) -> str:
    return (date.today() + timedelta(days=days)).isoformat()


@dataclass
class Platform:
    """The three services, each with its own client, and a signed-in admin for setting up scenarios."""

    needs: httpx.AsyncClient
    offers: httpx.AsyncClient
    matching: httpx.AsyncClient
    matching_app: FastAPI
    tokens: Tokens

    @property
    def admin(self) -> dict[str, str]:
        return self.tokens.admin()

    async def sync(self) -> int:
        applied: int = await self.matching_app.state.sync.catch_up()
        return applied

    async def organisation(self, *, grade: int | None = 4, region_codes: list[str] | None = None, name: str = "惠州市慈善总会") -> str:
        body = {"name": name, "org_type": "social_organisation", "credit_code": new_credit_code(), "grade": grade,
                "region_codes": region_codes or [HUIZHOU]}
        response = await self.offers.post("/api/organisations", json=body, headers=self.admin)
        assert response.status_code == 201, response.text
        organisation_id: str = response.json()["id"]
        response = await self.offers.post(f"/api/organisations/{organisation_id}/verify", headers=self.admin)
        assert response.status_code == 200, response.text
        return organisation_id

    async def offer(self, organisation_id: str, **overrides: Any) -> dict[str, Any]:
        """By default: 10 sets of school desks for Huicheng district's villages, for the next half year."""
        body: dict[str, Any] = {
            "organisation_id": organisation_id, "title": "课桌椅", "categories": ["education"], "kind": "goods",
            "quantity": 10, "unit": "set", "region_codes": [COUNTY], "available_from": date.today().isoformat(),
            "available_until": in_days(180), "beneficiary_groups": [], "skills": [],
        }
        body.update(overrides)
        response = await self.offers.post("/api/offers", json=body, headers=self.admin)
        assert response.status_code == 201, response.text
        result: dict[str, Any] = response.json()
        return result

    async def need(self, village_code: str = VILLAGE_A, **overrides: Any) -> dict[str, Any]:
        """By default: 10 sets of desks for a village school, routine, due in 60 days."""
        body: dict[str, Any] = {
            "title": "村小学课桌椅", "category": "education", "kind": "goods", "quantity": 10, "unit": "set",
            "beneficiaries": 120, "beneficiary_groups": ["students"], "urgency": 3, "needed_by": in_days(60),
            "village_code": village_code,
        }
        body.update(overrides)
        response = await self.needs.post("/api/needs", json=body, headers=self.admin)
        assert response.status_code == 201, response.text
        result: dict[str, Any] = response.json()
        return result

    async def pair(self, organisation_id: str, village_code: str) -> dict[str, Any]:
        response = await self.offers.post(
            "/api/pairings", json={"organisation_id": organisation_id, "village_code": village_code}, headers=self.admin
        )
        assert response.status_code == 201, response.text
        result: dict[str, Any] = response.json()
        return result

    async def candidates(self, headers: dict[str, str] | None = None, **params: Any) -> httpx.Response:
        return await self.matching.get("/api/candidates", params=params, headers=headers or self.admin)

    async def run(self, region_code: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
        """Start a run, wait for it to end, and return it as the API shows it."""
        response = await self.matching.post("/api/match-runs", json={"region_code": region_code}, headers=headers or self.admin)
        assert response.status_code == 201, response.text
        await self.matching_app.state.match_runner.wait_idle()
        finished = await self.matching.get(f"/api/match-runs/{response.json()['id']}", headers=self.admin)
        assert finished.status_code == 200, finished.text
        result: dict[str, Any] = finished.json()
        return result


READ_MODELS = (NeedRM, OfferRM, OrganisationRM, PairingRM)


async def read_model_dump(app: FastAPI) -> dict[str, list[dict[str, Any]]]:
    """Every read-model row of a matching database, as plain values, in id order."""
    dump: dict[str, list[dict[str, Any]]] = {}
    async with app.state.db.session() as session:
        for model in READ_MODELS:
            rows = (await session.scalars(select(model).order_by(model.id))).all()
            columns = model.__table__.columns.keys()
            dump[model.__tablename__] = [{name: getattr(row, name) for name in columns} for row in rows]
    return dump


@pytest.fixture(scope="session")
async def matching_databases(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[TestDatabases]:
    # Its own set (own run id), so these needs and offers databases never collide with their own suites'.
    dbs = TestDatabases(tmp_path_factory.mktemp("matching"))
    yield dbs
    await dbs.drop_all()


@pytest.fixture(scope="session")
async def upstream_apps(backend: str, matching_databases: TestDatabases, tokens: Tokens) -> AsyncIterator[dict[str, FastAPI]]:
    needs_url = await matching_databases.create("needs", backend)
    offers_url = await matching_databases.create("offers", backend)
    apps = {
        "needs": create_needs_app(NeedsSettings(database_url=needs_url, jwt_public_key=tokens.public_pem)),
        "offers": create_offers_app(OffersSettings(database_url=offers_url, jwt_public_key=tokens.public_pem)),
    }
    yield apps
    for app in apps.values():
        await app.state.db.dispose()


@pytest.fixture(scope="session")
async def matching_database_url(backend: str, matching_databases: TestDatabases) -> str:
    return await matching_databases.create("matching", backend)


def matching_settings(database_url: str, tokens: Tokens, **overrides: Any) -> MatchingSettings:
    values: dict[str, Any] = {
        # No background loops: tests sync feeds and run the worker's passes themselves, when they mean to.
        "database_url": database_url, "jwt_public_key": tokens.public_pem, "sync_enabled": False, "worker_enabled": False,
        "needs_url": "http://needs", "offers_url": "http://offers", "gateway_url": "http://gateway", **overrides,
    }
    return MatchingSettings(**values)


def upstream_transports(apps: dict[str, FastAPI]) -> dict[str, httpx.AsyncBaseTransport]:
    return {name: httpx.ASGITransport(app=app) for name, app in apps.items()}


def service_token(tokens: Tokens) -> StaticToken:
    return StaticToken(tokens.mint("service", subject="service:matching", expires_in=3600))


@pytest.fixture(scope="session")
async def matching_app(
    matching_database_url: str, tokens: Tokens, upstream_apps: dict[str, FastAPI]
) -> AsyncIterator[FastAPI]:
    gate = asyncio.Event()
    gate.set()
    app = create_app(
        matching_settings(matching_database_url, tokens), transports=upstream_transports(upstream_apps),
        tokens=service_token(tokens), run_gate=gate,
    )
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def platform(matching_app: FastAPI, upstream_apps: dict[str, FastAPI], tokens: Tokens) -> AsyncIterator[Platform]:
    clients = {
        name: httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=f"http://{name}")
        for name, app in {**upstream_apps, "matching": matching_app}.items()
    }
    try:
        yield Platform(clients["needs"], clients["offers"], clients["matching"], matching_app, tokens)
    finally:
        matching_app.state.match_runner.gate.set()
        await matching_app.state.match_runner.wait_idle()
        for client in clients.values():
            await client.aclose()
        await asyncio.gather(
            delete_all(upstream_apps["needs"].state.db, NeedsBase.metadata),
            delete_all(upstream_apps["offers"].state.db, OffersBase.metadata),
            delete_all(matching_app.state.db, MatchingBase.metadata),
        )
        matching_app.state.read_models.reset()


async def delete_all(db: Database, metadata: MetaData) -> None:
    """Remove every row a test wrote. DELETE, not TRUNCATE: on tables this small it is many times faster.

    Sequences are not reset, and need not be: the matching cache is reset and feed cursors start again at 0."""
    async with db.engine.begin() as connection:
        for table in reversed(metadata.sorted_tables):
            await connection.execute(table.delete())


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    return body


def ids(items: list[dict[str, Any]], key: str) -> list[str]:
    return [item[key] for item in items]


def new_uuid() -> str:
    return str(uuid.uuid4())
