"""Coordinators record long-term pairings (结对帮扶) of an organisation with a village, and end them."""

from __future__ import annotations

import uuid
from datetime import date

import pytest

from tests.offers.conftest import (
    BEILUN,
    CENSHAN_VILLAGE,
    HUIZHOU,
    LUZHOU_VILLAGE,
    OTHER_LUZHOU_VILLAGE,
    OffersService,
    post_org,
    verified_org,
)


async def _pair(offers: OffersService, organisation_id: str, village_code: str, headers: dict[str, str] | None = None,
                **extra: object) -> tuple[int, dict]:
    response = await offers.client.post(
        "/api/pairings", json={"organisation_id": organisation_id, "village_code": village_code, **extra},
        headers={**(headers or offers.tokens.coordinator(HUIZHOU)), "Accept-Language": "en"},
    )
    return response.status_code, response.json()


async def _listed(offers: OffersService, query: str = "") -> list[dict]:
    response = await offers.client.get(f"/api/pairings?{query}", headers=offers.tokens.officer(LUZHOU_VILLAGE))
    assert response.status_code == 200, response.text
    return response.json()["items"]


async def test_a_coordinator_pairs_an_organisation_with_a_village(offers: OffersService) -> None:
    organisation = await verified_org(offers)
    response = await offers.client.post(
        "/api/pairings",
        json={"organisation_id": organisation["id"], "village_code": LUZHOU_VILLAGE, "started_on": "2025-03-01",
              "note": "三年结对帮扶协议"},
        headers=offers.tokens.coordinator("441302", subject="coordinator-huang"),
    )

    assert response.status_code == 201, response.text
    pairing = response.json()
    assert response.headers["Location"] == f"/api/pairings/{pairing['id']}"
    assert (pairing["status"], pairing["started_on"], pairing["ended_on"], pairing["created_by"]) == (
        "active", "2025-03-01", None, "coordinator-huang")
    fetched = await offers.client.get(response.headers["Location"], headers=offers.tokens.member(organisation["id"]))
    assert fetched.json()["note"] == "三年结对帮扶协议"


async def test_a_pairing_starts_today_unless_told_otherwise(offers: OffersService) -> None:
    organisation = await verified_org(offers)
    status, pairing = await _pair(offers, organisation["id"], LUZHOU_VILLAGE)
    assert (status, pairing["started_on"]) == (201, date.today().isoformat())


async def test_an_organisation_and_a_village_are_paired_once_at_a_time(offers: OffersService) -> None:
    organisation = await verified_org(offers)
    first_status, first = await _pair(offers, organisation["id"], LUZHOU_VILLAGE)
    again_status, again = await _pair(offers, organisation["id"], LUZHOU_VILLAGE)
    neighbour_status, _ = await _pair(offers, organisation["id"], OTHER_LUZHOU_VILLAGE)

    assert (first_status, again_status, neighbour_status) == (201, 409, 201)
    assert again["detail"] == f"The organisation is already paired with village {LUZHOU_VILLAGE}."
    ended = await offers.client.post(f"/api/pairings/{first['id']}/end", headers=offers.tokens.coordinator(HUIZHOU))
    assert (ended.json()["status"], ended.json()["ended_on"]) == ("ended", date.today().isoformat())
    renewed_status, _ = await _pair(offers, organisation["id"], LUZHOU_VILLAGE)
    assert renewed_status == 201  # an ended pairing stays as history and does not block a new one
    assert len(await _listed(offers, f"village_code={LUZHOU_VILLAGE}")) == 2


@pytest.mark.parametrize(
    ("who", "expected"),
    [
        ("coordinator_of_county", 201),
        ("coordinator_of_province", 201),
        ("coordinator_elsewhere", 403),
        ("officer_of_village", 403),
        ("member_of_organisation", 403),
        ("admin", 201),
    ],
)
async def test_who_may_record_a_pairing(offers: OffersService, who: str, expected: int) -> None:
    organisation = await verified_org(offers)
    t = offers.tokens
    headers = {
        "coordinator_of_county": t.coordinator("441302"), "coordinator_of_province": t.coordinator("44"),
        "coordinator_elsewhere": t.coordinator("450123"), "officer_of_village": t.officer(LUZHOU_VILLAGE),
        "member_of_organisation": t.member(organisation["id"]), "admin": t.admin(),
    }[who]
    status, _ = await _pair(offers, organisation["id"], LUZHOU_VILLAGE, headers)
    assert status == expected
    assert len(await _listed(offers)) == (1 if expected == 201 else 0)


