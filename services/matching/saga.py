"""The approval saga (DESIGN.md, "Approving a match is a saga"), the cancel saga, and pushing deliveries.

approve:  proposed → approving/reserving ─reserve on offers→ approving/committing ─commit on needs→ approved
          a refusal (409, or any other 4xx) by offers → approving/unreserving ─release the reservation→ failed
          a refusal by needs → approving/compensating ─release the commitment and the reservation→ failed
          (failed carries the upstream's reason; a release of what was never taken leaves a tombstone upstream)
cancel:   approved → cancelling/releasing ─release both→ cancelled

Each state is committed before the step it names is tried, so a crash anywhere leaves a step that can be
taken again: every call is idempotent by match id (a release leaves a tombstone upstream, so a late
reserve or commit can never take the quantity after all). A step is retried within the request on
timeouts, 5xx and connection errors (stamina: exponential backoff with jitter, bounded attempts and time);
never on a 4xx. What is still unfinished then is "parked": its lease is set to a later time and the worker
(worker.py) resumes it once the lease has run out.

Whoever runs a saga holds its lease (`saga_owner`, `saga_lease_until`), renewed at every step; every step
commits only while its runner still owns the saga, so a request and a worker (or two workers) never both
move one saga on.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import TypeVar

import stamina
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.db import Database, utcnow
from services.common.identity import Principal
from services.common.messages import Text
from services.matching import lifecycle, notifications, repository
from services.matching.clients import Clients, TransientUpstreamError, UpstreamRefused
from services.matching.config import MatchingSettings
from services.matching.lifecycle import SAGA_WORKER, Actor
from services.matching.models import HOLDING_STATUSES, SAGA_STATUSES, Match, MatchStatus, SagaStep

log = logging.getLogger("duijie.matching.saga")
T = TypeVar("T")

RESERVE_REFUSED = Text("供给方拒绝预留：{detail}", "The offer could not be reserved: {detail}")
COMMIT_REFUSED = Text("需求方拒绝承诺：{detail}", "The need could not take the commitment: {detail}")
MAX_PARK_SECONDS = 300.0


class Saga:
    def __init__(self, db: Database, clients: Clients, settings: MatchingSettings) -> None:
        self._db = db
        self._clients = clients
        self._settings = settings

    # --- entry points -----------------------------------------------------------------------------

    async def approve(self, *, principal: Principal, match_id: uuid.UUID) -> Match:
        """Store `approving` (committed), then run the saga; returns the match as it stands when the request ends."""
        owner = _new_owner()
        async with self._db.transaction() as session:
            await lifecycle.begin_approval(session, principal=principal, match_id=match_id, owner=owner,
                                           lease_until=self._lease())
        return await self.drive(match_id, owner=owner, actor=Actor.of(principal))

    async def cancel(self, *, principal: Principal, match_id: uuid.UUID, reason: str) -> Match:
        owner = _new_owner()
        async with self._db.transaction() as session:
            match = await lifecycle.begin_cancel(session, principal=principal, match_id=match_id, reason=reason,
                                                 owner=owner, lease_until=self._lease())
        if match.status != MatchStatus.CANCELLING:
            return match
        return await self.drive(match_id, owner=owner, actor=Actor.of(principal))

    async def resume(self, match_id: uuid.UUID) -> Match | None:
        """The worker's way in: take over a saga whose lease ran out and drive it on. None if someone holds it."""
        owner = _new_owner()
        now = utcnow()
        async with self._db.transaction() as session:
            if not await repository.claim_saga(session, match_id, owner=owner, now=now, lease_until=self._lease()):
                return None
        return await self.drive(match_id, owner=owner, actor=SAGA_WORKER)

    # --- the steps ----------------------------------------------------------------------------------

    async def drive(self, match_id: uuid.UUID, *, owner: str, actor: Actor) -> Match:
        """Take steps while this owner holds the saga, until it ends or a step must wait for the worker."""
        match = await self._snapshot(match_id)
        while True:
            if match.saga_owner != owner or match.status not in SAGA_STATUSES or match.saga_step is None:
                return match
            step = SagaStep(match.saga_step)
            try:
                await self._take(step, match)
            except UpstreamRefused as refused:
                if step in (SagaStep.RESERVING, SagaStep.COMMITTING):
                    text = RESERVE_REFUSED if step is SagaStep.RESERVING else COMMIT_REFUSED
                    reason = (text.zh.format(detail=refused.detail_zh), text.en.format(detail=refused.detail_en))
                    match = await self._advance(match_id, owner=owner, actor=actor, refused=reason)
                    continue
                # A release refused other than by a 404 (handled in _release) is not ours to judge: park it.
                return await self._park(match_id, owner=owner, error=f"{step}: refused {refused}")
            except TransientUpstreamError as exc:
                log.warning("saga of match %s: step %s left to the worker: %s", match_id, step, exc)
                return await self._park(match_id, owner=owner, error=f"{step}: {exc}")
            match = await self._advance(match_id, owner=owner, actor=actor)

    async def _take(self, step: SagaStep, match: Match) -> None:
        if step is SagaStep.RESERVING:
            await self._retrying(lambda: self._clients.reservations.hold(match.offer_id, match.id, match.quantity))
        elif step is SagaStep.COMMITTING:
            await self._retrying(lambda: self._clients.commitments.hold(match.need_id, match.id, match.quantity))
        elif step is SagaStep.UNRESERVING:  # needs was never asked
            await self._release(lambda: self._clients.reservations.release(match.offer_id, match.id))
        else:  # compensating or releasing: give back whatever was taken, in the reverse order
            await self._release(lambda: self._clients.commitments.release(match.need_id, match.id))
            await self._release(lambda: self._clients.reservations.release(match.offer_id, match.id))

    async def _release(self, call: Callable[[], Awaitable[object]]) -> None:
        try:
            await self._retrying(call)
        except UpstreamRefused as refused:
            if refused.status != 404:  # the need or offer is gone: nothing is held there
                raise

    async def _retrying(self, call: Callable[[], Awaitable[T]]) -> T:
        """Only transient failures are retried, and only calls idempotent by match id reach here."""
        s = self._settings
        async for attempt in stamina.retry_context(
            on=TransientUpstreamError, attempts=s.saga_retry_attempts, timeout=s.saga_retry_timeout_seconds,
            wait_initial=s.saga_retry_wait_initial, wait_max=s.saga_retry_wait_max, wait_jitter=s.saga_retry_wait_jitter,
        ):
            with attempt:
                return await call()
        raise AssertionError("stamina ends by returning or raising")  # pragma: no cover

    async def _advance(
        self, match_id: uuid.UUID, *, owner: str, actor: Actor, refused: tuple[str, str] | None = None
    ) -> Match:
        """The step just taken is done (or refused): store the next one, or the end, if we still own the saga.

        Returns the match as stored (when someone else took the saga over, as they left it)."""
        async with self._db.transaction() as session:
            match = await repository.get_match_for_update(session, match_id)
            if match is None:
                raise LookupError(f"match {match_id} is gone")
            if match.saga_owner != owner or match.status not in SAGA_STATUSES:
                return match  # someone else took over; they will take this (idempotent) step again
            step = SagaStep(match.saga_step or SagaStep.COMPENSATING)
            match.saga_lease_until, match.saga_error = self._lease(), None
            if refused is not None:
                match.status_reason, match.status_reason_en = refused
                undo = SagaStep.UNRESERVING if step is SagaStep.RESERVING else SagaStep.COMPENSATING
                self._next_step(session, match, undo, actor, reason=refused)
            elif step is SagaStep.RESERVING:
                self._next_step(session, match, SagaStep.COMMITTING, actor)
            elif step is SagaStep.COMMITTING:
                _end(match)
                lifecycle.change_status(session, match, MatchStatus.APPROVED, actor=actor, action="approved")
                await notifications.notify(session, match, "match_approved")
            elif step in (SagaStep.COMPENSATING, SagaStep.UNRESERVING):
                _end(match)
                reason = (match.status_reason or "", match.status_reason_en or "")
                lifecycle.change_status(session, match, MatchStatus.FAILED, actor=actor, action="failed", reason=reason)
                await notifications.notify(session, match, "match_failed", reason=reason[0], reason_en=reason[1])
            else:  # releasing
                _end(match)
                reason = (match.status_reason or "", match.status_reason_en or "")
                lifecycle.change_status(session, match, MatchStatus.CANCELLED, actor=actor, action="cancelled", reason=reason)
                await notifications.notify(session, match, "match_cancelled", reason=reason[0], reason_en=reason[1])
        return match

    @staticmethod
    def _next_step(session: AsyncSession, match: Match, step: SagaStep, actor: Actor, reason: tuple[str, str] | None = None) -> None:
        before = match.saga_step
        match.saga_step = step
        match.version += 1
        match.updated_at = utcnow()
        lifecycle.record_event(session, match, actor=actor, action=f"saga_{step}", from_status=match.status,
                               changes={"saga_step": [before, step]}, reason=reason, feed=False)

    async def _park(self, match_id: uuid.UUID, *, owner: str, error: str) -> Match:
        """Give the saga back, for the worker to resume after a backoff that grows with the failures."""
        async with self._db.transaction() as session:
            match = await repository.get_match_for_update(session, match_id)
            if match is None:
                raise LookupError(f"match {match_id} is gone")
            if match.saga_owner != owner:
                return match
            match.saga_attempts += 1
            pause = min(self._settings.worker_interval_seconds * 2 ** min(match.saga_attempts - 1, 10), MAX_PARK_SECONDS)
            match.saga_owner, match.saga_lease_until = None, utcnow() + timedelta(seconds=pause)
            match.saga_error = error[:2000]
        return match

    # --- deliveries ---------------------------------------------------------------------------------

    async def push_deliveries(self, match_id: uuid.UUID) -> bool:
        """Tell offers and needs the cumulative delivered total; True when both have it (idempotent)."""
        match = await self._snapshot(match_id)
        total = match.delivered
        if match.status not in HOLDING_STATUSES or match.delivery_synced >= total:
            return True
        try:
            await self._retrying(lambda: self._clients.reservations.delivered(match.offer_id, match.id, total))
            await self._retrying(lambda: self._clients.commitments.delivered(match.need_id, match.id, total))
        except (TransientUpstreamError, UpstreamRefused) as exc:
            log.warning("deliveries of match %s not acknowledged yet: %s", match_id, exc)
            async with self._db.transaction() as session:
                row = await repository.get_match_for_update(session, match_id)
                if row is not None:
                    row.saga_error = f"deliveries: {exc}"[:2000]
            return False
        async with self._db.transaction() as session:
            row = await repository.get_match_for_update(session, match_id)
            if row is not None and row.delivery_synced < total:
                row.delivery_synced, row.saga_error = total, None
        return True

    # --- helpers ------------------------------------------------------------------------------------

    def _lease(self) -> datetime:
        return utcnow() + timedelta(seconds=self._settings.saga_lease_seconds)

    async def _snapshot(self, match_id: uuid.UUID) -> Match:
        async with self._db.session() as session:
            match = await session.get(Match, match_id, populate_existing=True)
        if match is None:
            raise LookupError(f"match {match_id} is gone")
        return match


def _end(match: Match) -> None:
    match.saga_step = match.saga_owner = match.saga_lease_until = None
    match.saga_error = None


def _new_owner() -> str:
    return uuid.uuid4().hex
