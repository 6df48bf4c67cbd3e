"""The matching service holds quantity of offers, keyed by match id: never more than an offer has."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal

import pytest
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError

from services.offers.models import Offer
from tests.offers.conftest import OffersService, post_offer, verified_org


async def _offer(offers: OffersService, **overrides: object) -> dict:
    organisation = await verified_org(offers)
    return await post_offer(offers, organisation["id"], **overrides)


async def _reserve(offers: OffersService, offer_id: str, match_id: uuid.UUID, quantity: object) -> tuple[int, dict]:
    response = await offers.client.post(
        f"/internal/offers/{offer_id}/reservations", json={"match_id": str(match_id), "quantity": quantity},
        headers={**offers.tokens.service(), "Accept-Language": "en"},
    )
    return response.status_code, response.json()


async def _release(offers: OffersService, offer_id: str, match_id: uuid.UUID) -> tuple[int, dict]:
    response = await offers.client.post(
        f"/internal/offers/{offer_id}/reservations/{match_id}/release",
        headers={**offers.tokens.service(), "Accept-Language": "en"},
    )
    return response.status_code, response.json()


async def _delivered(offers: OffersService, offer_id: str, match_id: uuid.UUID, total: object) -> tuple[int, dict]:
    response = await offers.client.post(
        f"/internal/offers/{offer_id}/reservations/{match_id}/delivered", json={"delivered_total": total},
        headers={**offers.tokens.service(), "Accept-Language": "en"},
    )
    return response.status_code, response.json()


async def _state(offers: OffersService, offer_id: str) -> tuple[str, str, str, str]:
    offer = (await offers.client.get(f"/api/offers/{offer_id}", headers=offers.tokens.admin())).json()
    return offer["reserved"], offer["delivered"], offer["available"], offer["status"]


async def test_a_reservation_is_idempotent_by_match_id(offers: OffersService) -> None:
    offer = await _offer(offers)
    match_id = uuid.uuid4()

    first = await _reserve(offers, offer["id"], match_id, 20)
    again = await _reserve(offers, offer["id"], match_id, 20)

    assert first == again
    assert first == (200, {"offer_id": offer["id"], "match_id": str(match_id), "quantity": "20.00",
                           "delivered": "0.00", "status": "active", "offer_available": "40.00"})
    assert await _state(offers, offer["id"]) == ("20.00", "0.00", "40.00", "active")


async def test_the_same_match_with_another_quantity_or_offer_is_refused(offers: OffersService) -> None:
    offer, other = await _offer(offers), await _offer(offers)
    match_id = uuid.uuid4()
    await _reserve(offers, offer["id"], match_id, 20)

    more = await _reserve(offers, offer["id"], match_id, 21)
    elsewhere = await _reserve(offers, other["id"], match_id, 20)

    assert more[0] == elsewhere[0] == 409
    assert more[1]["detail"] == "This match already holds a reservation of another offer or quantity."
    assert await _state(offers, other["id"]) == ("0.00", "0.00", "60.00", "active")


async def test_more_than_is_available_is_refused_with_the_reason(offers: OffersService) -> None:
    offer = await _offer(offers)
    await _reserve(offers, offer["id"], uuid.uuid4(), 55)

    status, body = await _reserve(offers, offer["id"], uuid.uuid4(), 6)

    assert status == 409
    assert body["detail"] == "The offer has only 5.00 trainee left, not 6."
    assert await _state(offers, offer["id"]) == ("55.00", "0.00", "5.00", "active")


async def test_a_withdrawn_offer_takes_no_reservation(offers: OffersService) -> None:
    offer = await _offer(offers)
    await offers.client.post(f"/api/offers/{offer['id']}/withdraw", headers=offers.tokens.admin())
    status, body = await _reserve(offers, offer["id"], uuid.uuid4(), 1)
    assert (status, body["detail"]) == (409, "The offer is withdrawn; it takes no reservations.")


async def test_an_unknown_offer_is_404_and_holds_nothing(offers: OffersService) -> None:
    status, body = await _reserve(offers, str(uuid.uuid4()), uuid.uuid4(), 1)
    assert (status, body["detail"]) == (404, "No such offer.")


async def test_release_gives_back_what_was_not_delivered_and_blocks_a_late_retry(offers: OffersService) -> None:
    offer = await _offer(offers)
    match_id = uuid.uuid4()
    await _reserve(offers, offer["id"], match_id, 10)
    assert (await _delivered(offers, offer["id"], match_id, 4))[0] == 200

    released = await _release(offers, offer["id"], match_id)
    released_again = await _release(offers, offer["id"], match_id)

    assert released == released_again
    assert (released[0], released[1]["status"], released[1]["offer_available"]) == (200, "released", "56.00")
    assert await _state(offers, offer["id"]) == ("0.00", "4.00", "56.00", "active")
    status, body = await _reserve(offers, offer["id"], match_id, 10)
    assert (status, body["detail"]) == (409, "This match's reservation was released; it cannot reserve again.")
    assert await _state(offers, offer["id"]) == ("0.00", "4.00", "56.00", "active")


async def test_a_release_before_any_hold_leaves_a_tombstone_that_refuses_a_late_hold(offers: OffersService) -> None:
    offer = await _offer(offers)
    match_id = uuid.uuid4()

    released = await _release(offers, offer["id"], match_id)
    late_hold = await _reserve(offers, offer["id"], match_id, 5)

    assert (released[0], released[1]["quantity"], released[1]["status"]) == (200, "0.00", "released")
    assert late_hold[0] == 409
    assert await _state(offers, offer["id"]) == ("0.00", "0.00", "60.00", "active")


async def test_releasing_under_another_offer_or_an_unknown_one_is_404(offers: OffersService) -> None:
    offer, other = await _offer(offers), await _offer(offers)
    match_id = uuid.uuid4()
    await _reserve(offers, offer["id"], match_id, 10)

    assert (await _release(offers, other["id"], match_id))[0] == 404
    assert (await _release(offers, str(uuid.uuid4()), uuid.uuid4()))[0] == 404
    assert await _state(offers, offer["id"]) == ("10.00", "0.00", "50.00", "active")


async def test_deliveries_are_cumulative_move_quantity_and_never_exceed_the_reservation(offers: OffersService) -> None:
    offer = await _offer(offers, quantity=10)
    match_id = uuid.uuid4()
    await _reserve(offers, offer["id"], match_id, 8)

    for total in (3, 3, 1):  # a repeat and a late older retry change nothing
        assert (await _delivered(offers, offer["id"], match_id, total))[0] == 200
    assert await _state(offers, offer["id"]) == ("5.00", "3.00", "2.00", "active")

    too_much = await _delivered(offers, offer["id"], match_id, 9)
    assert too_much[0] == 409
    assert too_much[1]["detail"] == "A delivered total of 9 exceeds the 8.00 reserved."
    status, body = await _delivered(offers, offer["id"], match_id, 8)
    assert (status, body["delivered"], body["quantity"]) == (200, "8.00", "8.00")
    assert await _state(offers, offer["id"]) == ("0.00", "8.00", "2.00", "active")


async def test_an_offer_delivered_in_full_is_exhausted(offers: OffersService) -> None:
    offer = await _offer(offers, quantity=10)
    first, second = uuid.uuid4(), uuid.uuid4()
    await _reserve(offers, offer["id"], first, 6)
    await _reserve(offers, offer["id"], second, 4)

    await _delivered(offers, offer["id"], first, 6)
    assert (await _state(offers, offer["id"]))[3] == "active"
    await _delivered(offers, offer["id"], second, 4)
    assert await _state(offers, offer["id"]) == ("0.00", "10.00", "0.00", "exhausted")


async def test_a_withdrawn_offer_still_delivers_what_it_promised(offers: OffersService) -> None:
    offer = await _offer(offers)
    match_id = uuid.uuid4()
    await _reserve(offers, offer["id"], match_id, 10)
    await offers.client.post(f"/api/offers/{offer['id']}/withdraw", headers=offers.tokens.admin())

    assert (await _delivered(offers, offer["id"], match_id, 10))[0] == 200
    assert await _state(offers, offer["id"]) == ("0.00", "10.00", "50.00", "withdrawn")


async def test_no_delivery_after_release_or_without_a_reservation(offers: OffersService) -> None:
    offer = await _offer(offers)
    match_id = uuid.uuid4()
    await _reserve(offers, offer["id"], match_id, 10)
    await _release(offers, offer["id"], match_id)

    after_release = await _delivered(offers, offer["id"], match_id, 1)
    unknown = await _delivered(offers, offer["id"], uuid.uuid4(), 1)

    assert (after_release[0], after_release[1]["detail"]) == (409, "This reservation was released; no more deliveries.")
    assert unknown[0] == 404
    assert await _state(offers, offer["id"]) == ("0.00", "0.00", "60.00", "active")


async def test_bad_reservation_input_is_422(offers: OffersService) -> None:
    offer = await _offer(offers)
    for body in ({"match_id": "not-a-uuid", "quantity": 1}, {"match_id": str(uuid.uuid4()), "quantity": 0},
                 {"match_id": str(uuid.uuid4())}):
        response = await offers.client.post(
            f"/internal/offers/{offer['id']}/reservations", json=body, headers=offers.tokens.service()
        )
        assert response.status_code == 422
    assert await _state(offers, offer["id"]) == ("0.00", "0.00", "60.00", "active")


@pytest.mark.parametrize(
    "books", [{"reserved": Decimal(11)}, {"reserved": Decimal(6), "delivered": Decimal(5)}, {"reserved": Decimal(-1)},
              {"delivered": Decimal(-1)}],
)
async def test_the_database_itself_refuses_books_that_do_not_balance(offers: OffersService, books: dict) -> None:
    """A backstop under the service's rules: even a faulty UPDATE cannot hold more than the offer has."""
    offer = await _offer(offers, quantity=10)
    async with offers.app.state.db.engine.connect() as connection:
        with pytest.raises(IntegrityError):
            await connection.execute(update(Offer).where(Offer.id == uuid.UUID(offer["id"])).values(**books))
    assert await _state(offers, offer["id"]) == ("0.00", "0.00", "10.00", "active")


