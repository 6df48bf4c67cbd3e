"""Proposals and pledges, the approval saga, reject and cancel, deliveries, receipt, follow-ups and the trail."""

from __future__ import annotations

import asyncio
import uuid
from datetime import date, timedelta
from typing import Any

from fastapi import FastAPI
from sqlalchemy import select

from services.matching.models import Change, MatchEvent, VillageReceived
from tests.matching.conftest import CENSHAN, VILLAGE_A, VILLAGE_B, Platform, problem
from tests.matching.saga_support import check_invariants, coordinator, new_key, propose, scene


async def _approve(platform: Platform, match_id: str, headers: dict[str, str] | None = None) -> Any:
    return await platform.matching.post(f"/api/matches/{match_id}/approve", headers=headers or coordinator(platform))


async def test_a_coordinator_proposes_and_an_organisation_pledges(platform: Platform) -> None:
    s = await scene(platform)
    tokens = platform.tokens
    proposal = await propose(platform, s, 4, note="先送 4 套")
    assert proposal["status"] == "proposed" and proposal["origin"] == "coordinator" and proposal["quantity"] == "4.00"
    assert proposal["note"] == "先送 4 套" and proposal["run_id"] is None and proposal["explanation"]
    pledge = await propose(platform, s, 2, headers=tokens.member(s.organisation))
    assert pledge["origin"] == "pledge"

    # Strangers may not: an officer, another organisation, a coordinator elsewhere.
    body = {"need_id": s.need, "offer_id": s.offer, "quantity": "1"}
    for stranger in (tokens.officer(VILLAGE_A), tokens.member(uuid.uuid4()), tokens.coordinator("450123")):
        problem(await platform.matching.post("/api/matches", json=body, headers=stranger), 403)
    # More than the need has left or the offer has available: 409 with the amounts; bad amounts 422.
    over = problem(await platform.matching.post("/api/matches", json={**body, "quantity": "11"}, headers=coordinator(platform)), 409)
    assert "10" in over["detail"]
    problem(await platform.matching.post("/api/matches", json={**body, "quantity": "1.5"}, headers=coordinator(platform)), 422)
    problem(await platform.matching.post("/api/matches", json={**body, "quantity": "0"}, headers=coordinator(platform)), 422)
    problem(await platform.matching.post("/api/matches", json={**body, "need_id": str(uuid.uuid4())},
                                         headers=coordinator(platform)), 404)
    # A hard filter that fails: a need in a village outside the offer's service region.
    far = await platform.need(CENSHAN, quantity=3)
    await platform.sync()
    refused = problem(await platform.matching.post(
        "/api/matches", json={**body, "need_id": far["id"]}, headers=platform.admin | {"Accept-Language": "en"}), 422)
    assert "cannot be proposed" in refused["detail"]

    # The village's officer hears of both; the organisation of the coordinator's proposal; the region of the pledge.
    officer = (await platform.matching.get("/api/notifications", headers=tokens.officer(VILLAGE_A))).json()["items"]
    assert {n["event"] for n in officer} == {"proposal_created", "pledge_created"}
    members = (await platform.matching.get("/api/notifications", headers=tokens.member(s.organisation))).json()["items"]
    assert [n["event"] for n in members] == ["proposal_created"]
    region = (await platform.matching.get("/api/notifications", headers=coordinator(platform))).json()["items"]
    assert [n["event"] for n in region] == ["pledge_created"] and "村小学课桌椅" in region[0]["title"]
    assert (await platform.matching.get("/api/notifications", headers=tokens.officer(VILLAGE_B))).json()["items"] == []


