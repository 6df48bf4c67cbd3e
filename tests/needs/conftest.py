from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from services.needs.app import create_app
from services.needs.config import NeedsSettings
from services.needs.models import Base
from tests.support import TestDatabases, Tokens, empty_tables

LUZHOU_VILLAGE = "441302104201"  # a village of 芦洲镇, 惠城区, 惠州
OTHER_LUZHOU_VILLAGE = "441302104202"
CENSHAN_VILLAGE = "450123105203"  # 岑山村, 隆安县, 南宁


@dataclass
class NeedsService:
    app: FastAPI
    client: httpx.AsyncClient
    tokens: Tokens


@pytest.fixture(scope="session")
async def needs_app(backend: str, databases: TestDatabases, tokens: Tokens) -> AsyncIterator[FastAPI]:
    url = await databases.create("needs", backend)
    app = create_app(NeedsSettings(database_url=url, jwt_public_key=tokens.public_pem))
    yield app
    await app.state.db.dispose()


@pytest.fixture
async def needs(needs_app: FastAPI, tokens: Tokens) -> AsyncIterator[NeedsService]:
    transport = httpx.ASGITransport(app=needs_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://needs") as client:
        yield NeedsService(needs_app, client, tokens)
    await empty_tables(needs_app.state.db, Base.metadata)


def need_body(**overrides: Any) -> dict[str, Any]:
    """Skills training for 45 disabled villagers of 芦洲镇 (a need from the source reports)."""
    body: dict[str, Any] = {
        "title": "残疾村民技能培训",
        "description": "为45名残疾村民开展电商与手工技能培训",
        "category": "talent",
        "kind": "training",
        "quantity": 45,
        "unit": "trainee",
        "beneficiaries": 45,
        "beneficiary_groups": ["disabled"],
        "urgency": 3,
        "needed_by": (date.today() + timedelta(days=90)).isoformat(),
        "village_code": LUZHOU_VILLAGE,
        "lat": 23.07,
        "lon": 114.52,
        "skills": ["电商", "手工编织"],
    }
    body.update(overrides)
    return body


async def post_need(needs: NeedsService, headers: dict[str, str] | None = None, **overrides: Any) -> dict[str, Any]:
    body = need_body(**overrides)
    response = await needs.client.post(
        "/api/needs", json=body, headers=headers or needs.tokens.officer(body["village_code"])
    )
    assert response.status_code == 201, response.text
    return response.json()
