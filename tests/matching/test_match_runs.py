"""Match runs: the exact optimum of a region, proposals that supersede earlier ones, reasons for the unmatched."""

from __future__ import annotations

import asyncio
import math
from datetime import date
from typing import Any

import numpy as np

from services.matching.allocation import greedy_allocation, lp_optimum
from services.matching.rules import DEFAULT_RULESET
from services.matching.scoring import NeedTable, score_pairs
from tests.matching.conftest import CENSHAN, COUNTY, TOWNSHIP, VILLAGE_A, VILLAGE_B, Platform, in_days, problem


async def _township(platform: Platform) -> dict[str, Any]:
    """Greedy fails here: the best single pair (strong offer → A) would leave B with nothing.

    The strong, 5A organisation serves villages A and B; the weak, 1A one only A. The optimum gives A the
    weak offer and B the strong one. X in B asks less urgently than B for the same: its only offer's capacity
    goes to B. F (health) has no offer of its kind at all; W (culture) only one that opens after its deadline.
    A need in Nanning lies outside the run's region and is not part of it.
    """
    strong = await platform.organisation(grade=5, name="惠州市五星慈善会")
    weak = await platform.organisation(grade=1, name="芦洲镇志愿服务队")
    o1 = await platform.offer(strong, region_codes=[VILLAGE_A, VILLAGE_B], quantity=10)
    o2 = await platform.offer(weak, region_codes=[VILLAGE_A], quantity=10)
    await platform.offer(weak, title="文艺演出", categories=["culture"], kind="service", unit="session", quantity=4,
                         region_codes=[COUNTY], available_from=in_days(100), available_until=in_days(200))
    na = await platform.need(VILLAGE_A, quantity=10, urgency=4)
    nb = await platform.need(VILLAGE_B, quantity=10, urgency=2)
    nx = await platform.need(VILLAGE_B, quantity=10, urgency=1)
    nf = await platform.need(VILLAGE_A, title="巡回义诊", category="health", kind="service", unit="session", quantity=2)
    nw = await platform.need(VILLAGE_A, title="春节文艺下乡", category="culture", kind="service", unit="session", quantity=2,
                             needed_by=in_days(20))
    far = await platform.need(CENSHAN)
    await platform.sync()
    return {"o1": o1["id"], "o2": o2["id"], "na": na["id"], "nb": nb["id"], "nx": nx["id"], "nf": nf["id"],
            "nw": nw["id"], "far": far["id"], "strong": strong, "weak": weak}