async def test_100_concurrent_reservations_never_oversubscribe_an_offer(offers: OffersService, pg_only: None) -> None:
    offer = await _offer(offers, quantity=30)

    results = await asyncio.gather(*(_reserve(offers, offer["id"], uuid.uuid4(), 1) for _ in range(100)))

    statuses = [status for status, _ in results]
    assert statuses.count(200) == 30
    assert statuses.count(409) == 70
    assert {body["detail"] for status, body in results if status == 409} == {"The offer has only 0.00 trainee left, not 1."}
    assert await _state(offers, offer["id"]) == ("30.00", "0.00", "0.00", "active")


async def test_one_match_reserved_20_times_at_once_holds_once(offers: OffersService, pg_only: None) -> None:
    offer = await _offer(offers)
    match_id = uuid.uuid4()

    results = await asyncio.gather(*(_reserve(offers, offer["id"], match_id, 3) for _ in range(20)))

    assert {status for status, _ in results} == {200}
    assert {body["quantity"] for _, body in results} == {"3.00"}
    assert await _state(offers, offer["id"]) == ("3.00", "0.00", "57.00", "active")


async def test_concurrent_holds_and_releases_keep_the_books_balanced(offers: OffersService, pg_only: None) -> None:
    """Every match is held and released at once, in no particular order: nothing may stay held."""
    offer = await _offer(offers, quantity=30)
    matches = [uuid.uuid4() for _ in range(30)]

    await asyncio.gather(*(
        call for match_id in matches
        for call in (_reserve(offers, offer["id"], match_id, 1), _release(offers, offer["id"], match_id))
    ))

    assert await _state(offers, offer["id"]) == ("0.00", "0.00", "30.00", "active")
    late = await asyncio.gather(*(_reserve(offers, offer["id"], match_id, 1) for match_id in matches))
    assert {status for status, _ in late} == {409}
