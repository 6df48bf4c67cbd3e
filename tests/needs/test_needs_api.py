"""A village officer posts, reads, lists, edits, closes and cancels needs."""

from __future__ import annotations

import uuid
from datetime import date, timedelta

import pytest

from services.common.http import encode_cursor
from tests.needs.conftest import CENSHAN_VILLAGE, LUZHOU_VILLAGE, NeedsService, need_body, post_need


async def test_officer_posts_a_need_and_reads_it_back(needs: NeedsService) -> None:
    response = await needs.client.post("/api/needs", json=need_body(), headers=needs.tokens.officer(LUZHOU_VILLAGE))

    assert response.status_code == 201
    created = response.json()
    assert response.headers["Location"] == f"/api/needs/{created['id']}"
    assert response.headers["ETag"] == '"1"'
    assert created["status"] == "open"
    assert (created["quantity"], created["committed"], created["remaining"]) == ("45.00", "0.00", "45.00")

    fetched = await needs.client.get(response.headers["Location"], headers=needs.tokens.member("7d4b2c1e-0000-4000-8000-000000000001"))
    assert fetched.status_code == 200
    assert fetched.json()["title"] == "残疾村民技能培训"


async def test_funds_keep_every_fen_exactly(needs: NeedsService) -> None:
    created = await post_need(needs, kind="funds", unit="CNY", category="infrastructure", quantity="1450000.07",
                              skills=[], title="村道硬化")
    fetched = (await needs.client.get(f"/api/needs/{created['id']}", headers=needs.tokens.admin())).json()
    assert fetched["quantity"] == "1450000.07"


async def test_a_need_taken_by_phone_shows_the_callers_phone_only_to_those_who_manage_it(needs: NeedsService) -> None:
    created = await post_need(needs, channel="phone", requester={"name": "王阿姨", "phone": "13800138000"})
    path = f"/api/needs/{created['id']}"

    as_officer = (await needs.client.get(path, headers=needs.tokens.officer(LUZHOU_VILLAGE))).json()
    as_coordinator = (await needs.client.get(path, headers=needs.tokens.coordinator("4413"))).json()
    as_member = (await needs.client.get(path, headers=needs.tokens.member("7d4b2c1e-0000-4000-8000-000000000001"))).json()

    assert as_officer["requester"] == {"name": "王阿姨", "phone": "13800138000"}
    assert as_coordinator["requester"]["phone"] == "13800138000"
    assert as_member["requester"] == {"name": "王阿姨", "phone": None}


async def test_drafts_are_seen_only_by_those_who_manage_the_village(needs: NeedsService) -> None:
    draft = await post_need(needs, status="draft")
    path = f"/api/needs/{draft['id']}"

    assert (await needs.client.get(path, headers=needs.tokens.member("7d4b2c1e-0000-4000-8000-000000000001"))).status_code == 404
    assert (await needs.client.get(path, headers=needs.tokens.officer(CENSHAN_VILLAGE))).status_code == 404
    assert (await needs.client.get(path, headers=needs.tokens.coordinator("441302"))).status_code == 200
    member_list = await needs.client.get("/api/needs", headers=needs.tokens.member("7d4b2c1e-0000-4000-8000-000000000001"))
    assert member_list.json()["items"] == []


async def test_list_filters_by_region_category_kind_urgency_text_and_deadline(needs: NeedsService) -> None:
    soon = (date.today() + timedelta(days=10)).isoformat()
    await post_need(needs, title="抗旱人畜饮水", category="disaster", kind="goods", unit="kg", quantity=5000,
                    urgency=5, needed_by=soon, skills=[])
    await post_need(needs, title="学校食堂设备", category="education", kind="goods", unit="set", quantity=3,
                    urgency=2, skills=[])
    await post_need(needs, title="村部办公楼", category="infrastructure", kind="funds", unit="CNY", quantity=800000,
                    village_code=CENSHAN_VILLAGE, lat=22.86, lon=107.69, skills=[])
    admin = needs.tokens.admin()

    async def titles(query: str) -> list[str]:
        response = await needs.client.get(f"/api/needs?{query}", headers=admin)
        assert response.status_code == 200, response.text
        return sorted(item["title"] for item in response.json()["items"])

    assert await titles("region=4413") == ["学校食堂设备", "抗旱人畜饮水"]
    assert await titles("region=450123") == ["村部办公楼"]
    assert await titles("category=disaster") == ["抗旱人畜饮水"]
    assert await titles("kind=funds") == ["村部办公楼"]
    assert await titles("urgency_min=4") == ["抗旱人畜饮水"]
    assert await titles("q=食堂") == ["学校食堂设备"]
    assert await titles(f"needed_before={soon}") == ["抗旱人畜饮水"]
    assert await titles("status=open&region=45") == ["村部办公楼"]


