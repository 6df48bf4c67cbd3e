"""Faults at every step of the saga: needs or offers answer 5xx, time out, refuse connections, or do the work
and lose the answer. Within the request the call is retried; what is still broken is left to the worker,
which finishes every saga once the upstream is back. No hold ever outlives its match."""

from __future__ import annotations

import json
import uuid
from datetime import date
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import select

from services.matching.models import Match, WebhookDelivery
from services.matching.webhooks import SIGNATURE_HEADER, verify
from tests.matching.conftest import Platform
from tests.matching.saga_support import Faulty, check_invariants, coordinator, faulty, propose, scene

__all__ = ["faulty"]  # the fixture

FAULTS = ["error", "timeout", "refused", "lost"]
STEPS = [("offers", "/reservations"), ("needs", "/commitments")]


def _side(f: Faulty, upstream: str) -> Any:
    return f.offers if upstream == "offers" else f.needs


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize(("upstream", "path"), STEPS)
async def test_a_step_that_keeps_failing_is_finished_by_the_worker(
    platform: Platform, faulty: Faulty, upstream_apps: dict[str, FastAPI], upstream: str, path: str, fault: str
) -> None:
    s = await scene(platform)
    match = await propose(platform, s, 3)
    _side(faulty, upstream).fail(path, fault)
    answer = await faulty.client.post(f"/api/matches/{match['id']}/approve", headers=coordinator(platform))
    assert answer.status_code == 202, answer.text
    assert answer.json()["status"] == "approving"
    assert answer.json()["saga_step"] == ("reserving" if upstream == "offers" else "committing")
    assert _side(faulty, upstream).calls.count(_side(faulty, upstream).calls[-1]) == 3  # retried, bounded
    await check_invariants(platform, upstream_apps, settled=False)
    # A worker pass while the upstream is still down changes nothing but the attempts.
    await faulty.work()
    await check_invariants(platform, upstream_apps, settled=False)

    faulty.heal()
    done = await faulty.work()
    assert done.sagas_resumed == 1
    shown = (await platform.matching.get(f"/api/matches/{match['id']}", headers=platform.admin)).json()
    assert shown["status"] == "approved", shown
    state = await check_invariants(platform, upstream_apps)
    assert state["offers"][0].reserved == 3 and state["needs"][0].committed == 3


@pytest.mark.parametrize(("upstream", "path"), STEPS)
async def test_a_passing_fault_is_retried_within_the_request(
    platform: Platform, faulty: Faulty, upstream_apps: dict[str, FastAPI], upstream: str, path: str
) -> None:
    s = await scene(platform)
    match = await propose(platform, s, 2)
    _side(faulty, upstream).fail(path, "lost", times=1)
    _side(faulty, upstream).fail(path, "error", times=1)
    answer = await faulty.client.post(f"/api/matches/{match['id']}/approve", headers=coordinator(platform))
    assert answer.status_code == 200 and answer.json()["status"] == "approved", answer.text
    state = await check_invariants(platform, upstream_apps)
    assert state["offers"][0].reserved == 2 and state["needs"][0].committed == 2


@pytest.mark.parametrize("fault", ["error", "timeout"])
async def test_compensation_that_fails_is_finished_by_the_worker(
    platform: Platform, faulty: Faulty, upstream_apps: dict[str, FastAPI], fault: str
) -> None:
    s = await scene(platform, offer_quantity=10, need_quantity=3)
    first, second = await propose(platform, s, 3), await propose(platform, s, 3)
    assert (await faulty.client.post(f"/api/matches/{first['id']}/approve", headers=coordinator(platform))).status_code == 200
    faulty.offers.fail("/release", fault)  # the need refuses; giving back the reservation fails
    answer = await faulty.client.post(f"/api/matches/{second['id']}/approve", headers=coordinator(platform))
    assert answer.status_code == 202 and answer.json()["saga_step"] == "compensating", answer.text
    assert "需求方拒绝承诺" in answer.json()["status_reason"]
    faulty.heal()
    await faulty.work()
    shown = (await platform.matching.get(f"/api/matches/{second['id']}", headers=platform.admin)).json()
    assert shown["status"] == "failed" and "需求方拒绝承诺" in shown["status_reason"]
    state = await check_invariants(platform, upstream_apps)
    assert state["offers"][0].reserved == 3


async def test_cancelling_with_offers_down_is_finished_by_the_worker(
    platform: Platform, faulty: Faulty, upstream_apps: dict[str, FastAPI]
) -> None:
    s = await scene(platform)
    match = await propose(platform, s, 4)
    assert (await faulty.client.post(f"/api/matches/{match['id']}/approve", headers=coordinator(platform))).status_code == 200
    faulty.offers.fail("/release", "refused")
    answer = await faulty.client.post(f"/api/matches/{match['id']}/cancel", json={"reason": "村里已自筹"},
                                      headers=coordinator(platform))
    assert answer.status_code == 202 and answer.json()["status"] == "cancelling"
    faulty.heal()
    await faulty.work()
    shown = (await platform.matching.get(f"/api/matches/{match['id']}", headers=platform.admin)).json()
    assert shown["status"] == "cancelled" and shown["status_reason"] == "村里已自筹"
    state = await check_invariants(platform, upstream_apps)
    assert state["offers"][0].reserved == 0 and state["needs"][0].committed == 0


