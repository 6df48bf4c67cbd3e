"""The proxy: requests reach the owning service untouched, answers come back untouched, failures are problems."""

from __future__ import annotations

import asyncio
import json
from datetime import date, timedelta
from typing import Any

from fastapi import FastAPI

from tests.gateway.conftest import (
    LUZHOU_VILLAGE,
    Gateway,
    another_gateway,
    closed_port,
    offers_stand_in,
    serving,
)


def need_body(**overrides: Any) -> dict[str, Any]:
    """Skills training for 45 disabled villagers of 芦洲镇."""
    return {
        "title": "残疾村民技能培训", "description": "为45名残疾村民开展电商与手工技能培训", "category": "talent",
        "kind": "training", "quantity": 45, "unit": "trainee", "beneficiaries": 45,
        "beneficiary_groups": ["disabled"], "urgency": 3,
        "needed_by": (date.today() + timedelta(days=90)).isoformat(), "village_code": LUZHOU_VILLAGE,
        "skills": ["电商"], **overrides,
    }


async def officer(gateway: Gateway) -> dict[str, str]:
    return await gateway.new_user(await gateway.admin(), username="luzhou-officer", role="officer",
                                  village_code=LUZHOU_VILLAGE)


async def test_an_officer_signed_in_at_the_gateway_posts_a_need_through_it(gateway: Gateway) -> None:
    headers = await officer(gateway)
    created = await gateway.client.post("/api/needs", json=need_body(), headers=headers)

    assert created.status_code == 201, created.text
    need = created.json()
    assert created.headers["location"] == f"/api/needs/{need['id']}"
    assert created.headers["etag"] == '"1"'
    assert created.headers["content-type"] == "application/json"

    fetched = await gateway.client.get(created.headers["location"], headers=headers)
    assert fetched.status_code == 200
    assert fetched.json()["title"] == "残疾村民技能培训"


async def test_query_strings_reach_the_service(gateway: Gateway) -> None:
    headers = await officer(gateway)
    for title, category in (("抗旱人畜饮水", "disaster"), ("学校食堂设备", "education")):
        body = need_body(title=title, category=category, kind="goods", unit="set", quantity=3, skills=[])
        assert (await gateway.client.post("/api/needs", json=body, headers=headers)).status_code == 201

    listed = await gateway.client.get("/api/needs?category=disaster&region=4413&limit=5", headers=headers)
    assert listed.status_code == 200
    assert [item["title"] for item in listed.json()["items"]] == ["抗旱人畜饮水"]
    too_many = await gateway.client.get("/api/needs?limit=500", headers=headers)
    assert too_many.status_code == 422
    assert too_many.headers["content-type"] == "application/problem+json"


async def test_the_services_own_errors_and_replays_pass_through(gateway: Gateway) -> None:
    anonymous = await gateway.client.get("/api/needs", headers={"Accept-Language": "en"})
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"] == "Bearer"
    assert anonymous.json()["detail"] == "Send an Authorization: Bearer token."

    headers = {**(await officer(gateway)), "Idempotency-Key": "need-once"}
    first = await gateway.client.post("/api/needs", json=need_body(), headers=headers)
    again = await gateway.client.post("/api/needs", json=need_body(), headers=headers)
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    listed = await gateway.client.get("/api/needs", headers=headers)
    assert len(listed.json()["items"]) == 1


async def test_exactly_the_relevant_headers_go_each_way(gateway: Gateway) -> None:
    response = await gateway.client.post(
        "/api/offers/echo/a%20b%2Fc?x=1&y=%E6%9D%91&x=2",
        content=b'{"quantity": 45}',
        headers={
            "Authorization": "Bearer abc", "Accept-Language": "en", "Content-Type": "application/json",
            "If-Match": '"3"', "Idempotency-Key": "k-1", "X-Request-ID": "req-42", "Cookie": "session=secret",
            "X-Custom": "stays",
        },
    )
    assert response.status_code == 202
    echoed = response.json()
    assert (echoed["method"], echoed["raw_path"], echoed["query"]) == ("POST", "/api/offers/echo/a%20b%2Fc",
                                                                       "x=1&y=%E6%9D%91&x=2")
    assert echoed["body"] == '{"quantity": 45}'
    sent = echoed["headers"]
    assert {name: sent.get(name) for name in ("authorization", "accept-language", "content-type", "if-match",
                                              "idempotency-key", "x-request-id")} == {
        "authorization": "Bearer abc", "accept-language": "en", "content-type": "application/json",
        "if-match": '"3"', "idempotency-key": "k-1", "x-request-id": "req-42",
    }
    assert "cookie" not in sent and "x-custom" not in sent
    assert (response.headers["etag"], response.headers["retry-after"]) == ('"7"', "3")
    assert "x-upstream-only" not in response.headers and "set-cookie" not in response.headers
    assert response.headers["x-request-id"] == "req-42"


