"""The read models in memory, as the scoring engine's views and tables.

The database holds the read models (sync.py writes them); this cache follows the database incrementally
(rows whose `seq` is above what it has loaded), so every process of the service sees the changes applied
by any of them. The NumPy tables follow the views: the offer table is updated in place of the offers that
changed (`OfferTable.with_offers`, milliseconds) and rebuilt whole only at first or after many changes, once
for all waiting requests, off the event loop; after a refresh that changed offers the update starts at once,
so that requests seldom wait for it.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np

from services.common.db import Database
from services.matching import repository
from services.matching.models import NeedRM, OfferRM, OrganisationRM, PairingRM, RuleSetRow
from services.matching.rules import DEFAULT_RULESET, RuleSet
from services.matching.scoring import BoolArray, Context, NeedTable, NeedView, OfferTable, OfferView

log = logging.getLogger("duijie.matching.readmodel")

PAIRING_ACTIVE = "active"
_VILLAGE_DIGITS = 12
# Timestamps of different processes may disagree a little: reread the received values of this window again.
_CLOCK_SKEW = timedelta(seconds=5)
# Up to this many changed offers (or a quarter of the table) the offer table is updated, not rebuilt.
_INCREMENTAL_OFFERS = 5_000


def need_view(row: NeedRM) -> NeedView:
    return NeedView(
        id=str(row.id), category=row.category, kind=row.kind, unit=row.unit,
        remaining=float(row.quantity - row.committed), quantity=float(row.quantity), urgency=row.urgency,
        needed_by=row.needed_by, village_code=row.village_code, lat=row.lat, lon=row.lon,
        beneficiaries=row.beneficiaries, beneficiary_groups=tuple(row.beneficiary_groups or ()),
        skills=tuple(row.skills or ()), status=row.status,
    )


def offer_view(row: OfferRM, grade: int | None) -> OfferView:
    return OfferView(
        id=str(row.id), organisation_id=str(row.organisation_id), categories=tuple(row.categories or ()),
        kind=row.kind, unit=row.unit, available=float(row.available), status=row.status,
        region_codes=tuple(row.region_codes or ()), radius_km=row.radius_km, lat=row.lat, lon=row.lon,
        available_from=row.available_from, available_until=row.available_until,
        beneficiary_groups=tuple(row.beneficiary_groups or ()), skills=tuple(row.skills or ()),
        organisation_grade=grade,
    )


def rows_in_region(table: NeedTable, region: str) -> np.ndarray:
    """Rows of `table` whose village lies inside the region prefix."""
    inside: BoolArray = (table.village >= 0) & (table.village // 10 ** (_VILLAGE_DIGITS - len(region)) == int(region))
    return np.flatnonzero(inside)


def _engine_ruleset(row: RuleSetRow | None, known: RuleSet | None) -> RuleSet:
    """The engine's rule set of a stored version (version 1, the default rules, when none is stored yet)."""
    if row is None:
        return DEFAULT_RULESET
    if known is not None and known.version == row.version:
        return known  # versions are never changed once written
    return RuleSet.model_validate({"version": row.version, "weights": row.weights, "parameters": row.parameters})


@dataclass(frozen=True, slots=True)
class OrganisationInfo:
    name: str
    grade: int | None
    region_codes: tuple[str, ...]


