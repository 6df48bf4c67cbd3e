"""The matching worker: in every process, from start-up and then every `worker_interval_seconds`.

- resumes every unfinished saga whose lease has run out (approving → on to approved, or compensated to
  failed; cancelling → both holds released, then cancelled);
- pushes delivered totals that needs or offers have not acknowledged yet;
- sends due webhook deliveries.
Several processes may run it at once: sagas are claimed with a conditional UPDATE of their lease, webhook
deliveries with a lease of their own, and pushes of cumulative totals are idempotent.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass

from prometheus_client import Gauge

from services.common.db import Database, utcnow
from services.matching import repository
from services.matching.config import MatchingSettings
from services.matching.saga import Saga
from services.matching.webhooks import WebhookSender

log = logging.getLogger("duijie.matching.worker")

SAGAS_WAITING = Gauge("duijie_matching_sagas_due", "Unfinished sagas whose lease had run out at the last worker pass")
CONCURRENCY = 8


@dataclass
class Pass:
    sagas_resumed: int = 0
    deliveries_pushed: int = 0
    webhooks_delivered: int = 0


class Worker:
    def __init__(self, db: Database, saga: Saga, webhooks: WebhookSender, settings: MatchingSettings) -> None:
        self._db = db
        self._saga = saga
        self._webhooks = webhooks
        self._interval = settings.worker_interval_seconds
        self._batch = settings.worker_batch_size

    async def run_once(self) -> Pass:
        done = Pass()
        async with self._db.session() as session:
            due = await repository.sagas_due(session, now=utcnow(), limit=self._batch)
            unsynced = await repository.deliveries_unsynced(session, limit=self._batch)
        SAGAS_WAITING.set(len(due))
        gate = asyncio.Semaphore(CONCURRENCY)

        async def resume(match_id: uuid.UUID) -> bool:
            async with gate:
                return await self._saga.resume(match_id) is not None

        async def push(match_id: uuid.UUID) -> bool:
            async with gate:
                return await self._saga.push_deliveries(match_id)

        done.sagas_resumed = sum(await asyncio.gather(*(resume(match_id) for match_id in due)))
        done.deliveries_pushed = sum(await asyncio.gather(*(push(match_id) for match_id in unsynced)))
        done.webhooks_delivered = await self._webhooks.send_due()
        return done

    async def run(self) -> None:
        while True:
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("worker pass failed; trying again in %.1f s", self._interval)
            await asyncio.sleep(self._interval)
