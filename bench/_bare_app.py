"""The yardstick of bench.gateway: the same page of 50 needs, typed like the needs service's, from memory."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from fastapi import FastAPI

from services.common.http import Page
from services.needs.schemas import NeedRead


def _needs(count: int = 50) -> list[NeedRead]:
    now = datetime.now(UTC)
    return [
        NeedRead(
            id=uuid.uuid4(), title=f"岑山村需求 {i}", description="维修村小教学楼，改建村小食堂和厕所。",
            category="education", kind="funds", quantity=Decimal("260000.00"), unit="CNY", committed=Decimal(0),
            delivered=Decimal(0), remaining=Decimal("260000.00"), beneficiaries=180,
            beneficiary_groups=["students", "left_behind_children"], skills=[], urgency=4,
            needed_by=date.today() + timedelta(days=200), village_code="450123104213", lat=23.04, lon=107.75,
            channel="online", requester=None, status="open", version=1, created_by="bench", created_at=now, updated_at=now,
        )
        for i in range(count)
    ]


def create_app() -> FastAPI:
    app = FastAPI()
    page = Page[NeedRead](items=_needs(), next_cursor=None)
    by_id = {str(need.id): need for need in page.items}

    @app.get("/readyz")
    async def readyz() -> dict[str, str]:
        return {"status": "ready"}

    @app.get("/api/needs", response_model=Page[NeedRead])
    async def list_needs() -> Page[NeedRead]:
        return page

    @app.get("/api/needs/{need_id}", response_model=NeedRead)
    async def get_need(need_id: str) -> NeedRead:
        return by_id.get(need_id, page.items[0])  # any id: the cost measured is the response, not a lookup

    return app
