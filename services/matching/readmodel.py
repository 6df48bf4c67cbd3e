"""The read models in memory, as the scoring engine's views and tables.

The database holds the read models (sync.py writes them); this cache follows the database incrementally
(rows whose `seq` is above what it has loaded), so every process of the service sees the changes applied
by any of them. The NumPy tables are rebuilt only when something changed, once for all waiting requests,
off the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta

import numpy as np

from services.common.db import Database
from services.matching import repository
from services.matching.models import NeedRM, OfferRM, OrganisationRM, PairingRM
from services.matching.scoring import BoolArray, Context, NeedTable, NeedView, OfferTable, OfferView

log = logging.getLogger("duijie.matching.readmodel")

PAIRING_ACTIVE = "active"
_VILLAGE_DIGITS = 12
# Timestamps of different processes may disagree a little: reread the received values of this window again.
_CLOCK_SKEW = timedelta(seconds=5)


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
        self._received_since: datetime | None = None
        # Tables and the generation of the views they were built from; a change bumps the generation.
        self._needs_gen = self._offers_gen = 0
        self._need_table: NeedTable | None = None
        self._offer_table: OfferTable | None = None
        self._need_table_gen = self._offer_table_gen = -1
        self._refresh_lock = asyncio.Lock()
        self._build_lock = asyncio.Lock()
        self._refreshed_at = -1e9

    # --- following the database ----------------------------------------------------------------

    async def refresh(self, *, force: bool = True) -> None:
        """Load what changed in the database since the last refresh. Unforced, at most every min interval."""
        if not force and time.monotonic() - self._refreshed_at < self._min_interval:
            return
        async with self._refresh_lock:
            if not force and time.monotonic() - self._refreshed_at < self._min_interval:
                return
            started = time.monotonic()
            async with self._db.session() as session:
                organisations = await repository.rows_changed_after(session, OrganisationRM, self._seen["organisations"])
                offers = await repository.rows_changed_after(session, OfferRM, self._seen["offers"])
                needs = await repository.rows_changed_after(session, NeedRM, self._seen["needs"])
                pairings = await repository.rows_changed_after(session, PairingRM, self._seen["pairings"])
                received = await repository.received_changed_since(session, self._received_since)
            self._apply_organisations(organisations)
            self._apply_offers(offers)
            self._apply_needs(needs)
            self._apply_pairings(pairings)
            if received:
                self.received.update({row.village_code: float(row.value_cny) for row in received})
                self._received_since = max(row.updated_at for row in received) - _CLOCK_SKEW
            self._refreshed_at = started

    def _apply_organisations(self, rows: Sequence[OrganisationRM]) -> None:
        for row in rows:
            key = str(row.id)
            before = self.organisations.get(key)
            self.organisations[key] = OrganisationInfo(row.name, row.grade, tuple(row.region_codes or ()))
            if before is None or before.grade != row.grade:
                for offer_id in self._offers_of.get(key, ()):
                    self.offers[offer_id] = replace(self.offers[offer_id], organisation_grade=row.grade)
                self._offers_gen += 1
            self._seen["organisations"] = max(self._seen["organisations"], row.seq)

    def _apply_offers(self, rows: Sequence[OfferRM]) -> None:
        for row in rows:
            organisation = self.organisations.get(str(row.organisation_id))
            view = offer_view(row, organisation.grade if organisation else None)
            self.offers[view.id] = view
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
        return Context(today=today or date.today(), pairings=self.pairings, received_value_by_village=dict(self.received))

    async def offer_table(self) -> OfferTable:
        """The offers as a table, rebuilt when some offer changed since it was built."""
        async with self._build_lock:
            built = self._offer_table
            if built is None or self._offer_table_gen != self._offers_gen:
                generation, snapshot = self._offers_gen, tuple(self.offers.values())
                built = await asyncio.to_thread(OfferTable.from_views, snapshot)
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
