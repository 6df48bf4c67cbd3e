"""What every write honours: sign-in, internal-only endpoints, idempotency keys, the change feed, all-or-nothing."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest

from services.offers import router as offers_router
from tests.offers.conftest import (
    HUIZHOU,
    LUZHOU_VILLAGE,
    OffersService,
    offer_body,
    org_body,
    post_offer,
    verified_org,
)
from tests.support import Tokens


async def _offer_count(offers: OffersService) -> int:
    return len((await offers.client.get("/api/offers", headers=offers.tokens.admin())).json()["items"])


async def _feed(offers: OffersService, after: int = 0) -> dict:
    response = await offers.client.get(f"/internal/changes?after={after}", headers=offers.tokens.service())
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.parametrize("path", ["/api/offers", "/api/organisations", "/api/pairings"])
async def test_no_token_is_401_and_says_how_to_sign_in(offers: OffersService, path: str) -> None:
    response = await offers.client.get(path, headers={"Accept-Language": "en"})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.json()["detail"] == "Send an Authorization: Bearer token."


@pytest.mark.parametrize("forgery", ["other_key", "expired", "garbage"])
async def test_tokens_not_minted_by_the_gateway_are_refused(offers: OffersService, forgery: str) -> None:
    token = {
        "other_key": Tokens.generate().mint("admin"),
        "expired": offers.tokens.mint("admin", expires_in=-10),
        "garbage": "not.a.jwt",
    }[forgery]
    response = await offers.client.post("/api/organisations", json=org_body(), headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert (await offers.client.get("/api/organisations", headers=offers.tokens.admin())).json()["items"] == []


async def test_internal_endpoints_refuse_people_and_public_ones_refuse_services(offers: OffersService) -> None:
    offer = await post_offer(offers, (await verified_org(offers))["id"])
    match_id = uuid.uuid4()
    base = f"/internal/offers/{offer['id']}/reservations"
    for person in (offers.tokens.admin(), offers.tokens.coordinator("44"), offers.tokens.member(offer["organisation_id"])):
        calls = [
            await offers.client.post(base, json={"match_id": str(match_id), "quantity": 1}, headers=person),
            await offers.client.post(f"{base}/{match_id}/release", headers=person),
            await offers.client.post(f"{base}/{match_id}/delivered", json={"delivered_total": 1}, headers=person),
            await offers.client.get("/internal/changes", headers=person),
        ]
        assert [call.status_code for call in calls] == [403, 403, 403, 403]
    assert (await offers.client.post(base, json={"match_id": str(match_id), "quantity": 1})).status_code == 401
    assert (await offers.client.get("/api/offers", headers=offers.tokens.service())).status_code == 403
    state = (await offers.client.get(f"/api/offers/{offer['id']}", headers=offers.tokens.admin())).json()
    assert state["reserved"] == "0.00"


async def test_a_repeated_offer_post_with_one_idempotency_key_has_one_effect(offers: OffersService) -> None:
    organisation = await verified_org(offers)
    headers = {**offers.tokens.member(organisation["id"], subject="member-chen"), "Idempotency-Key": "offer-2026-001"}

    first = await offers.client.post("/api/offers", json=offer_body(organisation["id"]), headers=headers)
    second = await offers.client.post("/api/offers", json=offer_body(organisation["id"]), headers=headers)

    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert (second.headers["Location"], second.headers["ETag"]) == (first.headers["Location"], first.headers["ETag"])
    assert second.headers["Idempotent-Replayed"] == "true"
    assert await _offer_count(offers) == 1


async def test_one_idempotency_key_for_another_body_is_422(offers: OffersService) -> None:
    organisation = await verified_org(offers)
    headers = {**offers.tokens.member(organisation["id"], subject="member-chen"), "Idempotency-Key": "k-1"}
    await offers.client.post("/api/offers", json=offer_body(organisation["id"]), headers=headers)

    other = await offers.client.post("/api/offers", json=offer_body(organisation["id"], quantity=61),
                                     headers={**headers, "Accept-Language": "en"})

    assert other.status_code == 422
    assert other.json()["detail"] == "This Idempotency-Key was already used for a different request; use a new key."
    assert await _offer_count(offers) == 1


async def test_ten_concurrent_retries_with_one_key_publish_one_offer(offers: OffersService, pg_only: None) -> None:
    organisation = await verified_org(offers)
    token = offers.tokens.member(organisation["id"], subject="member-chen")
    responses = await asyncio.gather(*(
        offers.client.post("/api/offers", json=offer_body(organisation["id"]), headers={**token, "Idempotency-Key": "burst"})
        for _ in range(10)
    ))
    assert {response.status_code for response in responses} == {201}
    assert len({response.json()["id"] for response in responses}) == 1
    assert await _offer_count(offers) == 1


async def test_the_change_feed_lists_organisation_offer_and_pairing_changes_in_order(offers: OffersService) -> None:
    coordinator = offers.tokens.coordinator(HUIZHOU)
    organisation = (await offers.client.post("/api/organisations", json=org_body(), headers=coordinator)).json()
    await offers.client.post(f"/api/organisations/{organisation['id']}/verify", headers=coordinator)
    offer = await post_offer(offers, organisation["id"])
    match_id = uuid.uuid4()
    await offers.client.post(f"/internal/offers/{offer['id']}/reservations",
                             json={"match_id": str(match_id), "quantity": 5}, headers=offers.tokens.service())
    await offers.client.post(f"/api/offers/{offer['id']}/withdraw", headers=coordinator)
    pairing = (await offers.client.post(
        "/api/pairings", json={"organisation_id": organisation["id"], "village_code": LUZHOU_VILLAGE}, headers=coordinator
    )).json()
    await offers.client.post(f"/api/pairings/{pairing['id']}/end", headers=coordinator)

    feed = await _feed(offers)

    assert [(item["entity"], item["op"], item["entity_id"]) for item in feed["items"]] == [
        ("organisation", "created", organisation["id"]), ("organisation", "verified", organisation["id"]),
        ("offer", "created", offer["id"]), ("offer", "reserved", offer["id"]), ("offer", "withdrawn", offer["id"]),
        ("pairing", "created", pairing["id"]), ("pairing", "ended", pairing["id"]),
    ]
    data = [item["data"] for item in feed["items"]]
    assert (data[0]["verified"], data[1]["verified"], data[1]["grade"]) == (False, True, 4)
    assert "contact_phone" not in data[0]
    assert (data[3]["reserved"], data[3]["available"], data[3]["version"]) == ("5.00", "55.00", 2)
    assert (data[4]["status"], data[6]["status"]) == ("withdrawn", "ended")
    seqs = [item["seq"] for item in feed["items"]]
    assert seqs == sorted(seqs) and feed["last_seq"] == seqs[-1]
    rest = await _feed(offers, after=seqs[4])
    assert [item["op"] for item in rest["items"]] == ["created", "ended"]


async def test_a_refused_write_leaves_no_feed_entry(offers: OffersService) -> None:
    offer = await post_offer(offers, (await verified_org(offers))["id"])
    before = (await _feed(offers))["last_seq"]
    await offers.client.post(f"/internal/offers/{offer['id']}/reservations",
                             json={"match_id": str(uuid.uuid4()), "quantity": 61}, headers=offers.tokens.service())
    await offers.client.post("/api/offers", json=offer_body(offer["organisation_id"], unit="kg"), headers=offers.tokens.admin())
    assert (await _feed(offers, after=before))["items"] == []


async def test_a_crash_after_the_write_leaves_neither_the_offer_nor_its_feed_entry(
    offers: OffersService, monkeypatch: pytest.MonkeyPatch
) -> None:
    organisation = await verified_org(offers)
    before = (await _feed(offers))["last_seq"]

    def explode(*_: object) -> None:
        raise RuntimeError("injected after the business write, before the commit")

    monkeypatch.setattr(offers_router, "_created", explode)
    # As a real server does: answer 500 instead of propagating the exception to the client.
    transport = httpx.ASGITransport(app=offers.app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://offers") as client:
        response = await client.post("/api/offers", json=offer_body(organisation["id"]), headers=offers.tokens.admin())
    monkeypatch.undo()

    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert await _offer_count(offers) == 0
    assert (await _feed(offers, after=before))["items"] == []


async def test_feed_sequence_has_no_gaps_under_concurrent_writers(offers: OffersService, pg_only: None) -> None:
    """Readers poll `after=N`: numbers must become visible in order, or a late commit would be skipped."""
    organisation = await verified_org(offers)
    before = (await _feed(offers))["last_seq"]
    await asyncio.gather(*(post_offer(offers, organisation["id"], title=f"并发供给 {n}") for n in range(30)))
    seqs = [item["seq"] for item in (await _feed(offers, after=before))["items"]]
    assert seqs == list(range(before + 1, before + 31))
