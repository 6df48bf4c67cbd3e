"""Read models from the change feeds: applied, replayable, rebuilt from 0 alike, resumed after a restart."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from services.matching.app import create_app
from services.matching.clients import FeedClient
from services.matching.models import Base as MatchingBase
from services.matching.sync import FeedSync
from tests.matching.conftest import (
    CENSHAN,
    VILLAGE_A,
    Platform,
    delete_all,
    matching_settings,
    read_model_dump,
    service_token,
    upstream_transports,
)


async def _scenario(platform: Platform) -> dict[str, Any]:
    organisation = await platform.organisation(grade=5)
    offer = await platform.offer(organisation, quantity=25)
    pairing = await platform.pair(organisation, VILLAGE_A)
    need = await platform.need(VILLAGE_A, quantity=12, urgency=5, skills=[])
    return {"organisation": organisation, "offer": offer, "pairing": pairing, "need": need}


async def _feed_head(client: httpx.AsyncClient, platform: Platform) -> int:
    response = await client.get("/internal/changes?after=0&limit=2000", headers=platform.tokens.service())
    assert response.status_code == 200, response.text
    last: int = response.json()["last_seq"]
    return last


async def test_the_feeds_fill_the_read_models_with_what_the_services_hold(platform: Platform) -> None:
    made = await _scenario(platform)

    assert await platform.sync() == 5  # organisation created + verified, offer, pairing; need
    dump = await read_model_dump(platform.matching_app)

    [organisation] = dump["organisations"]
    assert (str(organisation["id"]), organisation["grade"], organisation["verified"]) == (made["organisation"], 5, True)
    [offer] = dump["offers"]
    assert str(offer["id"]) == made["offer"]["id"]
    assert (offer["available"], offer["quantity"], offer["status"], offer["region_codes"]) == (
        Decimal("25.00"), Decimal("25.00"), "active", ["441302"])
    [need] = dump["needs"]
    assert (str(need["id"]), need["quantity"], need["committed"], need["urgency"], need["village_code"]) == (
        made["need"]["id"], Decimal("12.00"), Decimal("0.00"), 5, VILLAGE_A)
    [pairing] = dump["pairings"]
    assert (str(pairing["organisation_id"]), pairing["village_code"], pairing["status"]) == (made["organisation"], VILLAGE_A, "active")
    async with platform.matching_app.state.db.session() as session:
        from services.matching import repository
        cursors = await repository.all_feed_cursors(session)
    assert cursors == {"needs": await _feed_head(platform.needs, platform), "offers": await _feed_head(platform.offers, platform)}
    assert await platform.sync() == 0  # caught up: nothing applied twice


async def test_later_changes_update_rows_and_a_rebuild_from_zero_gives_the_same_state(platform: Platform) -> None:
    made = await _scenario(platform)
    await platform.sync()
    # Changes after the first sync: an edit, a withdrawal, a pairing ended, a need cancelled, a new need.
    need_id, offer_id = made["need"]["id"], made["offer"]["id"]
    etag = (await platform.needs.get(f"/api/needs/{need_id}", headers=platform.admin)).headers["ETag"]
    edited = await platform.needs.patch(f"/api/needs/{need_id}", json={"urgency": 2, "quantity": 8},
                                        headers={**platform.admin, "If-Match": etag})
    assert edited.status_code == 200, edited.text
    assert (await platform.offers.post(f"/api/offers/{offer_id}/withdraw", headers=platform.admin)).status_code == 200
    assert (await platform.offers.post(f"/api/pairings/{made['pairing']['id']}/end", headers=platform.admin)).status_code == 200
    other = await platform.need(CENSHAN, title="抗旱应急饮水", category="disaster", kind="funds", quantity="50000", unit="CNY")
    assert (await platform.needs.post(f"/api/needs/{other['id']}/cancel", headers=platform.admin)).status_code == 200
    await platform.sync()
    incremental = await read_model_dump(platform.matching_app)

    need = next(row for row in incremental["needs"] if str(row["id"]) == need_id)
    assert (need["urgency"], need["quantity"]) == (2, Decimal("8.00"))
    assert [row["status"] for row in incremental["offers"]] == ["withdrawn"]
    assert [row["status"] for row in incremental["pairings"]] == ["ended"]
    assert len(incremental["needs"]) == 2

    # Replaying every change over the current state changes nothing ...
    async with platform.matching_app.state.db.transaction() as session:
        from services.matching import repository
        for feed in ("needs", "offers"):
            await repository.set_feed_cursor(session, feed, 0)
    await platform.sync()
    assert await read_model_dump(platform.matching_app) == incremental
    # ... and a rebuild from nothing arrives at the same state.
    await delete_all(platform.matching_app.state.db, MatchingBase.metadata)
    platform.matching_app.state.read_models.reset()
    assert await read_model_dump(platform.matching_app) == {"needs": [], "offers": [], "organisations": [], "pairings": []}
    await platform.sync()
    assert await read_model_dump(platform.matching_app) == incremental


class Recording(httpx.AsyncBaseTransport):
    """Passes requests to an app, remembering each `after` the feed was asked for; can fail on demand."""

    def __init__(self, app: FastAPI, failures: int = 0) -> None:
        self._inner = httpx.ASGITransport(app=app)
        self.afters: list[int] = []
        self.failures = failures

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/internal/changes":
            self.afters.append(int(request.url.params["after"]))
            if self.failures:
                self.failures -= 1
                if self.failures % 2:
                    raise httpx.ConnectError("connection refused", request=request)
                return httpx.Response(503, json={"status": 503})
        return await self._inner.handle_async_request(request)


async def test_a_restarted_service_resumes_from_the_stored_cursor(
    platform: Platform, upstream_apps: dict[str, FastAPI], matching_database_url: str
) -> None:
    await _scenario(platform)
    await platform.sync()
    stored = await _feed_head(platform.needs, platform)
    later = await platform.need(VILLAGE_A, title="村卫生室药品柜", category="health", quantity=2)

    needs_transport = Recording(upstream_apps["needs"])
    restarted = create_app(
        matching_settings(matching_database_url, platform.tokens),
        transports={**upstream_transports(upstream_apps), "needs": needs_transport}, tokens=service_token(platform.tokens),
    )
    async with restarted.router.lifespan_context(restarted):
        assert await restarted.state.sync.catch_up() == 1
        assert later["id"] in restarted.state.read_models.needs
    assert needs_transport.afters[0] == stored > 0


async def test_upstream_failures_are_retried_without_stopping_the_loop(
    platform: Platform, upstream_apps: dict[str, FastAPI]
) -> None:
    made = await _scenario(platform)
    app = platform.matching_app
    flaky = Recording(upstream_apps["needs"], failures=3)  # refused, 503, refused, then answers
    settings = matching_settings("sqlite://", platform.tokens, sync_interval_seconds=0.01, sync_max_backoff_seconds=0.05)
    async with httpx.AsyncClient(transport=flaky, base_url="http://needs") as client:
        sync = FeedSync(app.state.db, {"needs": FeedClient("needs", client, service_token(platform.tokens))},
                        app.state.read_models, settings)
        task = asyncio.create_task(sync.run())
        try:
            for _ in range(500):  # at most 5 s
                if made["need"]["id"] in app.state.read_models.needs:
                    break
                await asyncio.sleep(0.01)
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
    assert made["need"]["id"] in app.state.read_models.needs
    assert flaky.failures == 0 and len(flaky.afters) >= 4
    assert sync.errors["needs"] == 0  # recovered


async def test_a_new_need_and_offer_show_in_candidates_within_two_seconds(
    platform: Platform, upstream_apps: dict[str, FastAPI], matching_database_url: str
) -> None:
    """With the real background sync of a second process on the same database."""
    organisation = await platform.organisation()
    live = create_app(
        matching_settings(matching_database_url, platform.tokens, sync_enabled=True),
        transports=upstream_transports(upstream_apps), tokens=service_token(platform.tokens),
    )
    async with live.router.lifespan_context(live), httpx.AsyncClient(
        transport=httpx.ASGITransport(app=live), base_url="http://matching"
    ) as client:
        need = await platform.need(VILLAGE_A)
        offer = await platform.offer(organisation)
        started = time.monotonic()
        found: list[str] = []
        while time.monotonic() - started < 2.0 and not found:
            response = await client.get("/api/candidates", params={"need_id": need["id"]}, headers=platform.admin)
            if response.status_code == 200:
                found = [item["offer_id"] for item in response.json()["items"]]
            await asyncio.sleep(0.05)
        assert found == [offer["id"]], f"not in candidates after {time.monotonic() - started:.2f} s"
