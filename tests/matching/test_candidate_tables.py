"""The engine's offer table follows offer changes in place (no rebuild), and candidates see them at once."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from services.matching.scoring import OfferTable
from tests.matching.conftest import VILLAGE_A, Platform


def _offer_ids(body: dict[str, object]) -> list[str]:
    return [item["offer_id"] for item in body["items"]]  # type: ignore[attr-defined,index]


async def test_offer_changes_update_the_table_in_place_as_a_rebuild_would(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    organisation = await platform.organisation(grade=3)
    other = await platform.organisation(grade=2, name="惠州市另一家企业")
    first = await platform.offer(organisation, quantity=30)
    second = await platform.offer(other, quantity=4)
    need = await platform.need(VILLAGE_A, quantity=10)
    await platform.sync()
    body = (await platform.candidates(need_id=need["id"])).json()
    assert set(_offer_ids(body)) == {first["id"], second["id"]}
    cache = platform.matching_app.state.read_models
    built = await cache.offer_table()
    updates: list[int] = []
    with_offers = OfferTable.with_offers

    def spy(table: OfferTable, views: Any) -> OfferTable:
        views = tuple(views)
        updates.append(len(views))
        return with_offers(table, views)

    monkeypatch.setattr(OfferTable, "with_offers", spy)

    withdrawn = await platform.offers.post(f"/api/offers/{first['id']}/withdraw", headers=platform.admin)
    assert withdrawn.status_code == 200, withdrawn.text
    third = await platform.offer(organisation, quantity=7)
    etag = (await platform.offers.get(f"/api/organisations/{other}", headers=platform.admin)).headers["ETag"]
    regraded = await platform.offers.patch(
        f"/api/organisations/{other}", json={"grade": 5}, headers={**platform.admin, "If-Match": etag}
    )
    assert regraded.status_code == 200, regraded.text
    await platform.sync()

    body = (await platform.candidates(need_id=need["id"])).json()
    assert set(_offer_ids(body)) == {second["id"], third["id"]}
    graded = next(item for item in body["items"] if item["offer_id"] == second["id"])
    assert {e["rule"]: e for e in graded["explanation"]}["grade"]["score"] == 1.0
    table = await cache.offer_table()
    rebuilt = OfferTable.from_views(tuple(cache.offers.values()))
    assert updates and table is not built and table.views == rebuilt.views and dict(table.row_of) == dict(rebuilt.row_of)
    for name in ("eligible", "available", "grade", "prefix_keys", "prefix_offer", "blocks", "block_count"):
        assert np.array_equal(getattr(table, name), getattr(rebuilt, name)), name