async def test_approval_reserves_commits_and_leaves_a_trail(platform: Platform, upstream_apps: dict[str, FastAPI]) -> None:
    s = await scene(platform)
    match = await propose(platform, s, 4)
    tokens = platform.tokens
    problem(await _approve(platform, match["id"], tokens.officer(VILLAGE_A)), 403)
    problem(await _approve(platform, match["id"], tokens.member(s.organisation)), 403)
    problem(await _approve(platform, match["id"], tokens.coordinator("450123")), 404)  # cannot even see it

    approved = await _approve(platform, match["id"])
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "approved" and approved.json()["saga_step"] is None
    state = await check_invariants(platform, upstream_apps)
    assert state["offers"][0].reserved == 4 and state["needs"][0].committed == 4
    again = problem(await _approve(platform, match["id"]), 409)
    assert "approved" in again["detail"] or "批准" in again["detail"]

    detail = (await platform.matching.get(f"/api/matches/{match['id']}", headers=tokens.officer(VILLAGE_A))).json()
    actions = [(e["action"], e["from_status"], e["to_status"]) for e in detail["history"]]
    assert actions == [("propose", None, "proposed"), ("approve", "proposed", "approving"),
                       ("saga_committing", "approving", "approving"), ("approved", "approving", "approved")]
    assert all(e["actor"] for e in detail["history"])
    history = await platform.matching.get(f"/api/matches/{match['id']}/history", headers=tokens.member(s.organisation))
    assert history.status_code == 200 and len(history.json()) == 4
    # The change feed carries every state change of the match.
    async with platform.matching_app.state.db.session() as session:
        ops = (await session.scalars(select(Change.op).where(Change.entity_id == match["id"]).order_by(Change.seq))).all()
    assert ops == ["propose", "approve", "approved"]  # the saga's inner steps are audited, not fed
    members = (await platform.matching.get("/api/notifications", headers=tokens.member(s.organisation))).json()["items"]
    assert members[0]["event"] == "match_approved"


async def test_a_refused_approval_is_compensated_and_fails_with_the_reason(
    platform: Platform, upstream_apps: dict[str, FastAPI]
) -> None:
    s = await scene(platform, offer_quantity=5, need_quantity=10)
    first, second = await propose(platform, s, 4), await propose(platform, s, 4)
    assert (await _approve(platform, first["id"])).status_code == 200
    # Only 1 left on the offer (the read model has not seen the reservation yet): offers refuses.
    failed = problem(await _approve(platform, second["id"], coordinator(platform) | {"Accept-Language": "en"}), 409)
    assert failed["type"] == "/problems/match-failed" and "reserved" in failed["detail"]
    shown = (await platform.matching.get(f"/api/matches/{second['id']}", headers=platform.admin)).json()
    assert shown["status"] == "failed" and "供给方拒绝预留" in shown["status_reason"] and shown["status_reason_en"]
    await check_invariants(platform, upstream_apps)
    assert [e["action"] for e in shown["history"]][-2:] == ["saga_unreserving", "failed"]
    # A failed approval stays failed: a retry answers the same reason.
    assert problem(await _approve(platform, second["id"]), 409)["type"] == "/problems/match-failed"
    region = (await platform.matching.get("/api/notifications", headers=coordinator(platform))).json()["items"]
    assert {"match_failed", "match_approved"} <= {n["event"] for n in region}


async def test_commit_refused_releases_the_reservation(platform: Platform, upstream_apps: dict[str, FastAPI]) -> None:
    s = await scene(platform, offer_quantity=10, need_quantity=5)
    first, second = await propose(platform, s, 4), await propose(platform, s, 4)
    assert (await _approve(platform, first["id"])).status_code == 200
    failed = problem(await _approve(platform, second["id"]), 409)
    assert "需求方拒绝承诺" in failed["detail"]
    state = await check_invariants(platform, upstream_apps)
    assert state["offers"][0].reserved == 4  # the second reservation was released again


async def test_two_coordinators_approving_at_once_make_one_saga(platform: Platform, upstream_apps: dict[str, FastAPI]) -> None:
    s = await scene(platform)
    match = await propose(platform, s, 3)
    one, other = platform.tokens.coordinator("441302"), platform.tokens.coordinator("4413")
    answers = await asyncio.gather(_approve(platform, match["id"], one), _approve(platform, match["id"], other))
    assert sorted(a.status_code for a in answers) == [200, 409], [a.text for a in answers]
    state = await check_invariants(platform, upstream_apps)
    assert len(state["reservations"]) == 1 and len(state["commitments"]) == 1
    assert state["offers"][0].reserved == 3 and state["needs"][0].committed == 3
    async with platform.matching_app.state.db.session() as session:
        approvals = (await session.scalars(select(MatchEvent).where(MatchEvent.action == "approve"))).all()
    assert len(approvals) == 1


