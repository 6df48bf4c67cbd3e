"""Coordinators register organisations, verify them, and keep them inside their region."""

from __future__ import annotations

import pytest

from tests.offers.conftest import BEILUN, HUIZHOU, OffersService, new_credit_code, org_body, post_org, verified_org


async def _list(offers: OffersService, query: str = "", headers: dict[str, str] | None = None) -> list[dict]:
    response = await offers.client.get(f"/api/organisations?{query}", headers=headers or offers.tokens.admin())
    assert response.status_code == 200, response.text
    return response.json()["items"]


async def test_a_coordinator_registers_an_organisation_unverified(offers: OffersService) -> None:
    body = org_body()
    response = await offers.client.post("/api/organisations", json=body, headers=offers.tokens.coordinator(HUIZHOU))

    assert response.status_code == 201, response.text
    created = response.json()
    assert response.headers["Location"] == f"/api/organisations/{created['id']}"
    assert response.headers["ETag"] == '"1"'
    assert {key: created[key] for key in ("name", "org_type", "credit_code", "grade", "region_codes", "verified")} == {
        "name": "惠州市慈善助学基金会", "org_type": "foundation", "credit_code": body["credit_code"], "grade": 4,
        "region_codes": [HUIZHOU], "verified": False,
    }
    assert created["contact"] == {"name": "陈主任", "phone": "0752-2345678"}
    assert (created["verified_by"], created["verified_at"]) == (None, None)


async def test_grade_may_be_absent_and_a_credit_code_typed_in_lower_case_is_stored_in_capitals(offers: OffersService) -> None:
    code = new_credit_code()
    created = await post_org(offers, credit_code=f" {code.lower()} ", grade=None)
    assert (created["credit_code"], created["grade"]) == (code, None)


@pytest.mark.parametrize(
    ("who", "regions", "expected"),
    [
        ("coordinator_of_city", [HUIZHOU, "441302"], 201),
        ("coordinator_of_county", [HUIZHOU], 403),  # the organisation reaches beyond the county
        ("coordinator_elsewhere", [HUIZHOU], 403),
        ("coordinator_of_city", [HUIZHOU, BEILUN], 403),  # one region outside is enough to refuse
        ("admin", ["44", BEILUN], 201),
        ("org_member", [HUIZHOU], 403),
        ("officer", [HUIZHOU], 403),
    ],
)
async def test_who_may_register_an_organisation_where(
    offers: OffersService, who: str, regions: list[str], expected: int
) -> None:
    t = offers.tokens
    headers = {
        "coordinator_of_city": t.coordinator(HUIZHOU), "coordinator_of_county": t.coordinator("441302"),
        "coordinator_elsewhere": t.coordinator("4501"), "admin": t.admin(),
        "org_member": t.member("7d4b2c1e-0000-4000-8000-000000000001"), "officer": t.officer("441302104201"),
    }[who]
    response = await offers.client.post("/api/organisations", json=org_body(region_codes=regions), headers=headers)
    assert response.status_code == expected, response.text
    assert len(await _list(offers)) == (1 if expected == 201 else 0)


async def test_a_credit_code_registers_one_organisation_only(offers: OffersService) -> None:
    first = await post_org(offers)
    again = await offers.client.post(
        "/api/organisations", json=org_body(name="同一个组织重复登记", credit_code=first["credit_code"]),
        headers={**offers.tokens.coordinator(HUIZHOU), "Accept-Language": "en"},
    )
    assert again.status_code == 409
    assert again.json()["detail"] == f"The credit code {first['credit_code']} is registered to another organisation."
    assert len(await _list(offers)) == 1


@pytest.mark.parametrize(
    ("override", "field", "zh_message"),
    [
        ({"credit_code": "91350100M000100Y44"}, "credit_code", "统一社会信用代码校验位不正确，请核对"),
        ({"credit_code": "91350100I000100Y43"}, "credit_code",
         "统一社会信用代码不能含有“I”（只用数字和除 I、O、Z、S、V 外的大写字母）"),
        ({"credit_code": "91350100M000100Y4"}, "credit_code", "统一社会信用代码须为 18 位（现为 17 位）"),
        ({"grade": 6}, "grade", "必须小于或等于 5"),
        ({"grade": 0}, "grade", "必须大于或等于 1"),
        ({"org_type": "club"}, "org_type", "只能是：'social_organisation', 'foundation', 'enterprise', 'party_branch', "
         "'volunteer_team', 'school' 或 'other'"),
        ({"region_codes": []}, "region_codes", "至少 1 项"),
        ({"region_codes": ["441"]}, "region_codes.0",
         "区划代码须为 2/4/6/9/12 位数字（省 2、市 4、县 6、乡镇 9、村 12）"),
        ({"name": "惠"}, "name", "至少 2 个字符"),
        ({"contact": {"name": "陈主任", "phone": "ask at the gate"}}, "contact.phone", "格式不正确"),
        ({"verified": True}, "verified", "不认识的字段"),
    ],
)
async def test_bad_input_is_a_problem_in_chinese_and_registers_nothing(
    offers: OffersService, override: dict, field: str, zh_message: str
) -> None:
    response = await offers.client.post("/api/organisations", json=org_body(**override), headers=offers.tokens.admin())

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"] == [{"field": field, "message": zh_message}]
    assert await _list(offers) == []


