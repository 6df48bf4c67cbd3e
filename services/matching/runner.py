"""Executing match runs off the request path: load the region, score, allocate exactly, explain, write proposals.

A run is queued by the request (service.start_run) and executed here, in the same process, as an asyncio
task started after the request's commit. The CPU-bound steps (scoring, min-cost flow, explanations) run in
a worker thread, so the service keeps answering; each step writes the run's stage, progress and heartbeat
in a short transaction of its own, which `GET /api/match-runs/{id}` shows.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal
from typing import Any

import numpy as np

from services.common.db import Database, utcnow
from services.matching import repository, service
from services.matching.allocation import Allocation, EquityReport, Unallocated, allocate, equity_report, unallocated_needs
from services.matching.models import Match, MatchRun, MatchStatus, RunStatus, Unmatched
from services.matching.readmodel import ReadModelCache
from services.matching.rules import RuleSet
from services.matching.schemas import quantity_of
from services.matching.scoring import (
    Candidate,
    Context,
    NeedTable,
    NeedView,
    OfferTable,
    OfferView,
    ScoredPairs,
    explain_pairs,
    score_pairs,
)

log = logging.getLogger("duijie.matching.runner")

NEED_OPEN = "open"


@dataclass(frozen=True, slots=True)
class Inputs:
    needs: NeedTable
    offers: OfferTable
    context: Context
    ruleset: RuleSet
    region_code: str
    offer_views: Mapping[str, OfferView]


@dataclass(frozen=True, slots=True)
class Outcome:
    scored: ScoredPairs
    allocation: Allocation
    explained: list[Candidate]
    unallocated: list[Unallocated]
    equity: EquityReport


class MatchRunner:
    """Starts and tracks the runs of this process. `gate`, when given, holds every run until it is set (tests)."""

    def __init__(self, db: Database, cache: ReadModelCache, *, gate: asyncio.Event | None = None) -> None:
        self._db = db
        self._cache = cache
        self.gate = gate
        self._tasks: dict[uuid.UUID, asyncio.Task[None]] = {}

    async def start(self, run_id: uuid.UUID) -> None:
        """Begin executing a committed run; returns at once (async only to be called on the event loop)."""
        task = asyncio.create_task(self._execute(run_id), name=f"match-run-{run_id}")
        self._tasks[run_id] = task
        task.add_done_callback(lambda _: self._tasks.pop(run_id, None))

    async def wait_idle(self) -> None:
        """Until every run this process started has ended (tests, and a graceful shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks.values()), return_exceptions=True)

    async def aclose(self) -> None:
        tasks = list(self._tasks.items())
        for _, task in tasks:
            task.cancel()
        await asyncio.gather(*(task for _, task in tasks), return_exceptions=True)

    async def _execute(self, run_id: uuid.UUID) -> None:
        try:
            if self.gate is not None:
                await self.gate.wait()
            await execute_run(self._db, self._cache, run_id)
        except asyncio.CancelledError:
            await _fail(self._db, run_id, "interrupted: the service shut down")
            raise
        except Exception as exc:
            log.exception("match run %s failed", run_id)
            await _fail(self._db, run_id, f"{type(exc).__name__}: {exc}"[:2000])


async def _fail(db: Database, run_id: uuid.UUID, error: str) -> None:
    try:
        async with db.transaction() as session:
            run = await repository.get_run(session, run_id, refresh=True)
            if run is not None and run.status in (RunStatus.QUEUED, RunStatus.RUNNING):
                run.status, run.stage, run.error, run.finished_at = RunStatus.FAILED, "failed", error, utcnow()
    except Exception:
        log.exception("could not record the failure of match run %s", run_id)


async def _progress(db: Database, run_id: uuid.UUID, stage: str, progress: float, **values: Any) -> MatchRun:
    async with db.transaction() as session:
        run = await repository.get_run(session, run_id, refresh=True)
        if run is None:
            raise LookupError(f"match run {run_id} is gone")
        run.stage, run.progress, run.heartbeat_at = stage, progress, utcnow()
        for name, value in values.items():
            setattr(run, name, value)
        return run


async def _begin(db: Database, run_id: uuid.UUID) -> MatchRun | None:
    """queued → running; None when the run is no longer queued (failed as stale, or run by someone else)."""
    async with db.transaction() as session:
        run = await repository.get_run(session, run_id, refresh=True)
        if run is None or run.status != RunStatus.QUEUED:
            return None
        run.status, run.stage, run.progress = RunStatus.RUNNING, "loading", 0.05
        run.started_at = run.heartbeat_at = utcnow()
        return run


async def execute_run(db: Database, cache: ReadModelCache, run_id: uuid.UUID, *, today: date | None = None) -> None:
    timings: dict[str, float] = {}
    started = time.perf_counter()
    run = await _begin(db, run_id)
    if run is None:
        return
    inputs = await _load(db, cache, run, today or date.today())
    timings["load"] = time.perf_counter() - started

    await _progress(db, run_id, "scoring", 0.2)
    t0 = time.perf_counter()
    scored = await asyncio.to_thread(score_pairs, inputs.needs, inputs.offers, inputs.context, inputs.ruleset)
    timings["score"] = time.perf_counter() - t0

    await _progress(db, run_id, "allocating", 0.4, counts={"needs": len(inputs.needs), "candidate_pairs": len(scored)})
    t0 = time.perf_counter()
    allocation = await asyncio.to_thread(allocate, scored, inputs.needs, inputs.offers)
    timings["allocate"] = time.perf_counter() - t0

    await _progress(db, run_id, "explaining", 0.7)
    t0 = time.perf_counter()
    outcome = await asyncio.to_thread(_explain, inputs, scored, allocation)
    timings["explain"] = time.perf_counter() - t0

    await _progress(db, run_id, "writing", 0.85)
    t0 = time.perf_counter()
    await _write(db, run_id, inputs, outcome, timings, started)