class ReadModelCache:
    def __init__(self, db: Database, *, min_refresh_interval: float = 0.5) -> None:
        self._db = db
        self._min_interval = min_refresh_interval
        self.reset()

    def reset(self) -> None:
        """Forget everything: the next refresh reloads from the database (after a rebuild, and in tests)."""
        self.needs: dict[str, NeedView] = {}
        self.offers: dict[str, OfferView] = {}
        self.organisations: dict[str, OrganisationInfo] = {}
        self._offers_of: dict[str, set[str]] = {}
        self._pairings: dict[str, tuple[str, str, str]] = {}
        self.pairings: frozenset[tuple[str, str]] = frozenset()
        self.received: dict[str, float] = {}
        self._seen = {"needs": 0, "offers": 0, "organisations": 0, "pairings": 0}
        # The current rule set as of the last refresh; None until loaded, and after a PUT (`forget_ruleset`).
        self.ruleset: RuleSet | None = None
        self._ruleset_epoch = getattr(self, "_ruleset_epoch", 0) + 1
        self._received_since: datetime | None = None
        # Tables and the generation of the views they were built from; a change bumps the generation.
        self._needs_gen = self._offers_gen = 0
        self._need_table: NeedTable | None = None
        self._offer_table: OfferTable | None = None
        self._need_table_gen = self._offer_table_gen = -1
        self._dirty_offers: dict[str, None] = {}  # offers changed since the table was built, in order of arrival
        self._refresh_lock = asyncio.Lock()
        self._build_lock = asyncio.Lock()
        self._refreshed_at = -1e9
        # A refresh under way when the cache is reset must not fill the new state with the old rows.
        self._epoch = getattr(self, "_epoch", 0) + 1
        self._tasks: set[asyncio.Task[None]] = getattr(self, "_tasks", set())

    # --- following the database ----------------------------------------------------------------

    async def refresh(self, *, force: bool = True) -> None:
        """Load what changed in the database since the last refresh. Unforced, at most every min interval."""
        if not force and time.monotonic() - self._refreshed_at < self._min_interval:
            return
        async with self._refresh_lock:
            if not force and time.monotonic() - self._refreshed_at < self._min_interval:
                return
            started, epoch, ruleset_epoch = time.monotonic(), self._epoch, self._ruleset_epoch
            async with self._db.read_session() as session:
                organisations = await repository.rows_changed_after(session, OrganisationRM, self._seen["organisations"])
                offers = await repository.rows_changed_after(session, OfferRM, self._seen["offers"])
                needs = await repository.rows_changed_after(session, NeedRM, self._seen["needs"])
                pairings = await repository.rows_changed_after(session, PairingRM, self._seen["pairings"])
                received = await repository.received_changed_since(session, self._received_since)
                ruleset = await repository.current_ruleset(session)
            if epoch != self._epoch:
                return
            if ruleset_epoch == self._ruleset_epoch:  # no PUT since the read began
                self.ruleset = _engine_ruleset(ruleset, self.ruleset)
            offers_before = self._offers_gen
            self._apply_organisations(organisations)
            self._apply_offers(offers)
            self._apply_needs(needs)
            self._apply_pairings(pairings)
            if received:
                # A new dict, never one changed in place: contexts handed out keep theirs without a copy each.
                self.received = {**self.received, **{row.village_code: float(row.value_cny) for row in received}}
                self._received_since = max(row.updated_at for row in received) - _CLOCK_SKEW
            self._refreshed_at = started
        if self._offers_gen != offers_before and self._offer_table is not None:
            self._in_background(self._update_offer_table())

    def forget_ruleset(self) -> None:
        """A new rule set version was written: until the next refresh, candidates read the current one."""
        self.ruleset = None
        self._ruleset_epoch += 1

    def _in_background(self, work: Coroutine[Any, Any, None]) -> None:
        if sum(not task.done() for task in self._tasks) >= 4:  # enough under way already
            work.close()
            return
        task = asyncio.get_running_loop().create_task(self._logged(work))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _logged(work: Coroutine[Any, Any, None]) -> None:
        try:
            await work
        except Exception as exc:  # the next request builds the table again
            log.warning("read models: updating the offer table failed: %s: %s", type(exc).__name__, exc)

    async def _update_offer_table(self) -> None:
        await self.offer_table()

    def _apply_organisations(self, rows: Sequence[OrganisationRM]) -> None:
        for row in rows:
            key = str(row.id)
            before = self.organisations.get(key)
            self.organisations[key] = OrganisationInfo(row.name, row.grade, tuple(row.region_codes or ()))
            if before is None or before.grade != row.grade:
                for offer_id in self._offers_of.get(key, ()):
                    self.offers[offer_id] = replace(self.offers[offer_id], organisation_grade=row.grade)
                    self._dirty_offers[offer_id] = None
                self._offers_gen += 1
            self._seen["organisations"] = max(self._seen["organisations"], row.seq)

    def _apply_offers(self, rows: Sequence[OfferRM]) -> None:
        for row in rows:
            organisation = self.organisations.get(str(row.organisation_id))
            view = offer_view(row, organisation.grade if organisation else None)
            self.offers[view.id] = view
            self._dirty_offers[view.id] = None
            self._offers_of.setdefault(view.organisation_id, set()).add(view.id)
            self._offers_gen += 1
            self._seen["offers"] = max(self._seen["offers"], row.seq)

    def _apply_needs(self, rows: Sequence[NeedRM]) -> None:
        for row in rows:
            view = need_view(row)
            self.needs[view.id] = view
            self._needs_gen += 1
            self._seen["needs"] = max(self._seen["needs"], row.seq)

    def _apply_pairings(self, rows: Sequence[PairingRM]) -> None:
        changed = False
        for row in rows:
            self._pairings[str(row.id)] = (str(row.organisation_id), row.village_code, row.status)
            self._seen["pairings"] = max(self._seen["pairings"], row.seq)
            changed = True
        if changed:
            self.pairings = frozenset((org, village) for org, village, status in self._pairings.values() if status == PAIRING_ACTIVE)

    # --- what scoring reads --------------------------------------------------------------------

    def need(self, need_id: uuid.UUID) -> NeedView | None:
        return self.needs.get(str(need_id))

    def offer(self, offer_id: uuid.UUID) -> OfferView | None:
        return self.offers.get(str(offer_id))

    def context(self, today: date | None = None) -> Context:
        return Context(today=today or date.today(), pairings=self.pairings, received_value_by_village=self.received)

    async def offer_table(self) -> OfferTable:
        """The offers as a table: updated with the offers that changed since, or rebuilt after many changes.

        Either way the rows are `self.offers` in order (new offers last), as a full rebuild would make them.
        """
        async with self._build_lock:
            built = self._offer_table
            if built is None or self._offer_table_gen != self._offers_gen:
                generation, dirty, epoch = self._offers_gen, self._dirty_offers, self._epoch
                self._dirty_offers = {}
                try:
                    if built is not None and len(dirty) <= max(_INCREMENTAL_OFFERS, len(built) // 4):
                        changed = tuple(self.offers[key] for key in dirty)
                        built = await asyncio.to_thread(built.with_offers, changed)
                    else:
                        built = await asyncio.to_thread(OfferTable.from_views, tuple(self.offers.values()))
                except BaseException:
                    self._offer_table = None  # what was dirty is forgotten: the next call rebuilds
                    raise
                if epoch == self._epoch:
                    self._offer_table, self._offer_table_gen = built, generation
            return built

    async def need_table(self) -> NeedTable:
        """The needs as a table, rebuilt when some need changed since it was built."""
        async with self._build_lock:
            built = self._need_table
            if built is None or self._need_table_gen != self._needs_gen:
                generation, snapshot = self._needs_gen, tuple(self.needs.values())
                built = await asyncio.to_thread(NeedTable.from_views, snapshot)
                self._need_table, self._need_table_gen = built, generation
            return built