async def test_one_idempotency_key_one_effect_and_409_while_running(
    platform: Platform, upstream_apps: dict[str, FastAPI]
) -> None:
    s = await scene(platform)
    match = await propose(platform, s, 2)
    headers = coordinator(platform) | new_key()
    # Hold the first request inside its saga (at the reservation), and repeat the key meanwhile.
    offers_app = upstream_apps["offers"]
    entered, release = asyncio.Event(), asyncio.Event()
    original = platform.matching_app.state.clients.reservations.hold

    async def slow_hold(*args: Any) -> Any:
        entered.set()
        await release.wait()
        return await original(*args)

    platform.matching_app.state.clients.reservations.hold = slow_hold
    try:
        first = asyncio.create_task(_approve(platform, match["id"], headers))
        await asyncio.wait_for(entered.wait(), 5)
        running = problem(await _approve(platform, match["id"], headers), 409)
        assert "Idempotency-Key" in running["detail"]
        release.set()
        answer = await first
    finally:
        platform.matching_app.state.clients.reservations.hold = original
    assert answer.status_code == 200, answer.text
    replay = await _approve(platform, match["id"], headers)
    assert replay.status_code == 200 and replay.headers["idempotent-replayed"] == "true" and replay.json() == answer.json()
    other_body = await platform.matching.post(f"/api/matches/{match['id']}/cancel", json={"reason": "x"}, headers=headers)
    problem(other_body, 422)  # the same key for another request
    state = await check_invariants(platform, upstream_apps)
    assert state["offers"][0].reserved == 2 and offers_app is upstream_apps["offers"]


async def test_reject_and_cancel_release_whatever_was_held(platform: Platform, upstream_apps: dict[str, FastAPI]) -> None:
    s = await scene(platform)
    tokens = platform.tokens
    rejected, withdrawn, cancelled, approved = [await propose(platform, s, 1) for _ in range(4)]
    problem(await platform.matching.post(f"/api/matches/{rejected['id']}/reject", json={"reason": "重复"},
                                         headers=tokens.member(s.organisation)), 403)
    answer = await platform.matching.post(f"/api/matches/{rejected['id']}/reject", json={"reason": "重复"}, headers=coordinator(platform))
    assert answer.status_code == 200 and answer.json()["status"] == "rejected" and answer.json()["status_reason"] == "重复"
    problem(await platform.matching.post(f"/api/matches/{rejected['id']}/reject", json={"reason": "again"},
                                         headers=coordinator(platform)), 409)
    problem(await platform.matching.post(f"/api/matches/{rejected['id']}/reject", json={}, headers=coordinator(platform)), 422)

    # The organisation withdraws its own pledge only; never a coordinator's proposal.
    pledge = await propose(platform, s, 1, headers=tokens.member(s.organisation))
    problem(await platform.matching.post(f"/api/matches/{withdrawn['id']}/cancel", json={"reason": "x"},
                                         headers=tokens.member(s.organisation)), 403)
    mine = await platform.matching.post(f"/api/matches/{pledge['id']}/cancel", json={"reason": "改期"},
                                        headers=tokens.member(s.organisation))
    assert mine.status_code == 200 and mine.json()["status"] == "cancelled"
    assert (await platform.matching.post(f"/api/matches/{cancelled['id']}/cancel", json={"reason": "x"},
                                         headers=coordinator(platform))).json()["status"] == "cancelled"

    assert (await _approve(platform, approved["id"])).status_code == 200
    state = await check_invariants(platform, upstream_apps)
    assert state["offers"][0].reserved == 1
    gone = await platform.matching.post(f"/api/matches/{approved['id']}/cancel", json={"reason": "村里已自筹"},
                                        headers=coordinator(platform))
    assert gone.status_code == 200 and gone.json()["status"] == "cancelled", gone.text
    state = await check_invariants(platform, upstream_apps)
    assert state["offers"][0].reserved == 0 and state["needs"][0].committed == 0
    problem(await _approve(platform, approved["id"]), 409)