async def test_a_request_id_is_made_up_when_the_client_sends_none(gateway: Gateway) -> None:
    response = await gateway.client.get("/api/offers/echo/x")
    assert response.json()["headers"]["x-request-id"] == response.headers["x-request-id"] != ""


async def test_downloads_stream_through_with_their_disposition(gateway: Gateway) -> None:
    response = await gateway.client.get("/api/pairings/export")
    assert response.status_code == 200
    assert response.headers["content-disposition"] == 'attachment; filename="pairings.csv"'
    assert response.headers["content-type"].startswith("text/csv")
    lines = response.text.splitlines()
    assert (len(lines), lines[-1]) == (5001, "org-4999,village-4999")


async def test_internal_and_unknown_paths_are_never_forwarded(gateway: Gateway) -> None:
    service_token = gateway.tokens.service()
    for path in ("/internal/changes", "/internal/needs/x/commitments", "/api/needs/%2e%2e/%2e%2e/internal/changes",
                 "/api/offers/internal/changes", "/api/elsewhere", "/api/needsx"):
        response = await gateway.client.get(path, headers=service_token)
        assert response.status_code == 404, path
        assert response.headers["content-type"] == "application/problem+json"


async def test_matching_not_deployed_is_a_503(gateway: Gateway) -> None:
    for path in ("/api/matches", "/api/match-runs", "/api/candidates?need_id=x", "/api/reports/summary"):
        response = await gateway.client.get(path, headers={"Accept-Language": "en"})
        assert response.status_code == 503, path
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["detail"] == "The matching service is not deployed."


async def test_an_unreachable_service_is_a_bilingual_502(gateway_database_url: str, gateway: Gateway) -> None:
    async with another_gateway(gateway_database_url, gateway.tokens,
                               offers_url=f"http://127.0.0.1:{closed_port()}") as client:
        zh = await client.get("/api/offers")
        en = await client.get("/api/offers", headers={"Accept-Language": "en"})
    assert zh.status_code == en.status_code == 502
    assert zh.headers["content-type"] == "application/problem+json"
    assert zh.json()["detail"] == "暂时无法连接服务“offers”，请稍后重试。"
    assert en.json()["detail"] == "The offers service cannot be reached; try again shortly."


async def test_a_service_too_slow_to_answer_is_a_504(gateway_database_url: str, gateway: Gateway) -> None:
    slow = FastAPI()
    release = asyncio.Event()

    @slow.get("/api/offers")
    async def dawdle() -> dict[str, str]:
        await asyncio.wait_for(release.wait(), timeout=10)
        return {"too": "late"}

    async with serving(slow) as url, another_gateway(gateway_database_url, gateway.tokens, offers_url=url,
                                                     read_timeout=0.2) as client:
        response = await client.get("/api/offers", headers={"Accept-Language": "en"})
        release.set()
    assert response.status_code == 504
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"] == "The offers service did not answer in time; try again shortly."


async def test_over_a_real_socket_bodies_stream_both_ways(gateway_database_url: str, gateway: Gateway) -> None:
    """The production transport (aiohttp), not an in-process stand-in."""
    big = b'{"note": "' + b"x" * 300_000 + b'"}'

    async def chunks() -> Any:
        for start in range(0, len(big), 65_536):
            yield big[start:start + 65_536]

    async with serving(offers_stand_in()) as url, another_gateway(gateway_database_url, gateway.tokens,
                                                                 offers_url=url) as client:
        posted = await client.post("/api/offers/echo/big", content=chunks(),
                                   headers={"Content-Type": "application/json"})
        sized = await client.put("/api/offers/echo/sized", json={"title": "爱心书屋"})
        download = await client.get("/api/pairings/export")
        responses = await asyncio.gather(*(client.get(f"/api/offers/echo/{n}") for n in range(20)))
    assert posted.status_code == 202, posted.text
    assert posted.json()["body"].encode() == big
    assert (sized.json()["body"], sized.json()["headers"]["content-length"]) == (
        json.dumps({"title": "爱心书屋"}, separators=(",", ":"), ensure_ascii=False), str(len(sized.request.content))
    )
    assert download.text.splitlines()[-1] == "org-4999,village-4999"
    assert [r.json()["raw_path"] for r in responses] == [f"/api/offers/echo/{n}" for n in range(20)]


async def test_every_method_passes_through(gateway: Gateway) -> None:
    for method in ("GET", "PUT", "PATCH", "DELETE"):
        response = await gateway.client.request(method, "/api/offers/echo/1", json={"n": 1})
        assert response.json()["method"] == method