async def _matches(platform: Platform, **params: Any) -> list[dict[str, Any]]:
    response = await platform.matching.get("/api/matches", params=params, headers=platform.admin)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def test_a_run_proposes_the_exact_optimum_and_explains_it(platform: Platform) -> None:
    made = await _township(platform)

    run = await platform.run(TOWNSHIP, headers=platform.tokens.coordinator(COUNTY))

    assert (run["status"], run["stage"], run["progress"], run["region_code"]) == ("finished", "finished", 1.0, TOWNSHIP)
    assert run["ruleset_version"] == 1 and run["proposals"] == 2 and run["error"] is None
    proposals = await _matches(platform, run_id=run["id"])
    assert sorted((m["need_id"], m["offer_id"], m["quantity"]) for m in proposals) == sorted(
        [(made["na"], made["o2"], "10.00"), (made["nb"], made["o1"], "10.00")]
    )
    for match in proposals:
        assert (match["status"], match["ruleset_version"], match["region_code"]) == ("proposed", 1, TOWNSHIP)
        assert [e["rule"] for e in match["explanation"]][:2] == ["proximity", "coverage"]
        assert math.isclose(sum(e["weight"] * e["score"] for e in match["explanation"]), match["score"], abs_tol=1e-3)
        assert {e["rule"]: e for e in match["explanation"]}["proximity"]["reason_en"].startswith("same village")
    assert {m["need_id"]: m["village_code"] for m in proposals} == {made["na"]: VILLAGE_A, made["nb"]: VILLAGE_B}
    assert {m["offer_id"]: m["organisation_id"] for m in proposals} == {made["o1"]: made["strong"], made["o2"]: made["weak"]}

    # The objective is the LP optimum of the same problem, which a greedy fill misses.
    cache = platform.matching_app.state.read_models
    needs = NeedTable.from_views([v for v in cache.needs.values() if v.village_code.startswith(TOWNSHIP)])
    offers = await cache.offer_table()
    scored = score_pairs(needs, offers, cache.context(date.today()), DEFAULT_RULESET)
    assert math.isclose(run["objective"], lp_optimum(scored, needs, offers), abs_tol=1e-6)
    assert greedy_allocation(scored, needs, offers).objective < run["objective"] - 0.1
    assert run["objective"] == sum(m["score"] for m in proposals) or math.isclose(
        run["objective"], float(np.sum([m["score"] for m in proposals])), abs_tol=1e-3)

    assert run["counts"]["proposals"] == 2 and run["counts"]["unmatched"] == 3 and run["counts"]["needs"] == 5
    assert run["equity"] == {"villages_with_open_needs": 2, "villages_reached": 2, "villages_reached_share": 1.0,
                             "gini": run["equity"]["gini"]}
    assert 0 <= run["equity"]["gini"] < 1
    assert {"load", "score", "allocate", "explain", "write", "total"} <= set(run["timings"])
    assert run["started_at"] <= run["finished_at"]

    unmatched = await platform.matching.get(f"/api/match-runs/{run['id']}/unmatched", headers={**platform.admin, "Accept-Language": "en"})
    assert unmatched.status_code == 200, unmatched.text
    reasons = {item["need_id"]: item for item in unmatched.json()["items"]}
    assert set(reasons) == {made["nx"], made["nf"], made["nw"]}  # not the Nanning need, outside the region
    assert (reasons[made["nx"]]["code"], reasons[made["nx"]]["rejection"]) == ("capacity_taken", None)
    assert reasons[made["nx"]]["reason"] == "the capacity of its 1 candidate offers went to higher-valued needs"
    assert (reasons[made["nf"]]["code"], reasons[made["nf"]]["rejection"]) == ("no_candidate", "no_matching_offer")
    assert (reasons[made["nw"]]["code"], reasons[made["nw"]]["rejection"]) == ("no_candidate", "window_closed")
    assert reasons[made["nw"]]["reason_zh"] == "服务范围内的同类资源在截止日期前都不可用"
    assert all(item["reason"] == item["reason_en"] for item in reasons.values())


async def test_a_new_run_supersedes_the_unreviewed_proposals_of_the_last(platform: Platform) -> None:
    made = await _township(platform)
    first = await platform.run(TOWNSHIP)
    extra = await platform.need(VILLAGE_A, quantity=3, urgency=5)
    await platform.sync()

    second = await platform.run(COUNTY)  # a wider region covers the township's villages

    assert second["counts"]["superseded"] == 2
    assert {m["run_id"] for m in await _matches(platform, status="superseded")} == {first["id"]}
    proposed = await _matches(platform, status="proposed")
    assert {m["run_id"] for m in proposed} == {second["id"]} and len(proposed) == second["proposals"] >= 2
    assert extra["id"] in {m["need_id"] for m in proposed}
    assert made["na"] in {m["need_id"] for m in proposed}
    assert len(await _matches(platform, run_id=first["id"], status="proposed")) == 0