async def test_deliveries_receipt_and_follow_ups_close_the_loop(platform: Platform, upstream_apps: dict[str, FastAPI]) -> None:
    s = await scene(platform, offer_quantity=10, need_quantity=6)
    tokens = platform.tokens
    match = await propose(platform, s, 6)
    path = f"/api/matches/{match['id']}"
    member, officer = tokens.member(s.organisation), tokens.officer(VILLAGE_A)
    today = date.today().isoformat()
    problem(await platform.matching.post(f"{path}/deliveries", json={"quantity": "2", "delivered_on": today}, headers=member), 409)
    assert (await _approve(platform, match["id"])).status_code == 200

    problem(await platform.matching.post(f"{path}/deliveries", json={"quantity": "2", "delivered_on": today},
                                         headers=coordinator(platform)), 403)
    part = await platform.matching.post(f"{path}/deliveries", json={"quantity": "2", "delivered_on": today, "note": "第一批"},
                                        headers=member)
    assert part.status_code == 201 and part.json()["status"] == "approved" and part.json()["delivered"] == "2.00"
    problem(await platform.matching.post(f"{path}/deliveries", json={"quantity": "5", "delivered_on": today}, headers=member), 409)
    future = (date.today() + timedelta(days=9)).isoformat()
    problem(await platform.matching.post(f"{path}/deliveries", json={"quantity": "1", "delivered_on": future}, headers=member), 422)
    # Receipt only once all is delivered, and only by the village's officer.
    problem(await platform.matching.post(f"{path}/receipt", json={"quantity": "2", "satisfaction": 5}, headers=officer), 409)
    rest = await platform.matching.post(f"{path}/deliveries", json={"quantity": "4", "delivered_on": today}, headers=member)
    assert rest.status_code == 201 and rest.json()["status"] == "delivered"
    state = await check_invariants(platform, upstream_apps)
    assert state["offers"][0].delivered == 6 and state["offers"][0].reserved == 0
    assert state["needs"][0].delivered == 6 and state["needs"][0].status == "fulfilled"
    assert [n["event"] for n in (await platform.matching.get("/api/notifications", headers=officer)).json()["items"]][:2] == [
        "match_delivered", "delivery_recorded"]

    receipt = {"quantity": "6", "satisfaction": 5, "comment": "课桌椅已到，学生很高兴"}
    for other in (coordinator(platform), member, platform.admin):
        problem(await platform.matching.post(f"{path}/receipt", json=receipt, headers=other), 403)
    problem(await platform.matching.post(f"{path}/receipt", json=receipt, headers=tokens.officer(VILLAGE_B)), 404)
    problem(await platform.matching.post(f"{path}/receipt", json={**receipt, "satisfaction": 6}, headers=officer), 422)
    problem(await platform.matching.post(f"{path}/receipt", json={**receipt, "quantity": "7"}, headers=officer), 409)
    done = await platform.matching.post(f"{path}/receipt", json=receipt, headers=officer)
    assert done.status_code == 200 and done.json()["status"] == "received"
    assert done.json()["receipt"]["satisfaction"] == 5 and done.json()["receipt"]["quantity"] == "6.00"
    problem(await platform.matching.post(f"{path}/receipt", json=receipt, headers=officer), 409)
    async with platform.matching_app.state.db.session() as session:
        received = await session.get(VillageReceived, VILLAGE_A)
    assert received is not None and received.value_cny == 3000  # 6 sets at 500 CNY each

    problem(await platform.matching.post(f"{path}/follow-ups", json={"visited_on": today, "note": "回访"}, headers=officer), 403)
    visit = await platform.matching.post(f"{path}/follow-ups", json={"visited_on": today, "note": "回访：课桌椅在用"},
                                         headers=coordinator(platform))
    assert visit.status_code == 201
    for party in (officer, member, coordinator(platform)):
        seen = (await platform.matching.get(path, headers=party)).json()
        assert seen["status"] == "received" and len(seen["deliveries"]) == 2 and len(seen["follow_ups"]) == 1
        assert [e["action"] for e in seen["history"]][-4:] == ["deliver", "deliver", "receive", "follow_up"]
    members = (await platform.matching.get("/api/notifications", headers=member)).json()["items"]
    assert members[0]["event"] == "match_received"


