"""What every write honours: authorisation, idempotency keys, the change feed, and all-or-nothing commits."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest

from services.needs import router as needs_router
from tests.needs.conftest import CENSHAN_VILLAGE, LUZHOU_VILLAGE, NeedsService, need_body, post_need
from tests.support import Tokens

MEMBER_ORG = "7d4b2c1e-0000-4000-8000-000000000001"


@pytest.mark.parametrize(
    ("who", "expected"),
    [
        ("officer_of_village", 201),
        ("officer_of_other_village", 403),
        ("coordinator_of_county", 201),
        ("coordinator_of_city", 201),
        ("coordinator_elsewhere", 403),
        ("org_member", 403),
        ("admin", 201),
        ("service", 403),
    ],
)
async def test_who_may_post_a_need_for_a_village(needs: NeedsService, who: str, expected: int) -> None:
    t = needs.tokens
    headers = {
        "officer_of_village": t.officer(LUZHOU_VILLAGE), "officer_of_other_village": t.officer(CENSHAN_VILLAGE),
        "coordinator_of_county": t.coordinator("441302"), "coordinator_of_city": t.coordinator("4413"),
        "coordinator_elsewhere": t.coordinator("450123"), "org_member": t.member(MEMBER_ORG), "admin": t.admin(),
        "service": t.service(),
    }[who]
    response = await needs.client.post("/api/needs", json=need_body(), headers=headers)
    assert response.status_code == expected, response.text
    listed = (await needs.client.get("/api/needs", headers=t.admin())).json()["items"]
    assert len(listed) == (1 if expected == 201 else 0)


async def test_no_token_is_401_and_says_how_to_sign_in(needs: NeedsService) -> None:
    response = await needs.client.get("/api/needs", headers={"Accept-Language": "en"})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.json()["detail"] == "Send an Authorization: Bearer token."


@pytest.mark.parametrize("forgery", ["other_key", "expired", "garbage"])
async def test_tokens_not_minted_by_the_gateway_are_refused(needs: NeedsService, forgery: str) -> None:
    token = {
        "other_key": Tokens.generate().mint("admin"),
        "expired": needs.tokens.mint("admin", expires_in=-10),
        "garbage": "not.a.jwt",
    }[forgery]
    response = await needs.client.post("/api/needs", json=need_body(), headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert (await needs.client.get("/api/needs", headers=needs.tokens.admin())).json()["items"] == []


async def test_internal_endpoints_refuse_people(needs: NeedsService) -> None:
    need = await post_need(needs)
    for person in (needs.tokens.admin(), needs.tokens.coordinator("44")):
        commit = await needs.client.post(
            f"/internal/needs/{need['id']}/commitments", json={"match_id": str(uuid.uuid4()), "quantity": 1}, headers=person
        )
        feed = await needs.client.get("/internal/changes", headers=person)
        assert commit.status_code == feed.status_code == 403


@pytest.mark.parametrize(
    ("override", "field", "zh_message"),
    [
        ({"unit": "kg"}, "unit", "“training”类的单位只能是：trainee"),
        ({"quantity": -5}, "quantity", "必须大于 0"),
        ({"kind": "funds", "unit": "CNY", "quantity": "10.005"}, "quantity", "最多 2 位小数"),
        ({"quantity": "2.5"}, "quantity", "“trainee”须为整数"),
        ({"village_code": "4413021042"}, "village_code", "区划代码须为 12 位数字（省 2、市 4、县 6、乡镇 9、村 12）"),
        ({"needed_by": "2020-01-01"}, "needed_by", "需求截止日期不能早于今天"),
        ({"lat": 95}, "lat", "必须小于或等于 90"),
        ({"lon": None}, "lon", "纬度和经度须同时填写"),
        ({"urgency": 6}, "urgency", "必须小于或等于 5"),
        ({"title": "长" * 201}, "title", "最多 200 个字符"),
        ({"colour": "red"}, "colour", "不认识的字段"),
        ({"category": "space"}, "category", "只能是：'industry', 'talent', 'culture', 'environment', 'infrastructure', "
         "'education', 'health', 'elderly_children', 'disaster', 'governance' 或 'other'"),
        ({"channel": "phone"}, "requester", "电话、来信或走访收集的需求，请填写提出人（requester）"),
        ({"requester": {"name": "李伯", "phone": "call me"}, "channel": "visit"}, "requester.phone", "格式不正确"),
        ({"needed_by": "next week"}, "needed_by", "日期格式应为 YYYY-MM-DD"),
    ],
)
async def test_bad_input_is_a_problem_in_chinese_and_writes_nothing(
    needs: NeedsService, override: dict, field: str, zh_message: str
) -> None:
    body = need_body(**override)
    body = {key: value for key, value in body.items() if value is not None}
    response = await needs.client.post("/api/needs", json=body, headers=needs.tokens.officer(LUZHOU_VILLAGE))

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["title"] == "输入有误"
    assert problem["errors"] == [{"field": field, "message": zh_message}]
    assert (await needs.client.get("/api/needs", headers=needs.tokens.admin())).json()["items"] == []
    feed = (await needs.client.get("/internal/changes", headers=needs.tokens.service())).json()
    assert feed["items"] == []


async def test_problems_speak_english_when_asked(needs: NeedsService) -> None:
    response = await needs.client.post(
        "/api/needs", json=need_body(unit="kg"),
        headers={**needs.tokens.officer(LUZHOU_VILLAGE), "Accept-Language": "en-GB,en;q=0.9,zh;q=0.5"},
    )
    problem = response.json()
    assert problem["title"] == "Invalid input"
    assert problem["errors"][0]["message"] == "For kind 'training' the unit must be one of: trainee"


async def test_a_repeated_post_with_one_idempotency_key_has_one_effect(needs: NeedsService) -> None:
    headers = {**needs.tokens.officer(LUZHOU_VILLAGE, subject="officer-wang"), "Idempotency-Key": "need-2026-001"}
    first = await needs.client.post("/api/needs", json=need_body(), headers=headers)
    headers = {**needs.tokens.officer(LUZHOU_VILLAGE, subject="officer-wang"), "Idempotency-Key": "need-2026-001"}
    second = await needs.client.post("/api/needs", json=need_body(), headers=headers)

    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert second.headers["Location"] == first.headers["Location"]
    assert second.headers["Idempotent-Replayed"] == "true"
    assert len((await needs.client.get("/api/needs", headers=needs.tokens.admin())).json()["items"]) == 1


async def test_one_idempotency_key_for_another_body_is_422(needs: NeedsService) -> None:
    headers = {**needs.tokens.officer(LUZHOU_VILLAGE, subject="officer-wang"), "Idempotency-Key": "k-1"}
    await needs.client.post("/api/needs", json=need_body(), headers=headers)
    other = await needs.client.post("/api/needs", json=need_body(title="另一个需求"), headers=headers)
    assert other.status_code == 422
    assert len((await needs.client.get("/api/needs", headers=needs.tokens.admin())).json()["items"]) == 1


async def test_the_same_key_from_two_people_are_two_requests(needs: NeedsService) -> None:
    for subject in ("officer-wang", "officer-li"):
        headers = {**needs.tokens.officer(LUZHOU_VILLAGE, subject=subject), "Idempotency-Key": "k-1"}
        assert (await needs.client.post("/api/needs", json=need_body(), headers=headers)).status_code == 201
    assert len((await needs.client.get("/api/needs", headers=needs.tokens.admin())).json()["items"]) == 2


async def test_ten_concurrent_retries_with_one_key_create_one_need(needs: NeedsService, pg_only: None) -> None:
    token = needs.tokens.officer(LUZHOU_VILLAGE, subject="officer-wang")
    responses = await asyncio.gather(*(
        needs.client.post("/api/needs", json=need_body(), headers={**token, "Idempotency-Key": "burst"})
        for _ in range(10)
    ))
    assert {response.status_code for response in responses} == {201}
    assert len({response.json()["id"] for response in responses}) == 1
    assert len((await needs.client.get("/api/needs", headers=needs.tokens.admin())).json()["items"]) == 1


async def test_the_change_feed_lists_every_change_in_order(needs: NeedsService) -> None:
    need = await post_need(needs)
    await needs.client.post(f"/api/needs/{need['id']}/close", headers=needs.tokens.officer(LUZHOU_VILLAGE))
    service = needs.tokens.service()

    feed = (await needs.client.get("/internal/changes?after=0", headers=service)).json()
    assert [(item["entity"], item["op"], item["data"]["status"]) for item in feed["items"]] == [
        ("need", "created", "open"), ("need", "closed", "closed"),
    ]
    assert "requester_phone" not in feed["items"][0]["data"]
    first_seq = feed["items"][0]["seq"]
    rest = (await needs.client.get(f"/internal/changes?after={first_seq}", headers=service)).json()
    assert [item["op"] for item in rest["items"]] == ["closed"]
    assert rest["last_seq"] == feed["last_seq"]


async def test_a_crash_after_the_write_leaves_neither_the_need_nor_its_feed_entry(
    needs: NeedsService, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(*_: object) -> None:
        raise RuntimeError("injected after the business write, before the commit")

    monkeypatch.setattr(needs_router, "need_read", explode)
    # As a real server does: answer 500 instead of propagating the exception to the client.
    transport = httpx.ASGITransport(app=needs.app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://needs") as client:
        response = await client.post("/api/needs", json=need_body(), headers=needs.tokens.officer(LUZHOU_VILLAGE))
    monkeypatch.undo()

    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert (await needs.client.get("/api/needs", headers=needs.tokens.admin())).json()["items"] == []
    assert (await needs.client.get("/internal/changes", headers=needs.tokens.service())).json()["items"] == []


async def test_feed_sequence_has_no_gaps_under_concurrent_writers(needs: NeedsService, pg_only: None) -> None:
    """Readers poll `after=N`: numbers must become visible in order, or a late commit would be skipped."""
    await asyncio.gather(*(post_need(needs, title=f"并发需求 {n}") for n in range(30)))
    feed = (await needs.client.get("/internal/changes?limit=100", headers=needs.tokens.service())).json()
    seqs = [item["seq"] for item in feed["items"]]
    assert len(seqs) == 30
    assert seqs == list(range(seqs[0], seqs[0] + 30))