async def test_one_run_at_a_time_per_region_and_progress_is_visible(platform: Platform) -> None:
    await _township(platform)
    runner = platform.matching_app.state.match_runner
    runner.gate.clear()
    body = {"region_code": TOWNSHIP}

    answers = await asyncio.gather(
        platform.matching.post("/api/match-runs", json=body, headers=platform.admin),
        platform.matching.post("/api/match-runs", json=body, headers=platform.admin),
    )

    assert sorted(answer.status_code for answer in answers) == [201, 409]
    created = next(answer for answer in answers if answer.status_code == 201).json()
    problem(next(answer for answer in answers if answer.status_code == 409), 409)
    assert (created["status"], created["progress"], created["proposals"]) == ("queued", 0.0, 0)
    queued = (await platform.matching.get(f"/api/match-runs/{created['id']}", headers=platform.admin)).json()
    assert (queued["status"], queued["stage"]) == ("queued", "queued")
    # A region inside or around the busy one is busy too.
    problem(await platform.matching.post("/api/match-runs", json={"region_code": COUNTY}, headers=platform.admin), 409)
    problem(await platform.matching.post("/api/match-runs", json={"region_code": VILLAGE_A}, headers=platform.admin), 409)
    other = await platform.matching.post("/api/match-runs", json={"region_code": "450123"}, headers=platform.admin)
    assert other.status_code == 201

    runner.gate.set()
    await runner.wait_idle()
    done = (await platform.matching.get(f"/api/match-runs/{created['id']}", headers=platform.admin)).json()
    assert (done["status"], done["progress"]) == ("finished", 1.0)
    again = await platform.matching.post("/api/match-runs", json=body, headers=platform.admin)
    assert again.status_code == 201
    listed = (await platform.matching.get("/api/match-runs", params={"region": COUNTY}, headers=platform.admin)).json()
    assert len(listed["items"]) == 2


async def test_who_may_run_and_read_runs(platform: Platform) -> None:
    await _township(platform)
    tokens = platform.tokens
    body = {"region_code": TOWNSHIP}
    for headers in (tokens.officer(VILLAGE_A), tokens.coordinator("441302105"), tokens.coordinator("450123"), tokens.service()):
        problem(await platform.matching.post("/api/match-runs", json=body, headers=headers), 403)
    problem(await platform.matching.post("/api/match-runs", json=body), 401)
    for bad in ({"region_code": "4413021"}, {"region_code": "abc"}, {}, {"region_code": TOWNSHIP, "extra": 1}):
        problem(await platform.matching.post("/api/match-runs", json=bad, headers=platform.admin), 422)
    assert (await platform.matching.get("/api/match-runs", headers=platform.admin)).json()["items"] == []

    run = await platform.run(TOWNSHIP, headers=tokens.coordinator(TOWNSHIP))
    for headers in (tokens.coordinator("450123"), tokens.officer(VILLAGE_A)):
        problem(await platform.matching.get(f"/api/match-runs/{run['id']}", headers=headers), 404)
        problem(await platform.matching.get(f"/api/match-runs/{run['id']}/unmatched", headers=headers), 404)
    assert (await platform.matching.get(f"/api/match-runs/{run['id']}", headers=tokens.coordinator("44"))).status_code == 200
    problem(await platform.matching.get("/api/match-runs", headers=tokens.officer(VILLAGE_A)), 403)
    assert (await platform.matching.get("/api/match-runs", headers=tokens.coordinator("450123"))).json()["items"] == []


async def test_a_repeated_post_with_one_idempotency_key_starts_one_run(platform: Platform) -> None:
    await _township(platform)
    headers = {**platform.tokens.coordinator(COUNTY, subject="coordinator-li"), "Idempotency-Key": "run-441302104-1"}
    first = await platform.matching.post("/api/match-runs", json={"region_code": TOWNSHIP}, headers=headers)
    await platform.matching_app.state.match_runner.wait_idle()
    second = await platform.matching.post("/api/match-runs", json={"region_code": TOWNSHIP}, headers=headers)

    assert first.status_code == second.status_code == 201
    assert first.json()["id"] == second.json()["id"] and second.headers.get("idempotent-replayed") == "true"
    assert len((await platform.matching.get("/api/match-runs", headers=platform.admin)).json()["items"]) == 1
