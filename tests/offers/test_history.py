"""The audit trail of an offer: who changed what, when and why, for its organisation and those who govern it."""

from __future__ import annotations

import uuid

from tests.offers.conftest import OffersService, post_offer, verified_org


async def test_a_withdrawal_and_a_reservation_are_in_the_offers_history(offers: OffersService) -> None:
    organisation = await verified_org(offers)
    member = offers.tokens.member(organisation["id"], subject="member-chen")
    offer = await post_offer(offers, organisation["id"], headers=member)
    match_id = uuid.uuid4()
    reserved = await offers.client.post(f"/internal/offers/{offer['id']}/reservations",
                                        json={"match_id": str(match_id), "quantity": "10"}, headers=offers.tokens.service())
    assert reserved.status_code == 200, reserved.text
    withdrawn = await offers.client.post(f"/api/offers/{offer['id']}/withdraw", json={"reason": "培训名额已满"}, headers=member)
    assert withdrawn.status_code == 200, withdrawn.text

    response = await offers.client.get(f"/api/offers/{offer['id']}/history", headers=offers.tokens.admin())

    history = response.json()
    assert [(entry["op"], entry["actor"], entry["reason"]) for entry in history] == [
        ("created", "member-chen", None), ("reserved", "service:matching", f"match {match_id}"),
        ("withdrawn", "member-chen", "培训名额已满"),
    ]
    assert history[1]["changes"]["reserved"] == ["0.00", "10.00"]


async def test_another_organisation_cannot_read_the_history(offers: OffersService) -> None:
    organisation = await verified_org(offers)
    offer = await post_offer(offers, organisation["id"])
    response = await offers.client.get(f"/api/offers/{offer['id']}/history", headers=offers.tokens.member(uuid.uuid4()))
    assert response.status_code in (403, 404)