async def test_a_bad_credit_code_is_explained_in_english_when_asked(offers: OffersService) -> None:
    response = await offers.client.post(
        "/api/organisations", json=org_body(credit_code="91350100M000100Y44"),
        headers={**offers.tokens.admin(), "Accept-Language": "en"},
    )
    assert response.json()["errors"] == [
        {"field": "credit_code", "message": "The check character of the credit code is wrong; check the code"}
    ]


async def test_a_coordinator_of_the_region_verifies_and_it_is_recorded_who_and_when(offers: OffersService) -> None:
    organisation = await post_org(offers)
    coordinator = offers.tokens.coordinator(HUIZHOU, subject="coordinator-huang")

    response = await offers.client.post(f"/api/organisations/{organisation['id']}/verify", headers=coordinator)

    assert response.status_code == 200, response.text
    verified = response.json()
    assert (verified["verified"], verified["verified_by"], verified["version"]) == (True, "coordinator-huang", 2)
    assert verified["verified_at"] is not None
    assert response.headers["ETag"] == '"2"'
    again = await offers.client.post(f"/api/organisations/{organisation['id']}/verify", headers=offers.tokens.admin())
    assert again.json()["verified_by"] == "coordinator-huang"  # verifying twice changes nothing
    assert again.json()["version"] == 2


@pytest.mark.parametrize("who", ["coordinator_of_county", "coordinator_elsewhere", "own_member", "officer"])
async def test_only_those_governing_all_its_regions_verify(offers: OffersService, who: str) -> None:
    organisation = await post_org(offers)
    t = offers.tokens
    headers = {
        "coordinator_of_county": t.coordinator("441302"), "coordinator_elsewhere": t.coordinator(BEILUN),
        "own_member": t.member(organisation["id"]), "officer": t.officer("441302104201"),
    }[who]
    response = await offers.client.post(f"/api/organisations/{organisation['id']}/verify", headers=headers)
    # Those who may not even see an unverified organisation are told it does not exist.
    assert response.status_code == (403 if who == "own_member" else 404)
    assert (await offers.client.get(f"/api/organisations/{organisation['id']}", headers=t.admin())).json()["verified"] is False


async def test_an_unverified_organisation_is_seen_only_by_its_members_and_its_coordinators(offers: OffersService) -> None:
    organisation = await post_org(offers)
    path, t = f"/api/organisations/{organisation['id']}", offers.tokens

    assert (await offers.client.get(path, headers=t.member(organisation["id"]))).status_code == 200
    assert (await offers.client.get(path, headers=t.coordinator("44"))).status_code == 200
    assert (await offers.client.get(path, headers=t.member("7d4b2c1e-0000-4000-8000-000000000001"))).status_code == 404
    assert (await offers.client.get(path, headers=t.officer("441302104201"))).status_code == 404
    assert (await offers.client.get(path, headers=t.coordinator(BEILUN))).status_code == 404
    assert await _list(offers, headers=t.officer("441302104201")) == []
    assert [o["id"] for o in await _list(offers, headers=t.member(organisation["id"]))] == [organisation["id"]]
    assert [o["id"] for o in await _list(offers, headers=t.coordinator("4413"))] == [organisation["id"]]
    assert await _list(offers, headers=t.coordinator("441302")) == []


async def test_a_verified_organisation_is_seen_by_everyone_but_its_phone_only_by_those_who_speak_for_it(
    offers: OffersService,
) -> None:
    organisation = await verified_org(offers)
    path, t = f"/api/organisations/{organisation['id']}", offers.tokens

    as_officer = (await offers.client.get(path, headers=t.officer("450123105203"))).json()
    as_member = (await offers.client.get(path, headers=t.member(organisation["id"]))).json()

    assert as_officer["contact"] == {"name": "陈主任", "phone": None}
    assert as_member["contact"] == {"name": "陈主任", "phone": "0752-2345678"}