async def _load(db: Database, cache: ReadModelCache, run: MatchRun, today: date) -> Inputs:
    """The region's open needs and every offer, less what matches being approved hold already."""
    await cache.refresh()
    async with db.session() as session:
        ruleset_row = await service.get_ruleset(session, version=run.ruleset_version or 1)
        held_by_need, held_by_offer = await repository.quantities_in_flight(session)
    region = run.region_code
    needs = [
        _less(view, held_by_need.get(uuid.UUID(view.id)))
        for view in cache.needs.values() if view.status == NEED_OPEN and view.village_code.startswith(region)
    ]
    offers = await cache.offer_table()
    offer_views = cache.offers
    if held_by_offer:
        adjusted = {
            view.id: replace(view, available=max(view.available - float(held_by_offer[uuid.UUID(view.id)]), 0.0))
            if uuid.UUID(view.id) in held_by_offer else view
            for view in offer_views.values()
        }
        offers = await asyncio.to_thread(OfferTable.from_views, tuple(adjusted.values()))
        offer_views = adjusted
    needs_table = await asyncio.to_thread(NeedTable.from_views, needs)
    return Inputs(needs_table, offers, cache.context(today), service.engine_ruleset(ruleset_row), region, dict(offer_views))


def _less(view: NeedView, held: Decimal | None) -> NeedView:
    return replace(view, remaining=max(view.remaining - float(held), 0.0)) if held else view


def _explain(inputs: Inputs, scored: ScoredPairs, allocation: Allocation) -> Outcome:
    explained = explain_pairs(
        inputs.needs, inputs.offers, allocation.need_idx, allocation.offer_idx, inputs.context, inputs.ruleset
    )
    unallocated = unallocated_needs(inputs.needs, inputs.offers, scored, allocation, inputs.context)
    return Outcome(scored, allocation, explained, unallocated, equity_report(inputs.needs, allocation))


async def _write(
    db: Database, run_id: uuid.UUID, inputs: Inputs, outcome: Outcome, timings: dict[str, float], started: float
) -> None:
    t0 = time.perf_counter()
    allocation = outcome.allocation
    needs, offers = inputs.needs, inputs.offers
    async with db.transaction() as session:
        run = await repository.get_run(session, run_id, refresh=True)
        if run is None or run.status != RunStatus.RUNNING:
            return
        superseded = await repository.supersede_proposals(session, region_code=inputs.region_code, except_run=run_id)
        now = utcnow()
        matches = []
        for p, (i, j) in enumerate(zip(allocation.need_idx.tolist(), allocation.offer_idx.tolist(), strict=True)):
            need, offer = needs.views[i], offers.views[j]
            explained = outcome.explained[p]
            matches.append(Match(
                id=uuid.uuid4(), run_id=run_id, need_id=uuid.UUID(need.id), offer_id=uuid.UUID(offer.id),
                organisation_id=uuid.UUID(offer.organisation_id), village_code=need.village_code,
                region_code=inputs.region_code, quantity=quantity_of(float(allocation.quantity[p])), unit=need.unit,
                score=float(explained.score),
                explanation=[
                    {"rule": e.rule, "weight": e.weight, "score": e.score, "reason_zh": e.reason_zh, "reason_en": e.reason_en}
                    for e in explained.explanation
                ],
                ruleset_version=inputs.ruleset.version, status=MatchStatus.PROPOSED, version=1,
                created_by=run.created_by, created_at=now, updated_at=now,
            ))
        repository.add_all(session, matches)
        repository.add_all(session, (
            Unmatched(
                id=uuid.uuid4(), run_id=run_id, need_id=uuid.UUID(item.need_id),
                village_code=needs.views[item.need_idx].village_code, code=item.code.value,
                rejection=item.rejection.code.value if item.rejection else None,
                reason_zh=item.text.zh, reason_en=item.text.en, created_at=now,
            )
            for item in outcome.unallocated
        ))
        await session.flush()
        timings["write"] = time.perf_counter() - t0
        timings["total"] = time.perf_counter() - started
        equity = outcome.equity
        run.status, run.stage, run.progress = RunStatus.FINISHED, "finished", 1.0
        run.proposals, run.objective = len(matches), float(allocation.objective)
        run.counts = {
            "needs": len(needs), "offers_considered": int(np.count_nonzero(offers.eligible)),
            "candidate_pairs": len(outcome.scored), "proposals": len(matches), "unmatched": len(outcome.unallocated),
            "needs_reached": int(np.unique(allocation.need_idx).size), "superseded": superseded,
            "components": sum(stat.components for stat in allocation.components),
        }
        run.timings = {name: round(seconds, 4) for name, seconds in {**timings, **_solver_timings(allocation)}.items()}
        run.equity = {
            "villages_with_open_needs": equity.villages_with_open_needs, "villages_reached": equity.villages_reached,
            "villages_reached_share": round(float(equity.share_reached), 4),
            "gini": round(float(equity.gini_value_per_beneficiary), 4),
        }
        run.finished_at, run.heartbeat_at = utcnow(), utcnow()


def _solver_timings(allocation: Allocation) -> dict[str, float]:
    return {f"allocate_{name}": float(seconds) for name, seconds in allocation.timings.items()}