async def test_cursor_pagination_walks_every_need_once(needs: NeedsService) -> None:
    posted = {(await post_need(needs, title=f"需求 {n}"))["id"] for n in range(7)}
    seen: list[str] = []
    cursor = None
    for _ in range(5):
        query = "limit=3" + (f"&cursor={cursor}" if cursor else "")
        page = (await needs.client.get(f"/api/needs?{query}", headers=needs.tokens.admin())).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 7
    assert set(seen) == posted


async def test_a_bad_cursor_or_limit_is_a_clear_422(needs: NeedsService) -> None:
    forged = [encode_cursor(["yesterday", uuid.uuid4()]), encode_cursor(["2026-01-01T00:00:00", uuid.uuid4()]),
              encode_cursor(["2026-01-01T00:00:00+08:00", "not-an-id"])]
    for cursor in ("not-a-cursor", *forged):
        bad_cursor = await needs.client.get(f"/api/needs?cursor={cursor}", headers=needs.tokens.admin())
        assert bad_cursor.status_code == 422, cursor
        assert bad_cursor.headers["content-type"] == "application/problem+json"
        assert "next_cursor" in bad_cursor.json()["detail"]
    too_many = await needs.client.get("/api/needs?limit=500", headers=needs.tokens.admin())
    assert too_many.status_code == 422
    assert too_many.json()["errors"][0]["field"] == "limit"


async def test_patch_requires_the_current_etag(needs: NeedsService) -> None:
    created = await post_need(needs)
    path, officer = f"/api/needs/{created['id']}", needs.tokens.officer(LUZHOU_VILLAGE)

    missing = await needs.client.patch(path, json={"urgency": 5}, headers=officer)
    assert missing.status_code == 428

    updated = await needs.client.patch(path, json={"urgency": 5, "quantity": 50}, headers={**officer, "If-Match": '"1"'})
    assert updated.status_code == 200, updated.text
    assert updated.headers["ETag"] == '"2"'
    assert (updated.json()["urgency"], updated.json()["quantity"]) == (5, "50.00")

    stale = await needs.client.patch(path, json={"urgency": 1}, headers={**officer, "If-Match": '"1"'})
    assert stale.status_code == 412
    assert (await needs.client.get(path, headers=officer)).json()["urgency"] == 5


async def test_patch_checks_unit_against_the_stored_kind(needs: NeedsService) -> None:
    created = await post_need(needs)
    response = await needs.client.patch(
        f"/api/needs/{created['id']}", json={"quantity": "10.5"},
        headers={**needs.tokens.officer(LUZHOU_VILLAGE), "If-Match": '"1"', "Accept-Language": "en"},
    )
    assert response.status_code == 422
    assert response.json()["errors"] == [{"field": "quantity", "message": "A quantity in 'trainee' must be a whole number"}]


async def test_a_draft_is_published_by_patching_its_status(needs: NeedsService) -> None:
    draft = await post_need(needs, status="draft")
    response = await needs.client.patch(
        f"/api/needs/{draft['id']}", json={"status": "open"},
        headers={**needs.tokens.officer(LUZHOU_VILLAGE), "If-Match": '"1"'},
    )
    assert response.json()["status"] == "open"


async def test_close_then_nothing_more_can_change(needs: NeedsService) -> None:
    created = await post_need(needs)
    path, officer = f"/api/needs/{created['id']}", needs.tokens.officer(LUZHOU_VILLAGE)

    closed = await needs.client.post(f"{path}/close", headers=officer)
    assert closed.json()["status"] == "closed"

    again = await needs.client.post(f"{path}/cancel", headers={**officer, "Accept-Language": "en"})
    assert again.status_code == 409
    assert again.json()["detail"] == "The need is closed; it cannot be cancelled."
    edit = await needs.client.patch(path, json={"urgency": 1}, headers={**officer, "If-Match": '"2"'})
    assert edit.status_code == 409


@pytest.mark.parametrize("action", ["close", "cancel"])
async def test_only_those_who_manage_the_village_close_or_cancel(needs: NeedsService, action: str) -> None:
    created = await post_need(needs)
    path = f"/api/needs/{created['id']}/{action}"
    for outsider in (needs.tokens.officer(CENSHAN_VILLAGE), needs.tokens.coordinator("4501"),
                     needs.tokens.member("7d4b2c1e-0000-4000-8000-000000000001")):
        assert (await needs.client.post(path, headers=outsider)).status_code == 403
    assert (await needs.client.get(f"/api/needs/{created['id']}", headers=needs.tokens.admin())).json()["status"] == "open"
