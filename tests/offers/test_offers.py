"""Verified organisations publish offers; everyone signed in finds them; only the organisation manages them."""

from __future__ import annotations

import uuid
from datetime import date, timedelta

import pytest

from services.common.http import encode_cursor
from tests.offers.conftest import (
    BEILUN,
    HUIZHOU,
    OffersService,
    offer_body,
    post_offer,
    post_org,
    verified_org,
)

OTHER_ORG = "7d4b2c1e-0000-4000-8000-000000000001"


async def _listed(offers: OffersService, query: str = "") -> list[dict]:
    response = await offers.client.get(f"/api/offers?{query}", headers=offers.tokens.admin())
    assert response.status_code == 200, response.text
    return response.json()["items"]


async def _reserve(offers: OffersService, offer_id: str, quantity: object) -> int:
    response = await offers.client.post(
        f"/internal/offers/{offer_id}/reservations", json={"match_id": str(uuid.uuid4()), "quantity": quantity},
        headers=offers.tokens.service(),
    )
    return response.status_code


async def test_a_member_publishes_an_offer_and_anyone_signed_in_reads_it(offers: OffersService) -> None:
    organisation = await verified_org(offers)
    response = await offers.client.post(
        "/api/offers", json=offer_body(organisation["id"]), headers=offers.tokens.member(organisation["id"])
    )

    assert response.status_code == 201, response.text
    created = response.json()
    assert response.headers["Location"] == f"/api/offers/{created['id']}"
    assert response.headers["ETag"] == '"1"'
    assert (created["quantity"], created["reserved"], created["delivered"], created["available"]) == (
        "60.00", "0.00", "0.00", "60.00")
    assert (created["status"], created["version"], created["categories"]) == ("active", 1, ["talent", "education"])

    as_officer = await offers.client.get(response.headers["Location"], headers=offers.tokens.officer("450123105203"))
    assert as_officer.status_code == 200
    assert as_officer.headers["ETag"] == '"1"'
    assert as_officer.json()["title"] == "职业技能培训名额"


async def test_a_charity_fund_keeps_every_fen(offers: OffersService) -> None:
    organisation = await verified_org(offers)
    created = await post_offer(offers, organisation["id"], title="助学慈善基金", categories=["education"], kind="funds",
                               unit="CNY", quantity="550000.05", skills=[])
    fetched = (await offers.client.get(f"/api/offers/{created['id']}", headers=offers.tokens.admin())).json()
    assert (fetched["quantity"], fetched["available"]) == ("550000.05", "550000.05")


async def test_an_offer_may_serve_a_radius_instead_of_named_regions(offers: OffersService) -> None:
    organisation = await verified_org(offers)
    created = await post_offer(offers, organisation["id"], title="户外徒步路线规划", categories=["culture"],
                               kind="expertise", unit="person_day", quantity="12.5", region_codes=[], radius_km=30)
    assert (created["region_codes"], created["radius_km"], created["quantity"]) == ([], 30.0, "12.50")


@pytest.mark.parametrize(
    ("who", "expected"),
    [
        ("own_member", 201),
        ("member_of_other_organisation", 403),
        ("coordinator_of_city", 201),
        ("coordinator_of_county", 403),  # the organisation works city-wide, beyond the county
        ("coordinator_elsewhere", 403),
        ("admin", 201),
        ("officer", 403),
        ("service", 403),
    ],
)
async def test_who_may_publish_for_an_organisation(offers: OffersService, who: str, expected: int) -> None:
    organisation = await verified_org(offers)
    t = offers.tokens
    headers = {
        "own_member": t.member(organisation["id"]), "member_of_other_organisation": t.member(OTHER_ORG),
        "coordinator_of_city": t.coordinator(HUIZHOU), "coordinator_of_county": t.coordinator("441302"),
        "coordinator_elsewhere": t.coordinator(BEILUN), "admin": t.admin(), "officer": t.officer("441302104201"),
        "service": t.service(),
    }[who]
    response = await offers.client.post("/api/offers", json=offer_body(organisation["id"]), headers=headers)
    assert response.status_code == expected, response.text
    assert len(await _listed(offers)) == (1 if expected == 201 else 0)


async def test_an_unverified_organisation_cannot_publish_yet(offers: OffersService) -> None:
    organisation = await post_org(offers)
    response = await offers.client.post(
        "/api/offers", json=offer_body(organisation["id"]),
        headers={**offers.tokens.member(organisation["id"]), "Accept-Language": "en"},
    )
    assert response.status_code == 409
    assert response.json()["detail"] == (
        "The organisation '惠州市慈善助学基金会' is not verified yet; it can publish offers once a coordinator verifies it."
    )
    assert await _listed(offers) == []