async def test_list_filters_by_region_verified_type_and_text(offers: OffersService) -> None:
    await verified_org(offers, name="惠州市慈善助学基金会")
    await post_org(offers, name="惠城区义工联合会", org_type="volunteer_team", region_codes=["441302"], grade=None)
    await post_org(offers, headers=offers.tokens.admin(), name="北仑区书法家协会", org_type="social_organisation",
                   region_codes=[BEILUN])

    async def names(query: str) -> list[str]:
        return sorted(item["name"] for item in await _list(offers, query))

    assert await names("region=44") == ["惠城区义工联合会", "惠州市慈善助学基金会"]
    assert await names("region=441302") == ["惠城区义工联合会", "惠州市慈善助学基金会"]  # a city-wide one serves the county
    assert await names("region=33") == ["北仑区书法家协会"]
    assert await names("verified=true") == ["惠州市慈善助学基金会"]
    assert await names("verified=false") == ["北仑区书法家协会", "惠城区义工联合会"]
    assert await names("org_type=volunteer_team") == ["惠城区义工联合会"]
    assert await names("q=书法") == ["北仑区书法家协会"]


async def test_cursor_pages_walk_every_organisation_once(offers: OffersService) -> None:
    created = {(await post_org(offers, name=f"组织 {n}"))["id"] for n in range(5)}
    seen: list[str] = []
    cursor = None
    for _ in range(5):
        page = (await offers.client.get(
            "/api/organisations?limit=2" + (f"&cursor={cursor}" if cursor else ""), headers=offers.tokens.admin()
        )).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(created)


async def test_patch_needs_the_current_etag(offers: OffersService) -> None:
    organisation = await post_org(offers)
    path, coordinator = f"/api/organisations/{organisation['id']}", offers.tokens.coordinator(HUIZHOU)

    missing = await offers.client.patch(path, json={"grade": 5}, headers=coordinator)
    updated = await offers.client.patch(path, json={"grade": 5, "contact": None}, headers={**coordinator, "If-Match": '"1"'})
    stale = await offers.client.patch(path, json={"grade": 3}, headers={**coordinator, "If-Match": '"1"'})

    assert (missing.status_code, updated.status_code, stale.status_code) == (428, 200, 412)
    assert (updated.json()["grade"], updated.json()["contact"], updated.headers["ETag"]) == (5, None, '"2"')
    assert (await offers.client.get(path, headers=coordinator)).json()["grade"] == 5


async def test_a_coordinator_cannot_move_an_organisation_out_of_their_region(offers: OffersService) -> None:
    organisation = await post_org(offers)
    response = await offers.client.patch(
        f"/api/organisations/{organisation['id']}", json={"region_codes": [HUIZHOU, BEILUN]},
        headers={**offers.tokens.coordinator(HUIZHOU), "If-Match": '"1"'},
    )
    assert response.status_code == 403
    assert (await offers.client.get(f"/api/organisations/{organisation['id']}", headers=offers.tokens.admin())).json()[
        "region_codes"] == [HUIZHOU]


async def test_members_do_not_edit_their_organisation_record(offers: OffersService) -> None:
    organisation = await verified_org(offers)
    response = await offers.client.patch(
        f"/api/organisations/{organisation['id']}", json={"grade": 5},
        headers={**offers.tokens.member(organisation["id"]), "If-Match": '"2"'},
    )
    assert response.status_code == 403


async def test_the_credit_code_is_corrected_before_verification_but_fixed_after(offers: OffersService) -> None:
    organisation = await post_org(offers)
    path, admin = f"/api/organisations/{organisation['id']}", offers.tokens.admin()
    corrected = new_credit_code()

    fixed = await offers.client.patch(path, json={"credit_code": corrected}, headers={**admin, "If-Match": '"1"'})
    assert (fixed.status_code, fixed.json()["credit_code"]) == (200, corrected)
    await offers.client.post(f"{path}/verify", headers=admin)
    later = await offers.client.patch(path, json={"credit_code": new_credit_code()}, headers={**admin, "If-Match": '"3"'})
    assert later.status_code == 409


async def test_a_credit_code_cannot_be_corrected_into_another_organisations(offers: OffersService) -> None:
    first, second = await post_org(offers), await post_org(offers, name="惠州市乡村振兴促进会")
    response = await offers.client.patch(
        f"/api/organisations/{second['id']}", json={"credit_code": first["credit_code"]},
        headers={**offers.tokens.admin(), "If-Match": '"1"'},
    )
    assert response.status_code == 409


async def test_required_fields_cannot_be_cleared(offers: OffersService) -> None:
    organisation = await post_org(offers)
    response = await offers.client.patch(
        f"/api/organisations/{organisation['id']}", json={"name": None},
        headers={**offers.tokens.admin(), "If-Match": '"1"', "Accept-Language": "en"},
    )
    assert response.status_code == 422
    assert response.json()["errors"] == [{"field": "body", "message": "'name' cannot be cleared"}]
