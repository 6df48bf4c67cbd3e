"""Helpers for the saga tests: scenarios, an upstream transport that injects faults, and the invariants."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select, update

from services.common.db import utcnow
from services.matching.app import create_app
from services.matching.models import HOLDING_STATUSES, SAGA_STATUSES, Match
from services.needs.models import Commitment, CommitmentStatus, Need
from services.offers.models import Offer, Reservation, ReservationStatus
from tests.matching.conftest import COUNTY, VILLAGE_A, Platform, matching_settings, service_token
from tests.support import Tokens

FAST_RETRIES: dict[str, Any] = {
    "saga_retry_attempts": 3, "saga_retry_wait_initial": 0.0, "saga_retry_wait_max": 0.0, "saga_retry_wait_jitter": 0.0,
    "saga_retry_timeout_seconds": 5.0, "worker_interval_seconds": 0.05,
}


def coordinator(platform: Platform) -> dict[str, str]:
    return platform.tokens.coordinator(COUNTY)


@dataclass
class Scene:
    organisation: str
    offer: str
    need: str


async def scene(platform: Platform, *, offer_quantity: int = 10, need_quantity: int = 10, village: str = VILLAGE_A) -> Scene:
    organisation = await platform.organisation()
    offer = await platform.offer(organisation, quantity=offer_quantity)
    need = await platform.need(village, quantity=need_quantity)
    await platform.sync()
    return Scene(organisation, offer["id"], need["id"])


async def propose(
    platform: Platform, s: Scene, quantity: int | str = 1, headers: dict[str, str] | None = None, **extra: Any
) -> dict[str, Any]:
    body = {"need_id": s.need, "offer_id": s.offer, "quantity": str(quantity), **extra}
    response = await platform.matching.post("/api/matches", json=body, headers=headers or coordinator(platform))
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


# --- faults -----------------------------------------------------------------------------------------

@dataclass
class Rule:
    contains: str
    fault: str  # "error" (503), "timeout", "refused" (connection), "lost" (done upstream, answer lost)
    times: int | None  # None: until healed


@dataclass
class FaultyTransport(httpx.AsyncBaseTransport):
    """Passes requests to the real in-process app, except those a rule says to break."""

    inner: httpx.AsyncBaseTransport
    rules: list[Rule] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)

    def fail(self, contains: str, fault: str, times: int | None = None) -> None:
        self.rules.append(Rule(contains, fault, times))

    def heal(self) -> None:
        self.rules.clear()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        self.calls.append(path)
        for rule in self.rules:
            if rule.contains in path and (rule.times is None or rule.times > 0):
                if rule.times is not None:
                    rule.times -= 1
                if rule.fault == "error":
                    return httpx.Response(503, json={"title": "unavailable", "status": 503}, request=request)
                if rule.fault == "timeout":
                    raise httpx.ReadTimeout("injected timeout", request=request)
                if rule.fault == "refused":
                    raise httpx.ConnectError("injected: connection refused", request=request)
                if rule.fault == "lost":
                    response = await self.inner.handle_async_request(request)
                    await response.aread()
                    raise httpx.ReadTimeout("injected: the answer was lost", request=request)
        return await self.inner.handle_async_request(request)


@dataclass
class Faulty:
    """A second matching process on the same database, whose calls to needs and offers can be broken."""

    app: FastAPI
    client: httpx.AsyncClient
    needs: FaultyTransport
    offers: FaultyTransport
    hooks: list[httpx.Request] = field(default_factory=list)
    hook_answers: list[int] = field(default_factory=list)  # statuses the receiver answers, in turn (then 200)

    def heal(self) -> None:
        self.needs.heal()
        self.offers.heal()

    async def expire_leases(self) -> None:
        """As if the parked sagas' backoff had passed (and any dead runner's lease run out)."""
        async with self.app.state.db.transaction() as session:
            await session.execute(update(Match).where(Match.status.in_(SAGA_STATUSES))
                                  .values(saga_lease_until=utcnow() - timedelta(seconds=1)))

    async def work(self) -> Any:
        await self.expire_leases()
        return await self.app.state.worker.run_once()


@pytest.fixture
async def faulty(
    platform: Platform, matching_database_url: str, tokens: Tokens, upstream_apps: dict[str, FastAPI]
) -> AsyncIterator[Faulty]:
    needs = FaultyTransport(httpx.ASGITransport(app=upstream_apps["needs"]))
    offers = FaultyTransport(httpx.ASGITransport(app=upstream_apps["offers"]))
    received: list[httpx.Request] = []
    answers: list[int] = []

    def receiver(request: httpx.Request) -> httpx.Response:
        received.append(request)
        return httpx.Response(answers.pop(0) if answers else 200)

    app = create_app(matching_settings(matching_database_url, tokens, webhook_backoff_seconds=0.01, **FAST_RETRIES),
                     transports={"needs": needs, "offers": offers, "webhooks": httpx.MockTransport(receiver)},
                     tokens=service_token(tokens))
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://matching")
    async with app.router.lifespan_context(app), client:
        yield Faulty(app, client, needs, offers, received, answers)


# --- invariants -------------------------------------------------------------------------------------

async def check_invariants(platform: Platform, upstream_apps: dict[str, FastAPI], *, settled: bool = True) -> dict[str, Any]:
    """DESIGN.md's invariants across the three databases. `settled`: every saga has ended."""
    async with upstream_apps["offers"].state.db.session() as session:
        offers = (await session.scalars(select(Offer))).all()
        reservations = (await session.scalars(select(Reservation))).all()
    async with upstream_apps["needs"].state.db.session() as session:
        needs = (await session.scalars(select(Need))).all()
        commitments = (await session.scalars(select(Commitment))).all()
    async with platform.matching_app.state.db.session() as session:
        matches = (await session.scalars(select(Match))).all()

    for offer in offers:
        assert offer.reserved + offer.delivered <= offer.quantity, offer.id
        active = [r for r in reservations if r.offer_id == offer.id and r.status == ReservationStatus.ACTIVE]
        assert offer.reserved == sum((r.quantity - r.delivered for r in active), Decimal(0)), offer.id
    for need in needs:
        assert need.committed <= need.quantity and need.delivered <= need.committed, need.id
    held = {r.match_id: r for r in reservations if r.status == ReservationStatus.ACTIVE}
    committed = {c.match_id: c for c in commitments if c.status == CommitmentStatus.ACTIVE}
    by_id = {m.id: m for m in matches}
    for match in matches:
        if match.status in HOLDING_STATUSES:
            assert match.id in held and held[match.id].quantity == match.quantity, (match.id, match.status)
            assert match.id in committed and committed[match.id].quantity == match.quantity, (match.id, match.status)
        elif match.status not in SAGA_STATUSES or settled:
            assert match.id not in held and match.id not in committed, (match.id, match.status, match.saga_step)
    if settled:
        assert not [m for m in matches if m.status in SAGA_STATUSES]
    # No hold upstream without its match (held under an unknown match id).
    assert set(held) <= set(by_id) and set(committed) <= set(by_id)
    return {"offers": offers, "needs": needs, "matches": matches, "reservations": held, "commitments": committed}


def new_key() -> dict[str, str]:
    return {"Idempotency-Key": uuid.uuid4().hex}
