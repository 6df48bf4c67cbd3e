"""Matches are read by those they concern: the village's officer, the organisation, the region's coordinator."""

from __future__ import annotations

import uuid

from tests.matching.conftest import COUNTY, TOWNSHIP, VILLAGE_A, VILLAGE_B, Platform, problem
from tests.matching.test_match_runs import _township


async def test_each_person_sees_the_matches_that_concern_them(platform: Platform) -> None:
    made = await _township(platform)
    run = await platform.run(TOWNSHIP)
    tokens = platform.tokens

    async def seen(headers: dict[str, str], **params: str) -> set[str]:
        response = await platform.matching.get("/api/matches", params=params, headers=headers)
        assert response.status_code == 200, response.text
        return {m["need_id"] for m in response.json()["items"]}

    assert await seen(platform.admin) == {made["na"], made["nb"]}
    assert await seen(tokens.coordinator(COUNTY)) == {made["na"], made["nb"]}
    assert await seen(tokens.coordinator("450123")) == set()
    assert await seen(tokens.officer(VILLAGE_A)) == {made["na"]}
    assert await seen(tokens.officer(VILLAGE_B)) == {made["nb"]}
    assert await seen(tokens.member(made["weak"])) == {made["na"]}  # its offer o2 went to A
    assert await seen(tokens.member(made["strong"])) == {made["nb"]}
    assert await seen(tokens.member(uuid.uuid4())) == set()
    # Filters narrow what one may see, never widen it.
    assert await seen(platform.admin, need_id=made["nb"]) == {made["nb"]}
    assert await seen(platform.admin, offer_id=made["o2"]) == {made["na"]}
    assert await seen(platform.admin, region=VILLAGE_B) == {made["nb"]}
    assert await seen(platform.admin, status="approved") == set()
    assert await seen(tokens.officer(VILLAGE_A), need_id=made["nb"]) == set()
    problem(await platform.matching.get("/api/matches", params={"status": "pending"}, headers=platform.admin), 422)
    problem(await platform.matching.get("/api/matches"), 401)

    matches = (await platform.matching.get("/api/matches", params={"run_id": run["id"]}, headers=platform.admin)).json()["items"]
    match_a = next(m for m in matches if m["need_id"] == made["na"])
    path = f"/api/matches/{match_a['id']}"
    own = await platform.matching.get(path, headers=tokens.officer(VILLAGE_A))
    # One match shows what the list shows, plus its deliveries, follow-ups and history.
    assert own.status_code == 200 and own.headers["ETag"] == '"1"'
    assert {name: own.json()[name] for name in match_a} == match_a and own.json()["history"] == []
    assert (await platform.matching.get(path, headers=tokens.member(made["weak"]))).status_code == 200
    for stranger in (tokens.officer(VILLAGE_B), tokens.member(made["strong"]), tokens.coordinator("450123")):
        problem(await platform.matching.get(path, headers=stranger), 404)
    problem(await platform.matching.get(f"/api/matches/{uuid.uuid4()}", headers=platform.admin), 404)


async def test_matches_page_with_a_cursor(platform: Platform) -> None:
    await _township(platform)
    await platform.run(TOWNSHIP)
    first = (await platform.matching.get("/api/matches", params={"limit": 1}, headers=platform.admin)).json()
    assert len(first["items"]) == 1 and first["next_cursor"]
    second = (await platform.matching.get("/api/matches", params={"limit": 1, "cursor": first["next_cursor"]},
                                          headers=platform.admin)).json()
    assert len(second["items"]) == 1 and second["next_cursor"] is None
    assert first["items"][0]["id"] != second["items"][0]["id"]
    problem(await platform.matching.get("/api/matches", params={"cursor": "garbage"}, headers=platform.admin), 422)
