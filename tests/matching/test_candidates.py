"""Ranked candidates with their explanations, and who may ask for which."""

from __future__ import annotations

import math
import uuid

from tests.matching.conftest import CENSHAN, COUNTY, HUIZHOU, VILLAGE_A, VILLAGE_B, Platform, in_days, problem


async def test_the_paired_organisation_ranks_first_and_every_score_is_explained(platform: Platform) -> None:
    """A 惠州 county: two organisations offer the same, one is paired (结对) with the village."""
    paired = await platform.organisation(grade=3, name="芦洲镇结对企业")
    unpaired = await platform.organisation(grade=3, name="惠州市另一家企业")
    await platform.pair(paired, VILLAGE_A)
    offer_unpaired = await platform.offer(unpaired, quantity=30)
    offer_paired = await platform.offer(paired, quantity=4)
    need = await platform.need(VILLAGE_A, quantity=10)
    await platform.sync()

    response = await platform.candidates(need_id=need["id"], headers={**platform.admin, "Accept-Language": "en"})

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["ruleset_version"] == 1 and body["why_none"] is None
    assert [item["offer_id"] for item in body["items"]] == [offer_paired["id"], offer_unpaired["id"]]
    first, second = body["items"]
    assert (first["quantity"], second["quantity"]) == ("4.00", "10.00")  # min(remaining, available)
    assert first["organisation_id"] == paired and first["village_code"] == VILLAGE_A
    rules = {e["rule"]: e for e in first["explanation"]}
    assert list(rules) == ["proximity", "coverage", "urgency", "deadline", "pairing", "grade", "equity", "beneficiaries"]
    assert (rules["pairing"]["score"], rules["pairing"]["reason"]) == (1.0, "paired with this village")
    assert rules["pairing"]["reason_zh"] == "已结对帮扶"
    assert {e["rule"]: e for e in second["explanation"]}["pairing"]["reason"] == "not paired with this village"
    assert rules["coverage"]["reason"] == "covers 40% of what is left"
    assert rules["proximity"]["reason"].startswith("same county")
    assert rules["grade"]["reason_en"] == "grade 3A organisation" and rules["grade"]["score"] == 0.6
    for item in body["items"]:
        assert math.isclose(sum(e["weight"] * e["score"] for e in item["explanation"]), item["score"], abs_tol=1e-3)
        assert math.isclose(sum(e["weight"] for e in item["explanation"]), 1.0, abs_tol=1e-3)
        assert all(e["ruleset_version"] == 1 for e in [item])

    in_chinese = (await platform.candidates(need_id=need["id"], headers={**platform.admin, "Accept-Language": "zh-CN"})).json()
    assert {e["rule"]: e for e in in_chinese["items"][0]["explanation"]}["pairing"]["reason"] == "已结对帮扶"


async def test_an_urgent_drought_relief_need_outranks_a_routine_one(platform: Platform) -> None:
    foundation = await platform.organisation(grade=4, region_codes=[HUIZHOU], name="惠州市慈善基金会")
    relief = await platform.offer(foundation, title="抗旱救灾资金", categories=["disaster"], kind="funds", unit="CNY",
                                  quantity="200000", region_codes=[HUIZHOU])
    routine = await platform.need(VILLAGE_A, title="村道护栏维修", category="disaster", kind="funds", unit="CNY",
                                  quantity="80000", urgency=2, needed_by=in_days(80), beneficiaries=300)
    drought = await platform.need(VILLAGE_B, title="抗旱应急饮水工程", category="disaster", kind="funds", unit="CNY",
                                  quantity="80000", urgency=5, needed_by=in_days(10), beneficiaries=300)
    await platform.need(VILLAGE_A, title="课桌椅", quantity=5)  # another category: never a candidate
    await platform.sync()

    response = await platform.candidates(offer_id=relief["id"], headers=platform.tokens.member(foundation))

    assert response.status_code == 200, response.text
    items = response.json()["items"]
    assert [item["need_id"] for item in items] == [drought["id"], routine["id"]]
    assert items[0]["score"] > items[1]["score"]
    urgency = {e["rule"]: e for e in items[0]["explanation"]}["urgency"]
    assert (urgency["score"], urgency["reason_en"], urgency["reason_zh"]) == (1.0, "urgency 5 of 5", "紧急程度 5/5")
    assert (await platform.candidates(offer_id=relief["id"], limit=1)).json()["items"][0]["need_id"] == drought["id"]


