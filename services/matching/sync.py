"""Read models from the change feeds: needs (needs service), organisations, offers and pairings (offers service).

Each feed is polled with `after=<cursor>`; a page of changes is applied and the cursor advanced in one
transaction, so a restart resumes exactly where it stopped. Applying a change is an upsert by id that
only takes effect when the change's seq is above the row's, so a replay (two processes, a crash between
fetch and commit, or a rebuild from 0) ends in the same state.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from prometheus_client import Gauge
from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.db import Database
from services.matching import repository
from services.matching.clients import (
    ChangePage,
    ChangeRecord,
    FeedClient,
    NeedRecord,
    OfferRecord,
    OrganisationRecord,
    PairingRecord,
)
from services.matching.config import MatchingSettings
from services.matching.models import NeedRM, OfferRM, OrganisationRM, PairingRM
from services.matching.readmodel import ReadModelCache

log = logging.getLogger("duijie.matching.sync")

NEED_FULFILLED = "fulfilled"

FEED_CURSOR = Gauge("duijie_matching_feed_cursor", "Last change applied from each upstream feed", ["feed"])
FEED_LAG = Gauge(
    "duijie_matching_feed_lag_seconds",
    "Age of the newest change applied while more were waiting (0 when caught up)", ["feed"],
)
FEED_LAST_SUCCESS = Gauge("duijie_matching_feed_last_success_timestamp", "Unix time of the last successful poll", ["feed"])
FEED_ERRORS = Gauge("duijie_matching_feed_consecutive_errors", "Failed polls in a row", ["feed"])


@dataclass(frozen=True, slots=True)
class Entity:
    """How one entity of a feed lands in its read-model table."""

    model: type[NeedRM] | type[OfferRM] | type[OrganisationRM] | type[PairingRM]
    record: type[BaseModel]


FEEDS: Mapping[str, Mapping[str, Entity]] = {
    "needs": {"need": Entity(NeedRM, NeedRecord)},
    "offers": {
        "organisation": Entity(OrganisationRM, OrganisationRecord),
        "offer": Entity(OfferRM, OfferRecord),
        "pairing": Entity(PairingRM, PairingRecord),
    },
}


async def apply_page(session: AsyncSession, feed: str, page: ChangePage) -> int:
    """Apply the changes above the stored cursor and advance it; the caller commits. Returns how many applied."""
    cursor = await repository.feed_cursor(session, feed, lock=True)
    items = [item for item in page.items if item.seq > cursor]
    if not items:
        return 0
    entities = FEEDS[feed]
    by_entity: dict[str, list[tuple[ChangeRecord, BaseModel]]] = {}
    for item in items:
        entity = entities.get(item.entity)
        if entity is None:
            continue  # an entity matching does not read
        try:
            record = entity.record.model_validate(item.data)
        except ValidationError as exc:
            # Skipping one unreadable change is better than stopping the feed; its next change repairs the row.
            log.error("feed %s: change %s (%s %s) is unreadable, skipped: %s", feed, item.seq, item.entity, item.entity_id,
                      exc.errors(include_input=False))
            continue
        by_entity.setdefault(item.entity, []).append((item, record))
    for name, changes in by_entity.items():
        await _upsert(session, entities[name], changes)
    await repository.set_feed_cursor(session, feed, max(item.seq for item in items))
    return len(items)


async def _upsert(session: AsyncSession, entity: Entity, changes: Sequence[tuple[ChangeRecord, BaseModel]]) -> None:
    existing: dict[Any, Any] = await repository.read_model_rows(
        session, entity.model, (record.id for _, record in changes)  # type: ignore[attr-defined]
    )
    columns = set(entity.model.__table__.columns.keys())
    for change, record in changes:  # in seq order
        values = {name: value for name, value in record.model_dump().items() if name in columns}
        row = existing.get(values["id"])
        if row is None:
            row = entity.model(**values, seq=change.seq)
            repository.add_read_model_row(session, row)
            existing[values["id"]] = row
        elif change.seq > row.seq:
            for name, value in values.items():
                setattr(row, name, value)
            row.seq = change.seq
        else:
            continue
        if isinstance(row, NeedRM):
            _track_fulfilment(row, change)
    await session.flush()


def _track_fulfilment(row: NeedRM, change: ChangeRecord) -> None:
    """When a need became fulfilled: the time of the first change that showed it so (a replay finds the same)."""
    if row.status != NEED_FULFILLED:
        row.fulfilled_at = None
    elif row.fulfilled_at is None:
        at = change.created_at
        row.fulfilled_at = at if at.tzinfo is not None else at.replace(tzinfo=UTC)


class FeedSync:
    """Keeps the read models current: one polling loop per feed, started in the app's lifespan."""

    def __init__(
        self, db: Database, feeds: Mapping[str, FeedClient], cache: ReadModelCache, settings: MatchingSettings,
        *, clock: Callable[[], float] = time.time,
    ) -> None:
        self._db = db
        self._feeds = feeds
        self._cache = cache
        self._interval = settings.sync_interval_seconds
        self._batch = settings.sync_batch_size
        self._max_backoff = settings.sync_max_backoff_seconds
        self._clock = clock
        self.errors: dict[str, int] = dict.fromkeys(feeds, 0)

    async def sync_once(self, feed: str) -> int:
        """Fetch one page after the stored cursor and apply it. Returns the number of changes the page held."""
        async with self._db.session() as session:
            after = await repository.feed_cursor(session, feed)
        page = await self._feeds[feed].changes(after=after, limit=self._batch)
        if page.items:
            async with self._db.transaction() as session:
                await apply_page(session, feed, page)
            FEED_CURSOR.labels(feed).set(page.items[-1].seq)
        full = len(page.items) >= self._batch
        newest = page.items[-1].created_at if page.items else None
        FEED_LAG.labels(feed).set(_age(newest, self._clock()) if full and newest else 0.0)
        FEED_LAST_SUCCESS.labels(feed).set(self._clock())
        return len(page.items)

    async def catch_up(self) -> int:
        """Every feed until nothing is left, then the cache: what a test or a script calls instead of waiting."""
        applied = 0
        for feed in self._feeds:
            while True:
                count = await self.sync_once(feed)
                applied += count
                if count < self._batch:
                    break
        await self._cache.refresh()
        return applied

    async def run(self) -> None:
        await asyncio.gather(*(self._loop(feed) for feed in self._feeds))

    async def _loop(self, feed: str) -> None:
        while True:
            pause = self._interval
            try:
                count = await self.sync_once(feed)
                if count:  # an idle poll leaves the cache alone: refreshing it 8 times a second took a CPU
                    await self._cache.refresh()
                if self.errors[feed]:
                    log.info("feed %s: reading again after %d failed polls", feed, self.errors[feed])
                self.errors[feed] = 0
                if count >= self._batch:
                    pause = 0.0  # more are waiting
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.errors[feed] += 1
                pause = min(self._interval * 2 ** min(self.errors[feed], 10), self._max_backoff)
                # Only the error's type and message: never a token or secret.
                log.warning("feed %s: poll failed (%d in a row), retrying in %.1f s: %s: %s",
                            feed, self.errors[feed], pause, type(exc).__name__, exc)
            FEED_ERRORS.labels(feed).set(self.errors[feed])
            await asyncio.sleep(pause)


def _age(moment: datetime, now: float) -> float:
    created = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return max(0.0, now - created.timestamp())