async def test_a_crash_after_a_step_is_resumed_by_the_worker(
    platform: Platform, faulty: Faulty, upstream_apps: dict[str, FastAPI], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The process dies between committing on needs and storing `approved`: the lease runs out, the worker
    commits again (the same match id: nothing new) and approves."""
    import httpx

    from services.matching import saga as saga_module

    s = await scene(platform)
    match = await propose(platform, s, 2)

    async def crash(*_: Any, **__: Any) -> None:
        raise RuntimeError("the process died")

    monkeypatch.setattr(saga_module.notifications, "notify", crash)
    transport = httpx.ASGITransport(app=faulty.app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://matching") as client:
        answer = await client.post(f"/api/matches/{match['id']}/approve", headers=coordinator(platform))
    assert answer.status_code == 500
    async with platform.matching_app.state.db.session() as session:
        row = await session.get(Match, uuid.UUID(match["id"]))
        assert row is not None and row.status == "approving" and row.saga_step == "committing"
    await check_invariants(platform, upstream_apps, settled=False)
    monkeypatch.undo()
    # While the dead runner's lease holds, the worker leaves it alone; once it has run out, it finishes.
    assert (await faulty.app.state.worker.run_once()).sagas_resumed == 0
    await faulty.work()
    state = await check_invariants(platform, upstream_apps)
    assert state["offers"][0].reserved == 2 and state["needs"][0].committed == 2


async def test_deliveries_reach_the_upstreams_once_they_are_back(
    platform: Platform, faulty: Faulty, upstream_apps: dict[str, FastAPI]
) -> None:
    s = await scene(platform)
    match = await propose(platform, s, 4)
    assert (await faulty.client.post(f"/api/matches/{match['id']}/approve", headers=coordinator(platform))).status_code == 200
    faulty.needs.fail("/delivered", "error")
    body = {"quantity": "4", "delivered_on": date.today().isoformat()}
    answer = await faulty.client.post(f"/api/matches/{match['id']}/deliveries", json=body,
                                      headers=platform.tokens.member(s.organisation))
    assert answer.status_code == 201 and answer.json()["status"] == "delivered"
    state = await check_invariants(platform, upstream_apps)
    assert state["offers"][0].delivered == 4 and state["needs"][0].delivered == 0  # offers got it, needs not yet
    faulty.heal()
    assert (await faulty.work()).deliveries_pushed == 1
    state = await check_invariants(platform, upstream_apps)
    assert state["needs"][0].delivered == 4 and state["needs"][0].status == "open"  # 4 of its 10
    async with platform.matching_app.state.db.session() as session:
        row = await session.get(Match, uuid.UUID(match["id"]))
        assert row is not None and row.delivery_synced == 4


async def test_webhooks_are_signed_retried_and_never_block_the_saga(
    platform: Platform, faulty: Faulty, upstream_apps: dict[str, FastAPI]
) -> None:
    s = await scene(platform)
    member = platform.tokens.member(s.organisation)
    path = f"/api/webhooks/organisations/{s.organisation}"
    url = {"url": "https://hooks.example.org/duijie"}
    assert (await faulty.client.put(path, json=url, headers=platform.tokens.member("00000000-0000-0000-0000-000000000001"))
            ).status_code == 403
    assert (await faulty.client.put(path, json={"url": "http://127.0.0.1:8001/internal/x"}, headers=member)).status_code == 422
    put = await faulty.client.put(path, json=url, headers=member)
    assert put.status_code == 201, put.text
    secret = put.json()["secret"]
    assert secret.startswith("whsec_") and (await faulty.client.get(path, headers=member)).json()["secret"] is None

    faulty.hook_answers.extend([500, 503])  # the receiver fails the first pass (both events), then answers 200
    match = await propose(platform, s, 2)
    assert (await faulty.client.post(f"/api/matches/{match['id']}/approve", headers=coordinator(platform))).status_code == 200
    assert faulty.hooks == []  # nothing is sent during the saga
    for _ in range(3):
        await faulty.work()
        async with faulty.app.state.db.transaction() as session:
            for row in (await session.scalars(select(WebhookDelivery))).all():
                row.next_attempt_at = row.created_at  # the backoff has passed
    events = [json.loads(request.content)["event"] for request in faulty.hooks]
    assert events.count("match_approved") == 2 and events.count("proposal_created") == 2
    for request in faulty.hooks:
        assert verify(secret, request.content, request.headers[SIGNATURE_HEADER])
        assert not verify("whsec_wrong", request.content, request.headers[SIGNATURE_HEADER])
    async with faulty.app.state.db.session() as session:
        rows = (await session.scalars(select(WebhookDelivery))).all()
    assert {row.status for row in rows} == {"delivered"}
    assert sorted(row.attempts for row in rows) == [2, 2]
    assert (await faulty.client.delete(path, headers=member)).status_code == 204
    assert (await faulty.client.get(path, headers=member)).status_code == 404