async def test_an_offer_of_an_unknown_organisation_is_a_field_error(offers: OffersService) -> None:
    response = await offers.client.post("/api/offers", json=offer_body(OTHER_ORG), headers=offers.tokens.admin())
    assert response.status_code == 422
    assert response.json()["errors"] == [{"field": "organisation_id", "message": "找不到这个组织。"}]


_PAST = (date.today() - timedelta(days=30)).isoformat()


@pytest.mark.parametrize(
    ("override", "field", "zh_message"),
    [
        ({"unit": "kg"}, "unit", "“training”类的单位只能是：trainee"),
        ({"quantity": -5}, "quantity", "必须大于 0"),
        ({"kind": "funds", "unit": "CNY", "quantity": "10.005"}, "quantity", "最多 2 位小数"),
        ({"quantity": "2.5"}, "quantity", "“trainee”须为整数"),
        ({"kind": "magic"}, "kind", "只能是：'funds', 'goods', 'service', 'training' 或 'expertise'"),
        ({"categories": []}, "categories", "至少 1 项"),
        ({"region_codes": []}, "region_codes", "请填写服务地区（region_codes），或给出中心点和服务半径"),
        ({"region_codes": ["4413021"]}, "region_codes.0", "区划代码须为 2/4/6/9/12 位数字（省 2、市 4、县 6、乡镇 9、村 12）"),
        ({"radius_km": 30, "lat": None, "lon": None}, "lat", "按半径服务须给出中心点的纬度和经度"),
        ({"radius_km": 0}, "radius_km", "必须大于 0"),
        ({"lat": 95}, "lat", "必须小于或等于 90"),
        ({"lon": None}, "lon", "纬度和经度须同时填写"),
        ({"available_until": (date.today() - timedelta(days=1)).isoformat(), "available_from": _PAST}, "available_until",
         "结束日期不能早于今天"),
        ({"available_from": (date.today() + timedelta(days=200)).isoformat()}, "available_until", "结束日期不能早于开始日期"),
        ({"available_from": "next week"}, "available_from", "日期格式应为 YYYY-MM-DD"),
        ({"title": "长" * 201}, "title", "最多 200 个字符"),
        ({"skills": [" "]}, "skills.0", "至少 1 个字符"),
        ({"beneficiary_groups": ["pets"]}, "beneficiary_groups.0",
         "只能是：'elderly', 'children', 'left_behind_children', 'students', 'disabled', 'low_income', "
         "'landless_farmers', 'women' 或 'general'"),
        ({"reserved": 10}, "reserved", "不认识的字段"),
    ],
)
async def test_bad_input_is_a_problem_in_chinese_and_publishes_nothing(
    offers: OffersService, override: dict, field: str, zh_message: str
) -> None:
    organisation = await verified_org(offers)
    body = {key: value for key, value in offer_body(organisation["id"], **override).items() if value is not None}

    response = await offers.client.post("/api/offers", json=body, headers=offers.tokens.member(organisation["id"]))

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["title"] == "输入有误"
    assert problem["errors"] == [{"field": field, "message": zh_message}]
    assert await _listed(offers) == []


async def test_problems_speak_english_when_asked(offers: OffersService) -> None:
    organisation = await verified_org(offers)
    response = await offers.client.post(
        "/api/offers", json=offer_body(organisation["id"], region_codes=[]),
        headers={**offers.tokens.member(organisation["id"]), "Accept-Language": "en"},
    )
    assert response.json()["title"] == "Invalid input"
    assert response.json()["errors"] == [
        {"field": "region_codes", "message": "Name the regions served (region_codes), or give a centre and a radius"}
    ]