async def test_audit_is_for_the_regions_coordinators(platform: Platform) -> None:
    s = await scene(platform)
    match = await propose(platform, s, 1)
    await platform.matching.post(f"/api/matches/{match['id']}/reject", json={"reason": "数量不对"}, headers=coordinator(platform))
    page = await platform.matching.get("/api/audit", headers=coordinator(platform), params={"limit": 1})
    assert page.status_code == 200 and page.json()["next_cursor"]
    first = page.json()["items"][0]
    assert first["action"] == "reject" and first["from_status"] == "proposed" and first["to_status"] == "rejected"
    assert first["reason"] == "数量不对" and first["actor_role"] == "coordinator"
    rest = await platform.matching.get("/api/audit", headers=coordinator(platform),
                                       params={"limit": 5, "cursor": page.json()["next_cursor"]})
    assert [e["action"] for e in rest.json()["items"]] == ["propose"]
    assert (await platform.matching.get("/api/audit", headers=platform.tokens.coordinator("450123"))).json()["items"] == []
    problem(await platform.matching.get("/api/audit", headers=platform.tokens.coordinator("450123"),
                                        params={"region": "441302"}), 403)
    problem(await platform.matching.get("/api/audit", headers=platform.tokens.officer(VILLAGE_A)), 403)
    assert len((await platform.matching.get("/api/audit", headers=platform.admin)).json()["items"]) == 2


async def test_notifications_are_marked_read_per_person(platform: Platform) -> None:
    s = await scene(platform)
    await propose(platform, s, 1)
    officer = platform.tokens.officer(VILLAGE_A, subject="officer-1")
    items = (await platform.matching.get("/api/notifications", headers=officer)).json()["items"]
    assert len(items) == 1 and items[0]["read"] is False
    marked = await platform.matching.post(f"/api/notifications/{items[0]['id']}/read", headers=officer)
    assert marked.status_code == 200 and marked.json()["read"] is True
    assert (await platform.matching.post(f"/api/notifications/{items[0]['id']}/read", headers=officer)).status_code == 200
    assert (await platform.matching.get("/api/notifications", headers=officer, params={"unread": "true"})).json()["items"] == []
    colleague = platform.tokens.officer(VILLAGE_A, subject="officer-2")
    assert (await platform.matching.get("/api/notifications", headers=colleague)).json()["items"][0]["read"] is False
    problem(await platform.matching.post(f"/api/notifications/{items[0]['id']}/read",
                                         headers=platform.tokens.officer(VILLAGE_B)), 404)


async def test_an_exception_before_the_commit_leaves_neither_the_change_nor_its_feed_entry(
    platform: Platform, monkeypatch: Any
) -> None:
    import httpx

    from services.matching import lifecycle

    s = await scene(platform)
    match = await propose(platform, s, 1)
    async with platform.matching_app.state.db.session() as session:
        before = len((await session.scalars(select(Change))).all())

    async def broken(*_: Any, **__: Any) -> None:
        raise RuntimeError("injected after the business write")

    monkeypatch.setattr(lifecycle.notifications, "notify", broken)
    transport = httpx.ASGITransport(app=platform.matching_app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://matching") as client:
        answer = await client.post(f"/api/matches/{match['id']}/reject", json={"reason": "x"}, headers=coordinator(platform))
        assert answer.status_code == 500
        created = await client.post("/api/matches", json={"need_id": s.need, "offer_id": s.offer, "quantity": "1"},
                                    headers=coordinator(platform))
        assert created.status_code == 500
    async with platform.matching_app.state.db.session() as session:
        assert len((await session.scalars(select(Change))).all()) == before
        events = (await session.scalars(select(MatchEvent))).all()
    assert [e.action for e in events] == ["propose"]
    monkeypatch.undo()
    shown = (await platform.matching.get(f"/api/matches/{match['id']}", headers=platform.admin)).json()
    assert shown["status"] == "proposed" and shown["version"] == 1
    assert len((await platform.matching.get("/api/matches", headers=platform.admin)).json()["items"]) == 1
