"""The matching service commits quantity to needs, keyed by match id: never more than the need holds."""

from __future__ import annotations

import asyncio
import uuid

from tests.needs.conftest import LUZHOU_VILLAGE, NeedsService, post_need


async def _commit(needs: NeedsService, need_id: str, match_id: uuid.UUID, quantity: object) -> tuple[int, dict]:
    response = await needs.client.post(
        f"/internal/needs/{need_id}/commitments", json={"match_id": str(match_id), "quantity": quantity},
        headers={**needs.tokens.service(), "Accept-Language": "en"},
    )
    return response.status_code, response.json()


async def _need(needs: NeedsService, need_id: str) -> dict:
    return (await needs.client.get(f"/api/needs/{need_id}", headers=needs.tokens.admin())).json()


async def test_a_commitment_is_idempotent_by_match_id(needs: NeedsService) -> None:
    need = await post_need(needs)
    match_id = uuid.uuid4()

    first = await _commit(needs, need["id"], match_id, 20)
    again = await _commit(needs, need["id"], match_id, 20)

    assert first == again
    assert first[0] == 200 and first[1]["need_remaining"] == "25.00"
    assert (await _need(needs, need["id"]))["committed"] == "20.00"


async def test_the_same_match_with_another_quantity_is_refused(needs: NeedsService) -> None:
    need = await post_need(needs)
    match_id = uuid.uuid4()
    await _commit(needs, need["id"], match_id, 20)
    status, body = await _commit(needs, need["id"], match_id, 21)
    assert status == 409
    assert "another need or quantity" in body["detail"]


async def test_more_than_what_is_left_is_refused_with_the_reason(needs: NeedsService) -> None:
    need = await post_need(needs)
    await _commit(needs, need["id"], uuid.uuid4(), 40)

    status, body = await _commit(needs, need["id"], uuid.uuid4(), 6)

    assert status == 409
    assert body["detail"] == "The need has only 5.00 trainee left, not 6."
    assert (await _need(needs, need["id"]))["committed"] == "40.00"


async def test_a_closed_need_takes_no_commitment(needs: NeedsService) -> None:
    need = await post_need(needs)
    await needs.client.post(f"/api/needs/{need['id']}/close", headers=needs.tokens.officer(LUZHOU_VILLAGE))
    status, body = await _commit(needs, need["id"], uuid.uuid4(), 1)
    assert status == 409
    assert body["detail"] == "The need is closed; it takes no commitments."


async def test_release_gives_back_what_was_not_delivered_and_blocks_a_late_retry(needs: NeedsService) -> None:
    need = await post_need(needs)
    match_id, service = uuid.uuid4(), needs.tokens.service()
    await _commit(needs, need["id"], match_id, 10)
    delivered = await needs.client.post(
        f"/internal/needs/{need['id']}/commitments/{match_id}/delivered", json={"delivered_total": 4}, headers=service
    )
    assert delivered.status_code == 200, delivered.text

    released = await needs.client.post(f"/internal/needs/{need['id']}/commitments/{match_id}/release", headers=service)
    released_again = await needs.client.post(f"/internal/needs/{need['id']}/commitments/{match_id}/release", headers=service)

    assert released.status_code == released_again.status_code == 200
    assert released.json()["status"] == "released"
    state = await _need(needs, need["id"])
    assert (state["committed"], state["delivered"], state["remaining"]) == ("4.00", "4.00", "41.00")
    status, _ = await _commit(needs, need["id"], match_id, 10)
    assert status == 409


async def test_a_release_before_any_commit_leaves_a_tombstone(needs: NeedsService) -> None:
    need = await post_need(needs)
    match_id = uuid.uuid4()
    released = await needs.client.post(
        f"/internal/needs/{need['id']}/commitments/{match_id}/release", headers=needs.tokens.service()
    )
    assert released.status_code == 200
    status, _ = await _commit(needs, need["id"], match_id, 5)
    assert status == 409
    assert (await _need(needs, need["id"]))["committed"] == "0.00"


async def test_deliveries_are_cumulative_and_fulfil_the_need(needs: NeedsService) -> None:
    need = await post_need(needs, quantity=10)
    match_id, service = uuid.uuid4(), needs.tokens.service()
    await _commit(needs, need["id"], match_id, 10)
    path = f"/internal/needs/{need['id']}/commitments/{match_id}/delivered"

    for total in (6, 6, 3, 10):  # a repeat and a late older retry change nothing
        assert (await needs.client.post(path, json={"delivered_total": total}, headers=service)).status_code == 200
    too_much = await needs.client.post(path, json={"delivered_total": 11}, headers=service)

    assert too_much.status_code == 409
    state = await _need(needs, need["id"])
    assert (state["delivered"], state["status"]) == ("10.00", "fulfilled")


async def test_a_need_with_approved_matches_cannot_be_cancelled(needs: NeedsService) -> None:
    need = await post_need(needs)
    await _commit(needs, need["id"], uuid.uuid4(), 5)
    response = await needs.client.post(f"/api/needs/{need['id']}/cancel", headers=needs.tokens.officer(LUZHOU_VILLAGE))
    assert response.status_code == 409


async def test_quantity_cannot_drop_below_what_is_committed(needs: NeedsService) -> None:
    need = await post_need(needs)
    await _commit(needs, need["id"], uuid.uuid4(), 30)
    response = await needs.client.patch(
        f"/api/needs/{need['id']}", json={"quantity": 29},
        headers={**needs.tokens.officer(LUZHOU_VILLAGE), "If-Match": '"2"'},
    )
    assert response.status_code == 409


async def test_100_concurrent_commitments_never_exceed_the_need(needs: NeedsService, pg_only: None) -> None:
    need = await post_need(needs, quantity=30)

    results = await asyncio.gather(*(_commit(needs, need["id"], uuid.uuid4(), 1) for _ in range(100)))

    statuses = [status for status, _ in results]
    assert statuses.count(200) == 30
    assert statuses.count(409) == 70
    state = await _need(needs, need["id"])
    assert (state["committed"], state["remaining"]) == ("30.00", "0.00")


async def test_one_match_committed_20_times_at_once_counts_once(needs: NeedsService, pg_only: None) -> None:
    need = await post_need(needs)
    match_id = uuid.uuid4()

    results = await asyncio.gather(*(_commit(needs, need["id"], match_id, 3) for _ in range(20)))

    assert {status for status, _ in results} == {200}
    assert (await _need(needs, need["id"]))["committed"] == "3.00"
