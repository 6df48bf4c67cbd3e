from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from services.offers.app import create_app
from services.offers.config import OffersSettings
from services.offers.models import Base
from services.offers.schemas import credit_code_check_character
from tests.support import TestDatabases, Tokens, empty_tables

LUZHOU_VILLAGE = "441302104201"  # a village of 芦洲镇, 惠城区, 惠州
OTHER_LUZHOU_VILLAGE = "441302104202"
CENSHAN_VILLAGE = "450123105203"  # 岑山村, 隆安县, 南宁
HUIZHOU = "4413"
BEILUN = "330206"  # 宁波市北仑区

_serials = itertools.count(1)


def new_credit_code() -> str:
    """A valid, unused unified social credit code: a Huizhou enterprise (91, 441300) with a fresh serial."""
    body = f"91441300{next(_serials):09d}"
    return body + credit_code_check_character(body)


@dataclass
class OffersService:
    app: FastAPI
    client: httpx.AsyncClient
    tokens: Tokens


@pytest.fixture(scope="session")
async def offers_app(backend: str, databases: TestDatabases, tokens: Tokens) -> AsyncIterator[FastAPI]:
    url = await databases.create("offers", backend)
    app = create_app(OffersSettings(database_url=url, jwt_public_key=tokens.public_pem))
    yield app
    await app.state.db.dispose()


@pytest.fixture
async def offers(offers_app: FastAPI, tokens: Tokens) -> AsyncIterator[OffersService]:
    transport = httpx.ASGITransport(app=offers_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://offers") as client:
        yield OffersService(offers_app, client, tokens)
    await empty_tables(offers_app.state.db, Base.metadata)


def org_body(**overrides: Any) -> dict[str, Any]:
    """A 4A charity foundation of Huizhou (惠州) working across the city."""
    body: dict[str, Any] = {
        "name": "惠州市慈善助学基金会",
        "org_type": "foundation",
        "credit_code": new_credit_code(),
        "grade": 4,
        "region_codes": [HUIZHOU],
        "contact": {"name": "陈主任", "phone": "0752-2345678"},
        "description": "资助乡村学校的助学基金",
    }
    body.update(overrides)
    return body


async def post_org(offers: OffersService, headers: dict[str, str] | None = None, **overrides: Any) -> dict[str, Any]:
    response = await offers.client.post(
        "/api/organisations", json=org_body(**overrides), headers=headers or offers.tokens.coordinator(HUIZHOU)
    )
    assert response.status_code == 201, response.text
    return response.json()


async def verified_org(offers: OffersService, **overrides: Any) -> dict[str, Any]:
    organisation = await post_org(offers, headers=offers.tokens.admin(), **overrides)
    response = await offers.client.post(f"/api/organisations/{organisation['id']}/verify", headers=offers.tokens.admin())
    assert response.status_code == 200, response.text
    return response.json()


def offer_body(organisation_id: str, **overrides: Any) -> dict[str, Any]:
    """A vocational school's training centre: 60 places in e-commerce and CNC courses for Huizhou's villages."""
    body: dict[str, Any] = {
        "organisation_id": organisation_id,
        "title": "职业技能培训名额",
        "description": "职业学校实训中心提供电商、数控等课程",
        "categories": ["talent", "education"],
        "kind": "training",
        "quantity": 60,
        "unit": "trainee",
        "region_codes": [HUIZHOU],
        "lat": 23.11,
        "lon": 114.41,
        "available_from": date.today().isoformat(),
        "available_until": (date.today() + timedelta(days=180)).isoformat(),
        "beneficiary_groups": ["disabled", "landless_farmers"],
        "skills": ["电商", "数控"],
    }
    body.update(overrides)
    return body


async def post_offer(
    offers: OffersService, organisation_id: str, headers: dict[str, str] | None = None, **overrides: Any
) -> dict[str, Any]:
    response = await offers.client.post(
        "/api/offers", json=offer_body(organisation_id, **overrides),
        headers=headers or offers.tokens.member(organisation_id),
    )
    assert response.status_code == 201, response.text
    return response.json()