async def test_list_filters_by_status_category_kind_region_organisation_and_text(offers: OffersService) -> None:
    huizhou, beilun = await verified_org(offers), await verified_org(offers, name="北仑区书法家协会", region_codes=[BEILUN])
    await post_offer(offers, huizhou["id"])  # 职业技能培训名额: talent + education, training, 4413
    await post_offer(offers, huizhou["id"], title="助学基金", categories=["education"], kind="funds", unit="CNY",
                     quantity=550000, region_codes=["441302"], skills=[])
    await post_offer(offers, beilun["id"], title="书法家写春联", categories=["culture"], kind="service", unit="session",
                     quantity=8, region_codes=[BEILUN], skills=["书法"])
    clinic = await post_offer(offers, huizhou["id"], title="义诊", categories=["health"], kind="service",
                              unit="session", quantity=4, region_codes=["45"], skills=["全科"])
    await post_offer(offers, huizhou["id"], title="徒步路线规划", categories=["culture", "environment"],
                     kind="expertise", unit="person_day", quantity=3, region_codes=[], radius_km=30, skills=[])
    await offers.client.post(f"/api/offers/{clinic['id']}/withdraw", headers=offers.tokens.member(huizhou["id"]))

    async def titles(query: str) -> set[str]:
        return {item["title"] for item in await _listed(offers, query)}

    assert await titles("region=441302") == {"助学基金", "职业技能培训名额"}  # a city-wide offer serves the county
    assert await titles("region=441302104") == {"助学基金", "职业技能培训名额"}
    assert await titles("region=44") == {"助学基金", "职业技能培训名额"}  # the province includes its cities' offers
    assert await titles("region=4501") == {"义诊"}
    assert await titles("region=4413&category=education&kind=funds") == {"助学基金"}
    assert await titles("category=culture") == {"徒步路线规划", "书法家写春联"}
    assert await titles("kind=service") == {"义诊", "书法家写春联"}
    assert await titles("status=withdrawn") == {"义诊"}
    assert await titles("status=active&category=health") == set()
    assert await titles(f"organisation_id={beilun['id']}") == {"书法家写春联"}
    assert await titles("q=春联") == {"书法家写春联"}
    assert await titles("q=全科") == {"义诊"}  # skills are searched too: a talent bank


async def test_cursor_pages_walk_every_offer_once(offers: OffersService) -> None:
    organisation = await verified_org(offers)
    posted = {(await post_offer(offers, organisation["id"], title=f"供给 {n}"))["id"] for n in range(7)}
    seen: list[str] = []
    cursor = None
    for _ in range(5):
        page = (await offers.client.get(
            "/api/offers?limit=3" + (f"&cursor={cursor}" if cursor else ""), headers=offers.tokens.admin()
        )).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 7
    assert set(seen) == posted


async def test_a_bad_cursor_or_filter_is_a_clear_422(offers: OffersService) -> None:
    admin = offers.tokens.admin()
    forged = [encode_cursor(["yesterday", uuid.uuid4()]), encode_cursor(["2026-01-01T00:00:00", uuid.uuid4()]),
              encode_cursor(["2026-01-01T00:00:00+08:00", "not-an-id"])]
    for query in ("cursor=not-a-cursor", *(f"cursor={cursor}" for cursor in forged), "limit=500", "region=4",
                  "category=space", "organisation_id=42"):
        response = await offers.client.get(f"/api/offers?{query}", headers=admin)
        assert response.status_code == 422, query
        assert response.headers["content-type"] == "application/problem+json"


async def test_patch_requires_the_current_etag(offers: OffersService) -> None:
    organisation = await verified_org(offers)
    created = await post_offer(offers, organisation["id"])
    path, member = f"/api/offers/{created['id']}", offers.tokens.member(organisation["id"])

    missing = await offers.client.patch(path, json={"quantity": 80}, headers=member)
    updated = await offers.client.patch(path, json={"quantity": 80, "skills": ["电商"]}, headers={**member, "If-Match": '"1"'})
    stale = await offers.client.patch(path, json={"quantity": 70}, headers={**member, "If-Match": '"1"'})

    assert (missing.status_code, updated.status_code, stale.status_code) == (428, 200, 412)
    assert (updated.json()["quantity"], updated.json()["available"], updated.json()["skills"]) == ("80.00", "80.00", ["电商"])
    assert updated.headers["ETag"] == '"2"'
    assert (await offers.client.get(path, headers=member)).json()["quantity"] == "80.00"


async def test_patch_checks_the_offer_as_it_would_be(offers: OffersService) -> None:
    organisation = await verified_org(offers)
    created = await post_offer(offers, organisation["id"])
    path = f"/api/offers/{created['id']}"
    headers = {**offers.tokens.member(organisation["id"]), "If-Match": '"1"', "Accept-Language": "en"}

    fraction = await offers.client.patch(path, json={"quantity": "10.5"}, headers=headers)
    no_place = await offers.client.patch(path, json={"region_codes": []}, headers=headers)
    backwards = await offers.client.patch(
        path, json={"available_from": (date.today() + timedelta(days=365)).isoformat()}, headers=headers
    )

    assert fraction.json()["errors"] == [{"field": "quantity", "message": "A quantity in 'trainee' must be a whole number"}]
    assert no_place.json()["errors"] == [
        {"field": "region_codes", "message": "Name the regions served (region_codes), or give a centre and a radius"}
    ]
    assert backwards.json()["errors"] == [{"field": "available_until", "message": "available_until cannot be before available_from"}]
    assert (await offers.client.get(path, headers=headers)).json()["version"] == 1