async def test_a_need_no_offer_fits_says_why(platform: Platform) -> None:
    organisation = await platform.organisation()
    await platform.offer(organisation, region_codes=[COUNTY])
    far = await platform.need(CENSHAN)  # desks in Nanning: the Huicheng offer does not reach it
    health = await platform.need(VILLAGE_A, category="health", kind="service", unit="session", quantity=3)
    await platform.sync()

    far_body = (await platform.candidates(need_id=far["id"], headers={**platform.admin, "Accept-Language": "en"})).json()
    health_body = (await platform.candidates(need_id=health["id"])).json()

    assert far_body["items"] == [] and far_body["why_none"]["code"] == "out_of_range"
    assert far_body["why_none"]["reason"] == far_body["why_none"]["reason_en"]
    assert "1" in far_body["why_none"]["reason_en"]  # "none of the 1 matching offers …"
    assert health_body["items"] == [] and health_body["why_none"]["code"] == "no_matching_offer"
    assert health_body["why_none"]["reason"] == health_body["why_none"]["reason_zh"]


async def test_who_may_see_which_candidates(platform: Platform) -> None:
    organisation = await platform.organisation(region_codes=[COUNTY])
    other_organisation = await platform.organisation(region_codes=[COUNTY], name="另一个组织")
    offer = await platform.offer(organisation)
    need_a = await platform.need(VILLAGE_A)
    need_b = await platform.need(VILLAGE_B)
    far = await platform.need(CENSHAN)
    await platform.sync()
    tokens = platform.tokens

    async def status(headers: dict[str, str], **params: str) -> int:
        return (await platform.candidates(headers=headers, **params)).status_code

    assert await status(tokens.officer(VILLAGE_A), need_id=need_a["id"]) == 200
    assert await status(tokens.coordinator(COUNTY), need_id=need_a["id"]) == 200
    assert await status(tokens.member(organisation), offer_id=offer["id"]) == 200
    problem(await platform.candidates(headers=tokens.officer(VILLAGE_A), need_id=need_b["id"]), 403)
    problem(await platform.candidates(headers=tokens.member(organisation), need_id=need_a["id"]), 403)
    problem(await platform.candidates(headers=tokens.coordinator("450123"), need_id=need_a["id"]), 403)
    problem(await platform.candidates(headers=tokens.member(other_organisation), offer_id=offer["id"]), 403)
    problem(await platform.candidates(headers=tokens.officer(VILLAGE_A), offer_id=offer["id"]), 403)
    problem(await platform.candidates(headers=tokens.coordinator("450123"), offer_id=offer["id"]), 403)
    problem(await platform.candidates(need_id=str(uuid.uuid4())), 404)
    problem(await platform.candidates(offer_id=str(uuid.uuid4())), 404)
    problem(await platform.matching.get("/api/candidates", params={"need_id": need_a["id"]}), 401)
    problem(await platform.candidates(headers=tokens.service(), need_id=need_a["id"]), 403)
    both = problem(await platform.candidates(need_id=need_a["id"], offer_id=offer["id"]), 422)
    assert {error["field"] for error in both["errors"]} == {"need_id", "offer_id"}
    problem(await platform.candidates(), 422)
    problem(await platform.candidates(need_id="not-a-uuid"), 422)
    problem(await platform.candidates(need_id=need_a["id"], limit=0), 422)
    assert far["id"]  # the Nanning need exists but the Huicheng offer cannot reach it

    # A coordinator of one township sees the offer's candidates inside that township only.
    township = await platform.candidates(headers=tokens.coordinator("441302104"), offer_id=offer["id"])
    assert {item["need_id"] for item in township.json()["items"]} == {need_a["id"], need_b["id"]}
    other_township = await platform.candidates(headers=tokens.coordinator("441302105"), offer_id=offer["id"])
    assert other_township.status_code == 200 and other_township.json()["items"] == []
