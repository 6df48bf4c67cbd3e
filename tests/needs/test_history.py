"""The audit trail of a need: who changed what, when and why, for those who govern it."""

from __future__ import annotations

import uuid

from tests.needs.conftest import LUZHOU_VILLAGE, NeedsService, post_need


async def test_every_change_names_who_what_and_why(needs: NeedsService) -> None:
    officer = needs.tokens.officer(LUZHOU_VILLAGE, subject="officer-li")
    created = await post_need(needs, headers=officer)
    path = f"/api/needs/{created['id']}"
    patched = await needs.client.patch(path, json={"urgency": 5}, headers={**officer, "If-Match": '"1"'})
    assert patched.status_code == 200, patched.text
    match_id = uuid.uuid4()
    committed = await needs.client.post(f"/internal/needs/{created['id']}/commitments",
                                        json={"match_id": str(match_id), "quantity": "5"}, headers=needs.tokens.service())
    assert committed.status_code == 200, committed.text
    closed = await needs.client.post(f"{path}/close", json={"reason": "镇里已另行安排培训"}, headers=officer)
    assert closed.status_code == 200, closed.text

    response = await needs.client.get(f"{path}/history", headers=needs.tokens.coordinator("441302"))

    assert response.status_code == 200, response.text
    history = response.json()
    assert [(entry["op"], entry["actor"]) for entry in history] == [
        ("created", "officer-li"), ("updated", "officer-li"), ("committed", "service:matching"), ("closed", "officer-li"),
    ]
    assert history[0]["changes"]["title"] == [None, created["title"]]
    assert history[1]["changes"] == {"urgency": [3, 5]}
    assert history[2]["changes"] == {"committed": ["0.00", "5.00"]}
    assert history[2]["reason"] == f"match {match_id}"
    assert history[3]["reason"] == "镇里已另行安排培训"
    assert history[3]["changes"] == {"status": ["open", "closed"]}


async def test_the_history_is_not_for_outsiders(needs: NeedsService) -> None:
    created = await post_need(needs)
    path = f"/api/needs/{created['id']}/history"
    for outsider in (needs.tokens.coordinator("450123"), needs.tokens.officer("441302104299"),
                     needs.tokens.member(uuid.uuid4())):
        response = await needs.client.get(path, headers=outsider)
        assert response.status_code in (403, 404), response.text
    assert (await needs.client.get(path)).status_code == 401


async def test_a_reason_that_is_empty_is_refused_and_changes_nothing(needs: NeedsService) -> None:
    created = await post_need(needs)
    response = await needs.client.post(f"/api/needs/{created['id']}/cancel", json={"reason": ""},
                                       headers=needs.tokens.officer(LUZHOU_VILLAGE))
    assert response.status_code == 422
    assert (await needs.client.get(f"/api/needs/{created['id']}", headers=needs.tokens.admin())).json()["status"] == "open"