async def test_quantity_cannot_drop_below_what_is_reserved_or_delivered(offers: OffersService) -> None:
    organisation = await verified_org(offers)
    created = await post_offer(offers, organisation["id"])
    assert await _reserve(offers, created["id"], 30) == 200
    path, member = f"/api/offers/{created['id']}", offers.tokens.member(organisation["id"])

    too_low = await offers.client.patch(path, json={"quantity": 29}, headers={**member, "If-Match": '"2"', "Accept-Language": "en"})
    other_kind = await offers.client.patch(path, json={"kind": "expertise", "unit": "person_day"},
                                           headers={**member, "If-Match": '"2"'})
    just_enough = await offers.client.patch(path, json={"quantity": 30}, headers={**member, "If-Match": '"2"'})

    assert too_low.status_code == 409
    assert too_low.json()["detail"] == "The quantity cannot drop below the 30.00 already reserved or delivered."
    assert other_kind.status_code == 409
    assert (just_enough.status_code, just_enough.json()["available"]) == (200, "0.00")


async def test_a_paused_offer_takes_no_reservations_until_resumed(offers: OffersService) -> None:
    organisation = await verified_org(offers)
    created = await post_offer(offers, organisation["id"])
    path, member = f"/api/offers/{created['id']}", offers.tokens.member(organisation["id"])

    paused = await offers.client.patch(path, json={"status": "paused"}, headers={**member, "If-Match": '"1"'})
    assert paused.json()["status"] == "paused"
    assert await _reserve(offers, created["id"], 1) == 409
    resumed = await offers.client.patch(path, json={"status": "active"}, headers={**member, "If-Match": '"2"'})
    assert resumed.json()["status"] == "active"
    assert await _reserve(offers, created["id"], 1) == 200


async def test_withdrawing_stops_new_reservations_and_keeps_existing_ones(offers: OffersService) -> None:
    organisation = await verified_org(offers)
    created = await post_offer(offers, organisation["id"])
    path, member = f"/api/offers/{created['id']}", offers.tokens.member(organisation["id"])
    assert await _reserve(offers, created["id"], 20) == 200

    withdrawn = await offers.client.post(f"{path}/withdraw", headers=member)
    again = await offers.client.post(f"{path}/withdraw", headers={**member, "Accept-Language": "en"})
    edit = await offers.client.patch(path, json={"quantity": 90}, headers={**member, "If-Match": '"3"'})

    assert withdrawn.status_code == 200
    assert (withdrawn.json()["status"], withdrawn.json()["reserved"]) == ("withdrawn", "20.00")
    assert withdrawn.headers["ETag"] == '"3"'
    assert (again.status_code, again.json()["detail"]) == (409, "The offer is withdrawn; it cannot be withdrawn.")
    assert edit.status_code == 409
    assert await _reserve(offers, created["id"], 1) == 409


@pytest.mark.parametrize("who", ["member_of_other_organisation", "coordinator_elsewhere", "officer"])
async def test_only_those_who_speak_for_the_organisation_edit_or_withdraw(offers: OffersService, who: str) -> None:
    organisation = await verified_org(offers)
    created = await post_offer(offers, organisation["id"])
    t = offers.tokens
    headers = {"member_of_other_organisation": t.member(OTHER_ORG), "coordinator_elsewhere": t.coordinator(BEILUN),
               "officer": t.officer("441302104201")}[who]
    path = f"/api/offers/{created['id']}"

    assert (await offers.client.post(f"{path}/withdraw", headers=headers)).status_code == 403
    assert (await offers.client.patch(path, json={"quantity": 1}, headers={**headers, "If-Match": '"1"'})).status_code == 403
    after = (await offers.client.get(path, headers=t.admin())).json()
    assert (after["status"], after["quantity"], after["version"]) == ("active", "60.00", 1)


async def test_a_coordinator_of_the_organisations_region_may_withdraw_on_its_behalf(offers: OffersService) -> None:
    organisation = await verified_org(offers)
    created = await post_offer(offers, organisation["id"])
    response = await offers.client.post(f"/api/offers/{created['id']}/withdraw", headers=offers.tokens.coordinator("44"))
    assert response.json()["status"] == "withdrawn"


async def test_an_unknown_offer_is_404(offers: OffersService) -> None:
    response = await offers.client.get(f"/api/offers/{uuid.uuid4()}", headers={**offers.tokens.admin(), "Accept-Language": "en"})
    assert (response.status_code, response.json()["detail"]) == (404, "No such offer.")