async def test_pairing_across_provinces_is_recorded_by_the_villages_coordinator(offers: OffersService) -> None:
    """东西部协作: a Ningbo organisation paired with a village of Guangxi."""
    ningbo = await verified_org(offers, name="宁波市北仑区慈善总会", region_codes=[BEILUN])
    status, _ = await _pair(offers, ningbo["id"], CENSHAN_VILLAGE, offers.tokens.coordinator("4501"))
    assert status == 201


async def test_only_a_verified_and_known_organisation_is_paired(offers: OffersService) -> None:
    unverified = await post_org(offers)
    status, body = await _pair(offers, unverified["id"], LUZHOU_VILLAGE)
    assert (status, body["detail"]) == (409, "The organisation '惠州市慈善助学基金会' is not verified; it cannot be paired.")
    status, body = await _pair(offers, str(uuid.uuid4()), LUZHOU_VILLAGE)
    assert (status, body["errors"]) == (422, [{"field": "organisation_id", "message": "No such organisation."}])


async def test_a_village_code_has_twelve_digits(offers: OffersService) -> None:
    organisation = await verified_org(offers)
    status, body = await _pair(offers, organisation["id"], "441302")
    assert status == 422
    assert body["errors"][0]["field"] == "village_code"


async def test_list_filters_by_organisation_village_region_and_status(offers: OffersService) -> None:
    huizhou = await verified_org(offers)
    ningbo = await verified_org(offers, name="宁波市北仑区慈善总会", region_codes=[BEILUN])
    await _pair(offers, huizhou["id"], LUZHOU_VILLAGE)
    _, ended = await _pair(offers, huizhou["id"], OTHER_LUZHOU_VILLAGE)
    await offers.client.post(f"/api/pairings/{ended['id']}/end", headers=offers.tokens.coordinator(HUIZHOU))
    await _pair(offers, ningbo["id"], CENSHAN_VILLAGE, offers.tokens.admin())

    async def pairs(query: str) -> set[tuple[str, str]]:
        return {(item["organisation_id"], item["village_code"]) for item in await _listed(offers, query)}

    assert await pairs(f"organisation_id={huizhou['id']}") == {(huizhou["id"], LUZHOU_VILLAGE),
                                                               (huizhou["id"], OTHER_LUZHOU_VILLAGE)}
    assert await pairs(f"village_code={CENSHAN_VILLAGE}") == {(ningbo["id"], CENSHAN_VILLAGE)}
    assert await pairs("region=4413") == {(huizhou["id"], LUZHOU_VILLAGE), (huizhou["id"], OTHER_LUZHOU_VILLAGE)}
    assert await pairs("region=45") == {(ningbo["id"], CENSHAN_VILLAGE)}
    assert await pairs("status=ended") == {(huizhou["id"], OTHER_LUZHOU_VILLAGE)}
    page = (await offers.client.get("/api/pairings?limit=2", headers=offers.tokens.admin())).json()
    rest = (await offers.client.get(f"/api/pairings?limit=2&cursor={page['next_cursor']}", headers=offers.tokens.admin())).json()
    assert len(page["items"]) == 2 and len(rest["items"]) == 1 and rest["next_cursor"] is None


async def test_ending_is_for_the_villages_coordinator_and_happens_once(offers: OffersService) -> None:
    organisation = await verified_org(offers)
    _, pairing = await _pair(offers, organisation["id"], LUZHOU_VILLAGE)
    path = f"/api/pairings/{pairing['id']}/end"

    outsider = await offers.client.post(path, headers=offers.tokens.coordinator(BEILUN))
    member = await offers.client.post(path, headers=offers.tokens.member(organisation["id"]))
    ended = await offers.client.post(path, headers=offers.tokens.coordinator("441302"))
    twice = await offers.client.post(path, headers={**offers.tokens.coordinator("441302"), "Accept-Language": "en"})

    assert (outsider.status_code, member.status_code, ended.status_code, twice.status_code) == (403, 403, 200, 409)
    assert ended.headers["ETag"] == '"2"'
    assert twice.json()["detail"] == f"This pairing ended on {date.today().isoformat()}."
