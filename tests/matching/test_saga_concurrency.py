"""On PostgreSQL, with real concurrent writers: 200 approvals of 1 unit each against an offer of 50."""

from __future__ import annotations

import asyncio
import time
import uuid
from decimal import Decimal

from fastapi import FastAPI
from sqlalchemy import select

from services.matching.models import Match, MatchEvent
from tests.matching.conftest import Platform
from tests.matching.saga_support import check_invariants, coordinator, propose, scene

PROPOSALS = 200
CAPACITY = 50


async def test_200_concurrent_approvals_against_an_offer_of_50(
    pg_only: None, platform: Platform, upstream_apps: dict[str, FastAPI]
) -> None:
    s = await scene(platform, offer_quantity=CAPACITY, need_quantity=PROPOSALS)
    ids = [match["id"] for match in await asyncio.gather(*(propose(platform, s, 1) for _ in range(PROPOSALS)))]
    headers = coordinator(platform)
    started = time.perf_counter()

    async def approve(match_id: str) -> int:
        response = await platform.matching.post(f"/api/matches/{match_id}/approve", headers=headers)
        return response.status_code

    statuses = await asyncio.gather(*(approve(match_id) for match_id in ids))
    print(f"{PROPOSALS} approvals in {time.perf_counter() - started:.2f} s")
    assert statuses.count(200) == CAPACITY and statuses.count(409) == PROPOSALS - CAPACITY, sorted(set(statuses))

    state = await check_invariants(platform, upstream_apps)
    assert state["offers"][0].reserved == CAPACITY and state["needs"][0].committed == CAPACITY
    by_status: dict[str, int] = {}
    for match in state["matches"]:
        by_status[match.status] = by_status.get(match.status, 0) + 1
    assert by_status == {"approved": CAPACITY, "failed": PROPOSALS - CAPACITY}
    async with platform.matching_app.state.db.session() as session:
        failed = (await session.scalars(select(Match).where(Match.status == "failed"))).all()
        approvals = (await session.scalars(select(MatchEvent).where(MatchEvent.action == "approved"))).all()
    assert all(m.status_reason and "供给方拒绝预留" in m.status_reason and m.status_reason_en for m in failed)
    assert len(approvals) == CAPACITY and len({e.match_id for e in approvals}) == CAPACITY
    assert sum((m.quantity for m in state["matches"] if m.status == "approved"), Decimal(0)) == CAPACITY
    assert {uuid.UUID(i) for i in ids} == {m.id for m in state["matches"]}
