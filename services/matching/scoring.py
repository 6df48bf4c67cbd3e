"""Candidate generation and scoring: which offers may serve which needs, and how well (DESIGN.md, "Matching by scored rules").

Pure computation: no database, no HTTP. The matching service fills `NeedView`/`OfferView` from its read
models, builds a `NeedTable` and an `OfferTable` once (columns as NumPy arrays; an offer change then makes a
new table from the old with `OfferTable.with_offers`, equal to a rebuild at a small part of its cost; what
depends only on a table and the pairings, their keys, is derived once per table), and asks for

- `candidates_for_need` / `candidates_for_offer`: the top-k of one need or offer, each with its explanation;
- `score_pairs`: every candidate pair of a region, as arrays, for the allocation (allocation.py);
- `explain_rejection`: why a need has no candidate at all; `check_pair`: why one given pair is not allowed.

Quantities are floats here: the allocation needs numbers, and the contract's quantities have at most two
decimals (UNIT_DECIMALS), which a float carries exactly enough for the allocation to round back to 0.01
(allocation.py works in integer hundredths). The service keeps the exact decimals and converts.

How a region is scored without a Python loop over pairs:
1. blocking: a need belongs to the block (kind-unit, category); an offer to one block per category it names;
2. spatial pruning inside a block: offers with service regions through a sorted prefix index (one key per
   block, level and code, looked up with the village's 2/4/6/9/12-digit prefixes by `searchsorted`), offers
   with a radius through a k-d tree of the villages on the unit sphere (chord distance is a monotone function
   of the great-circle distance, so the ball query is exact);
3. the other hard filters (time windows, beneficiary groups, skills) as array expressions on the pairs;
4. the soft scores as arrays and their weighted mean. Explanations are built only for what is returned.
"""

from __future__ import annotations

import functools
import itertools
import math
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
from scipy.spatial import cKDTree

from services.common.messages import Locale, Text
from services.common.vocabulary import (
    REGION_LEVEL_LENGTHS,
    SKILLED_KINDS,
    UNITS_BY_KIND,
    BeneficiaryGroup,
    Category,
)
from services.matching.rules import DEFAULT_RULESET, RULES, Parameters, RuleSet

_T = TypeVar("_T")
IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

NEED_OPEN = "open"
OFFER_ACTIVE = "active"
EARTH_RADIUS_KM = 6371.0088

# --- the vocabulary as small integers ------------------------------------------------------------

_CATEGORY_INDEX: dict[str, int] = {category.value: i for i, category in enumerate(Category)}
_CATEGORY_SLOTS = 16  # block = kind_unit * 16 + category: room for the 11 categories
_KIND_UNIT_ID: dict[tuple[str, str], int] = {
    (kind.value, unit): i
    for i, (kind, unit) in enumerate((kind, unit) for kind, units in UNITS_BY_KIND.items() for unit in units)
}
_SKILLED = frozenset(kind.value for kind in SKILLED_KINDS)
_GROUP_BIT: dict[str, int] = {group.value: 1 << i for i, group in enumerate(BeneficiaryGroup)}
_GENERAL = BeneficiaryGroup.GENERAL.value

# Region levels by specificity: 1 province (2 digits) … 5 village (12 digits); 0 = no region shared.
_LEVEL_LENGTH: dict[int, int] = {spec: length for spec, length in enumerate(REGION_LEVEL_LENGTHS, start=1)}
_SPEC_OF_LENGTH: dict[int, int] = {length: spec for spec, length in _LEVEL_LENGTH.items()}
_VILLAGE_DIGITS = REGION_LEVEL_LENGTHS[-1]
_PREFIX_BITS = 40  # 10^12 < 2^40: a prefix of a 12-digit code fits below the block and level bits
_BLOCKS = len(_KIND_UNIT_ID) * _CATEGORY_SLOTS
_BRUTE_FORCE_PAIRS = 2_000_000  # below this many need×offer pairs in a block, one matrix product beats a tree


@functools.lru_cache(maxsize=65_536)
def normalise_skill(skill: str) -> str:
    """Skills match whatever their case, width or spacing: 'ＣＮＣ 数控' == 'cnc数控'."""
    return "".join(unicodedata.normalize("NFKC", skill).split()).casefold()


@functools.lru_cache(maxsize=262_144)
def _region_int(code: str) -> int:
    """The code as an int, or -1 when it is not a division code (2, 4, 6, 9 or 12 digits)."""
    if code.isascii() and code.isdigit() and len(code) in _SPEC_OF_LENGTH and not code.startswith("00"):
        return int(code)
    return -1


def _village_int(code: str) -> int:
    return _region_int(code) if len(code) == _VILLAGE_DIGITS else -1


def _unit_sphere(lat: FloatArray, lon: FloatArray) -> FloatArray:
    """Points on the unit sphere (NaN where unknown): Euclidean chords there order pairs like great circles."""
    cos_lat = np.cos(lat)
    return np.column_stack((cos_lat * np.cos(lon), cos_lat * np.sin(lon), np.sin(lat)))


def _chord(radius_km: FloatArray) -> FloatArray:
    """The chord on the unit sphere that spans a great-circle distance of radius_km."""
    return np.asarray(2.0 * np.sin(np.minimum(radius_km / EARTH_RADIUS_KM, math.pi) / 2.0), dtype=np.float64)


def haversine_km(lat1: FloatArray, lon1: FloatArray, lat2: FloatArray, lon2: FloatArray) -> FloatArray:
    """Great-circle distance between points given in radians; NaN where a point is unknown."""
    h = np.sin((lat2 - lat1) / 2.0) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2.0) ** 2
    return np.asarray(2.0 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0))), dtype=np.float64)


def _radians(values: Iterable[float | None], n: int) -> FloatArray:
    return np.radians(np.fromiter((math.nan if v is None else v for v in values), np.float64, n))


def _expand(starts: IntArray, counts: IntArray) -> tuple[IntArray, IntArray]:
    """For ranges [start, start + count): which range each element comes from, and the element itself."""
    owner = np.repeat(np.arange(counts.size, dtype=np.int64), counts)
    first = np.cumsum(counts) - counts
    position = np.arange(owner.size, dtype=np.int64) - first[owner] + starts[owner]
    return owner, position


def _in_sorted(values: IntArray, sorted_keys: IntArray) -> BoolArray:
    if sorted_keys.size == 0:
        return np.zeros(values.shape, dtype=np.bool_)
    at = np.minimum(np.searchsorted(sorted_keys, values), sorted_keys.size - 1)
    return np.asarray(sorted_keys[at] == values, dtype=np.bool_)


# --- inputs --------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class NeedView:
    """What matching reads of a need (its read model, filled from the needs feed).

    `remaining` is quantity - committed, a float with at most two decimals (see the module's docstring).
    Groups and skills are tuples so the view stays hashable.
    """

    id: str
    category: str
    kind: str
    unit: str
    remaining: float
    quantity: float
    urgency: int
    needed_by: date
    village_code: str
    lat: float | None = None
    lon: float | None = None
    beneficiaries: int = 0
    beneficiary_groups: tuple[str, ...] = ()
    skills: tuple[str, ...] = ()
    status: str = NEED_OPEN

    @classmethod
    def from_feed(cls, data: Mapping[str, Any]) -> NeedView:
        """From the needs service's change-feed record (`Need.feed_data()`)."""
        quantity = Decimal(str(data["quantity"]))
        committed = Decimal(str(data.get("committed", "0")))
        return cls(
            id=str(data["id"]), category=data["category"], kind=data["kind"], unit=data["unit"],
            remaining=float(quantity - committed), quantity=float(quantity), urgency=int(data["urgency"]),
            needed_by=date.fromisoformat(str(data["needed_by"])), village_code=data["village_code"],
            lat=data.get("lat"), lon=data.get("lon"), beneficiaries=int(data.get("beneficiaries") or 0),
            beneficiary_groups=tuple(data.get("beneficiary_groups") or ()), skills=tuple(data.get("skills") or ()),
            status=data["status"],
        )


@dataclass(frozen=True, slots=True)
class OfferView:
    """What matching reads of an offer and its organisation. `available` = quantity - reserved, a float.

    An offer serves the villages under any of its `region_codes` (prefixes of 2-12 digits) and, when it has
    a radius and coordinates, every village within `radius_km` of them; with neither it serves nowhere.
    A missing `available_from`/`available_until` leaves that end of its window open. Target groups that
    include "general" restrict nothing.
    """

    id: str
    organisation_id: str
    categories: tuple[str, ...]
    kind: str
    unit: str
    available: float
    status: str = OFFER_ACTIVE
    region_codes: tuple[str, ...] = ()
    radius_km: float | None = None
    lat: float | None = None
    lon: float | None = None
    available_from: date | None = None
    available_until: date | None = None
    beneficiary_groups: tuple[str, ...] = ()
    skills: tuple[str, ...] = ()
    organisation_grade: int | None = None

    @classmethod
    def from_feed(cls, data: Mapping[str, Any], organisation_grade: int | None = None) -> OfferView:
        """From the offers service's change-feed record (`Offer.feed_data()`); the grade is the organisation's."""
        return cls(
            id=str(data["id"]), organisation_id=str(data["organisation_id"]), categories=tuple(data["categories"]),
            kind=data["kind"], unit=data["unit"], available=float(Decimal(str(data["available"]))),
            status=data["status"], region_codes=tuple(data.get("region_codes") or ()), radius_km=data.get("radius_km"),
            lat=data.get("lat"), lon=data.get("lon"),
            available_from=_date_or_none(data.get("available_from")),
            available_until=_date_or_none(data.get("available_until")),
            beneficiary_groups=tuple(data.get("beneficiary_groups") or ()), skills=tuple(data.get("skills") or ()),
            organisation_grade=organisation_grade,
        )


def _date_or_none(value: object) -> date | None:
    return date.fromisoformat(str(value)) if value else None


@dataclass(frozen=True, slots=True)
class Context:
    """What scoring needs beyond needs and offers: the day, pairings (结对), value received per village (CNY)."""

    today: date
    pairings: AbstractSet[tuple[str, str]] = frozenset()  # (organisation_id, village_code)
    received_value_by_village: Mapping[str, float] = field(default_factory=dict)


# --- columnar tables -----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True, eq=False)
class NeedTable:
    """Needs as columns, built once per run; row i is `views[i]`."""

    views: tuple[NeedView, ...]
    block: IntArray  # kind_unit * 16 + category; -1 when either is outside the vocabulary
    eligible: BoolArray  # open with something left
    remaining: FloatArray
    urgency: FloatArray
    needed_by: IntArray  # date ordinals
    village: IntArray  # the 12-digit code as an int; -1 when it is not one
    village_slot: IntArray  # row → index in `villages`
    villages: tuple[str, ...]
    lat: FloatArray  # radians; NaN when unknown
    lon: FloatArray
    xyz: FloatArray  # (n, 3) on the unit sphere
    beneficiaries: FloatArray
    groups: IntArray  # bit mask of beneficiary groups
    general: BoolArray  # names "general"
    skill_ptr: IntArray  # skills of row i: skill_ids[skill_ptr[i]:skill_ptr[i + 1]] (skilled kinds only)
    skill_ids: IntArray
    skill_names: tuple[str, ...]

    @classmethod
    def from_views(cls, views: Sequence[NeedView]) -> NeedTable:
        rows = tuple(views)
        n = len(rows)
        ku = np.fromiter((_KIND_UNIT_ID.get((v.kind, v.unit), -1) for v in rows), np.int64, n)
        category = np.fromiter((_CATEGORY_INDEX.get(v.category, -1) for v in rows), np.int64, n)
        remaining = np.fromiter((v.remaining for v in rows), np.float64, n)
        village_index: dict[str, int] = {}
        slot = np.fromiter((village_index.setdefault(v.village_code, len(village_index)) for v in rows), np.int64, n)
        villages = tuple(village_index)
        village_ints = np.fromiter((_village_int(code) for code in villages), np.int64, len(villages))
        lat, lon = _radians((v.lat for v in rows), n), _radians((v.lon for v in rows), n)
        skill_ptr, skill_ids, skill_names = _need_skills(rows)
        return cls(
            views=rows,
            block=np.where((ku >= 0) & (category >= 0), ku * _CATEGORY_SLOTS + category, -1),
            eligible=np.fromiter((v.status == NEED_OPEN for v in rows), np.bool_, n) & (remaining > 0),
            remaining=remaining,
            urgency=np.fromiter((v.urgency for v in rows), np.float64, n),
            needed_by=np.fromiter((v.needed_by.toordinal() for v in rows), np.int64, n),
            village=village_ints[slot],
            village_slot=slot,
            villages=villages,
            lat=lat,
            lon=lon,
            xyz=_unit_sphere(lat, lon),
            beneficiaries=np.fromiter((max(v.beneficiaries, 0) for v in rows), np.float64, n),
            groups=np.fromiter((_group_mask(v.beneficiary_groups) for v in rows), np.int64, n),
            general=np.fromiter((_GENERAL in v.beneficiary_groups for v in rows), np.bool_, n),
            skill_ptr=skill_ptr,
            skill_ids=skill_ids,
            skill_names=skill_names,
        )

    def __len__(self) -> int:
        return len(self.views)


def _group_mask(groups: Iterable[str]) -> int:
    mask = 0
    for group in groups:
        mask |= _GROUP_BIT.get(group, 0)
    return mask


def _need_skills(rows: Sequence[NeedView]) -> tuple[IntArray, IntArray, tuple[str, ...]]:
    names: dict[str, int] = {}
    ids: list[int] = []
    ptr = [0]
    for view in rows:
        if view.kind in _SKILLED:
            wanted = dict.fromkeys(s for s in map(normalise_skill, view.skills) if s)
            ids.extend(names.setdefault(skill, len(names)) for skill in wanted)
        ptr.append(len(ids))
    return np.asarray(ptr, dtype=np.int64), np.asarray(ids, dtype=np.int64), tuple(names)


@dataclass(frozen=True, slots=True, eq=False)
class OfferTable:
    """Offers as columns plus the indexes candidate generation searches; row j is `views[j]`."""

    views: tuple[OfferView, ...]
    kind_unit: IntArray  # -1 when outside the vocabulary
    categories: IntArray  # bit mask over the category index
    active: BoolArray
    eligible: BoolArray  # active with capacity left
    available: FloatArray
    start: IntArray  # date ordinals; open ends are date.min / date.max
    end: IntArray
    lat: FloatArray  # radians; NaN when unknown
    lon: FloatArray
    xyz: FloatArray
    radius_km: FloatArray  # NaN when the offer has no radius or no coordinates
    groups: IntArray
    restricts_groups: BoolArray  # names target groups, none of them "general"
    grade: IntArray  # 1..5; 0 when not graded
    organisation: IntArray  # index into `organisations`
    organisations: Mapping[str, int]
    skill_index: Mapping[str, int]
    skill_keys: IntArray  # sorted offer * skill_stride + skill id
    skill_stride: int
    region_ptr: IntArray  # service regions of row j: region_code/region_spec[region_ptr[j]:region_ptr[j + 1]]
    region_code: IntArray
    region_spec: IntArray
    prefix_keys: IntArray  # sorted ((block * 6 + spec) << 40) + code, for eligible offers
    prefix_offer: IntArray
    radius_by_block: Mapping[int, IntArray]  # eligible offers with a radius, by block
    blocks: IntArray  # sorted blocks any eligible offer belongs to
    may_repeat: BoolArray  # several service regions, or regions and a radius: may reach a village twice
    row_of: Mapping[str, int]  # offer id → row
    block_count: IntArray  # eligible offers in each block (indexed by block)
    # What is derived once per table and reused by every call (pairing keys); never part of the columns.
    memo: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_views(cls, views: Sequence[OfferView]) -> OfferTable:
        rows = tuple(views)
        n = len(rows)
        kind_unit = np.fromiter((_KIND_UNIT_ID.get((v.kind, v.unit), -1) for v in rows), np.int64, n)
        categories = np.fromiter((_category_mask(v.categories) for v in rows), np.int64, n)
        available = np.fromiter((v.available for v in rows), np.float64, n)
        active = np.fromiter((v.status == OFFER_ACTIVE for v in rows), np.bool_, n)
        eligible = active & (available > 0) & (kind_unit >= 0) & (categories != 0)
        lat, lon = _radians((v.lat for v in rows), n), _radians((v.lon for v in rows), n)
        radius = np.fromiter((math.nan if v.radius_km is None else v.radius_km for v in rows), np.float64, n)
        radius[np.isnan(lat) | np.isnan(lon) | ~(radius >= 0)] = math.nan
        organisations: dict[str, int] = {}
        organisation = np.fromiter(
            (organisations.setdefault(v.organisation_id, len(organisations)) for v in rows), np.int64, n
        )
        region_ptr, region_code, region_spec = _offer_regions(rows)
        skill_index, skill_keys, stride = _offer_skills(rows)
        blocks_of = _offer_blocks(kind_unit, categories)
        prefix_keys, prefix_offer = _prefix_index(eligible, blocks_of, region_ptr, region_code, region_spec)
        radius_by_block = _radius_index(eligible & ~np.isnan(radius), blocks_of)
        block_count = np.bincount(
            np.asarray([b for j in np.flatnonzero(eligible).tolist() for b in blocks_of[j]], dtype=np.int64),
            minlength=_BLOCKS,
        )
        return cls(
            views=rows, kind_unit=kind_unit, categories=categories, active=active, eligible=eligible,
            available=available,
            start=np.fromiter((_ordinal(v.available_from, date.min) for v in rows), np.int64, n),
            end=np.fromiter((_ordinal(v.available_until, date.max) for v in rows), np.int64, n),
            lat=lat, lon=lon, xyz=_unit_sphere(lat, lon), radius_km=radius,
            groups=np.fromiter((_group_mask(v.beneficiary_groups) for v in rows), np.int64, n),
            restricts_groups=np.fromiter(
                (bool(v.beneficiary_groups) and _GENERAL not in v.beneficiary_groups for v in rows), np.bool_, n
            ),
            grade=np.fromiter((_grade(v.organisation_grade) for v in rows), np.int64, n),
            organisation=organisation, organisations=organisations,
            skill_index=skill_index, skill_keys=skill_keys, skill_stride=stride,
            region_ptr=region_ptr, region_code=region_code, region_spec=region_spec,
            prefix_keys=prefix_keys, prefix_offer=prefix_offer, radius_by_block=radius_by_block,
            blocks=np.flatnonzero(block_count), may_repeat=(np.diff(region_ptr) + ~np.isnan(radius)) > 1,
            row_of={v.id: j for j, v in enumerate(rows)}, block_count=block_count,
        )

    def __len__(self) -> int:
        return len(self.views)

    def with_offers(self, views: Iterable[OfferView]) -> OfferTable:
        """This table with `views` in it: each replaces the row of its id, or is appended (in the order given).

        The result equals `from_views` of the updated sequence (same rows in the same order, same index order),
        but costs a few vectorised passes over the arrays instead of a Python pass over every offer: what an
        offer change costs the candidates path. The table itself is not changed (others may be reading it).
        """
        latest = {view.id: view for view in views}
        if not latest:
            return self
        n = len(self)
        row_of = _with_keys(self.row_of, latest)
        rows = np.fromiter((row_of[key] for key in latest), np.int64, len(latest))
        small = OfferTable.from_views(tuple(latest.values()))
        size = len(row_of)
        changed = np.zeros(size, dtype=np.bool_)
        changed[rows] = True

        def put(old: Any, new: Any) -> Any:
            out = np.empty((size, *old.shape[1:]), dtype=old.dtype)
            out[:n] = old
            out[rows] = new
            return out

        everything = list(self.views)
        everything.extend([None] * (size - n))  # type: ignore[list-item]
        for row, view in zip(rows.tolist(), latest.values(), strict=True):
            everything[row] = view

        organisations = _with_keys(self.organisations, small.organisations)
        org_map = np.fromiter((organisations[o] for o in small.organisations), np.int64, len(small.organisations))
        skill_index = _with_keys(self.skill_index, small.skill_index)
        skill_map = np.fromiter((skill_index[s] for s in small.skill_index), np.int64, len(small.skill_index))
        stride = max(len(skill_index), 1)
        old_j, old_s = np.divmod(self.skill_keys, self.skill_stride)
        keep = ~changed[old_j]
        new_j, new_s = np.divmod(small.skill_keys, small.skill_stride)
        # j * stride + s with s < stride orders keys by (j, s) whatever the stride: the kept keys stay sorted.
        skill_keys = _insert_sorted(old_j[keep] * stride + old_s[keep], np.sort(rows[new_j] * stride + skill_map[new_s]))

        region_ptr, region_code, region_spec = _splice_ranges(
            self.region_ptr, (self.region_code, self.region_spec), small.region_ptr, (small.region_code, small.region_spec),
            rows, size,
        )
        keep = ~changed[self.prefix_offer]
        prefix_keys, prefix_offer = _merge_index(
            self.prefix_keys[keep], self.prefix_offer[keep], small.prefix_keys, rows[small.prefix_offer]
        )
        by_block: dict[int, IntArray] = {}
        for block in set(self.radius_by_block) | set(small.radius_by_block):
            kept = self.radius_by_block.get(block, np.zeros(0, dtype=np.int64))
            kept = kept[~changed[kept]]
            added = np.sort(rows[small.radius_by_block.get(block, np.zeros(0, dtype=np.int64))])
            merged = _insert_sorted(kept, added)
            if merged.size:
                by_block[block] = merged
        # In the order a rebuild would meet the blocks (by their first row): pairs then come in the same order.
        radius_by_block = {block: by_block[block] for block in sorted(by_block, key=lambda b: (int(by_block[b][0]), b))}
        changed_old = rows[rows < n]
        gone = _offer_blocks(self.kind_unit[changed_old], self.categories[changed_old])
        block_count = self.block_count - np.bincount(
            np.asarray([b for at, j in enumerate(changed_old.tolist()) if self.eligible[j] for b in gone[at]], dtype=np.int64),
            minlength=_BLOCKS,
        ) + small.block_count
        organisation = put(self.organisation, org_map[small.organisation])
        radius = put(self.radius_km, small.radius_km)
        table = OfferTable(
            views=tuple(everything), kind_unit=put(self.kind_unit, small.kind_unit),
            categories=put(self.categories, small.categories), active=put(self.active, small.active),
            eligible=put(self.eligible, small.eligible), available=put(self.available, small.available),
            start=put(self.start, small.start), end=put(self.end, small.end), lat=put(self.lat, small.lat),
            lon=put(self.lon, small.lon), xyz=put(self.xyz, small.xyz), radius_km=radius,
            groups=put(self.groups, small.groups), restricts_groups=put(self.restricts_groups, small.restricts_groups),
            grade=put(self.grade, small.grade), organisation=organisation, organisations=organisations,
            skill_index=skill_index, skill_keys=skill_keys, skill_stride=stride,
            region_ptr=region_ptr, region_code=region_code, region_spec=region_spec,
            prefix_keys=prefix_keys, prefix_offer=prefix_offer, radius_by_block=radius_by_block,
            blocks=np.flatnonzero(block_count), may_repeat=put(self.may_repeat, small.may_repeat),
            row_of=row_of, block_count=block_count,
        )
        if len(organisations) == len(self.organisations):
            # Same organisations, same indexes: what was derived from pairings still holds.
            table.memo.update(self.memo)
        return table


def _category_mask(categories: Iterable[str]) -> int:
    mask = 0
    for category in categories:
        if category in _CATEGORY_INDEX:
            mask |= 1 << _CATEGORY_INDEX[category]
    return mask


def _ordinal(day: date | None, default: date) -> int:
    return (day or default).toordinal()


def _grade(grade: int | None) -> int:
    return grade if grade is not None and 1 <= grade <= 5 else 0


def _offer_regions(rows: Sequence[OfferView]) -> tuple[IntArray, IntArray, IntArray]:
    codes: list[int] = []
    specs: list[int] = []
    ptr = [0]
    for view in rows:
        for code in dict.fromkeys(view.region_codes):
            value = _region_int(code)
            if value >= 0:
                codes.append(value)
                specs.append(_SPEC_OF_LENGTH[len(code)])
        ptr.append(len(codes))
    return (np.asarray(ptr, dtype=np.int64), np.asarray(codes, dtype=np.int64), np.asarray(specs, dtype=np.int64))


def _offer_skills(rows: Sequence[OfferView]) -> tuple[dict[str, int], IntArray, int]:
    index: dict[str, int] = {}
    pairs: list[tuple[int, int]] = []
    for j, view in enumerate(rows):
        for skill in {s for s in map(normalise_skill, view.skills) if s}:
            pairs.append((j, index.setdefault(skill, len(index))))
    stride = max(len(index), 1)
    keys = np.sort(np.asarray([j * stride + s for j, s in pairs], dtype=np.int64))
    return index, keys, stride


def _offer_blocks(kind_unit: IntArray, categories: IntArray) -> list[list[int]]:
    """The blocks of each offer: one per category it names, within its kind-unit."""
    bits = [(1 << i, i) for i in range(len(_CATEGORY_INDEX))]
    return [
        [ku * _CATEGORY_SLOTS + i for bit, i in bits if mask & bit] if ku >= 0 else []
        for ku, mask in zip(kind_unit.tolist(), categories.tolist(), strict=True)
    ]


def _with_keys(index: Mapping[str, int], keys: Iterable[str]) -> Mapping[str, int]:
    """`index` (never changed: tables share it) numbering also the keys it lacks, from len(index) on."""
    missing = [key for key in keys if key not in index]
    if not missing:
        return index
    grown = dict(index)
    for key in missing:
        grown.setdefault(key, len(grown))
    return grown


def _insert_sorted(kept: IntArray, added: IntArray) -> IntArray:
    """Two sorted arrays of distinct values as one sorted array."""
    if added.size == 0:
        return kept
    return np.insert(kept, np.searchsorted(kept, added), added)


def _merge_index(keys: IntArray, owners: IntArray, new_keys: IntArray, new_owners: IntArray) -> tuple[IntArray, IntArray]:
    """Entries sorted by (key, owner), as a stable sort of keys built in row order leaves them, plus new ones."""
    if new_keys.size == 0:
        return keys, owners
    order = np.lexsort((new_owners, new_keys))
    new_keys, new_owners = new_keys[order], new_owners[order]
    lo = np.searchsorted(keys, new_keys, side="left")
    hi = np.searchsorted(keys, new_keys, side="right")
    at = lo.copy()
    for t in np.flatnonzero(hi > lo).tolist():  # ties: place by owner among the entries of the same key
        at[t] += int(np.searchsorted(owners[lo[t]:hi[t]], new_owners[t]))
    return np.insert(keys, at, new_keys), np.insert(owners, at, new_owners)


def _splice_ranges(
    ptr: IntArray, columns: tuple[IntArray, ...], new_ptr: IntArray, new_columns: tuple[IntArray, ...],
    rows: IntArray, size: int,
) -> tuple[IntArray, ...]:
    """CSR columns (entries of row j at ptr[j]:ptr[j + 1]) with the ranges of `rows` replaced by new ones."""
    n = ptr.size - 1
    new_counts = np.diff(new_ptr)
    new_owner = np.repeat(np.arange(rows.size, dtype=np.int64), new_counts)
    existing = rows < n
    if np.array_equal(ptr[rows[existing] + 1] - ptr[rows[existing]], new_counts[existing]):
        # The rows changed keep their number of entries (the common case): overwrite them in a copy.
        appended = np.zeros(size - n, dtype=np.int64)
        appended[rows[~existing] - n] = new_counts[~existing]
        out_ptr = np.concatenate((ptr, ptr[-1] + np.cumsum(appended)))
        new_at = out_ptr[rows[new_owner]] + np.arange(new_owner.size, dtype=np.int64) - new_ptr[new_owner]
        grown: list[IntArray] = [out_ptr]
        for column, new in zip(columns, new_columns, strict=True):
            copy = np.empty(int(out_ptr[-1]), dtype=column.dtype)
            copy[: column.size] = column
            copy[new_at] = new
            grown.append(copy)
        return tuple(grown)
    counts = np.zeros(size, dtype=np.int64)
    counts[:n] = np.diff(ptr)
    counts[rows] = new_counts
    out_ptr = np.zeros(size + 1, dtype=np.int64)
    np.cumsum(counts, out=out_ptr[1:])
    owner = np.repeat(np.arange(ptr.size - 1, dtype=np.int64), np.diff(ptr))
    replaced = np.zeros(size, dtype=np.bool_)
    replaced[rows] = True
    kept = np.flatnonzero(~replaced[owner])
    old_at = out_ptr[owner[kept]] + kept - ptr[owner[kept]]
    new_at = out_ptr[rows[new_owner]] + np.arange(new_owner.size, dtype=np.int64) - new_ptr[new_owner]
    out: list[IntArray] = [out_ptr]
    for old, new in zip(columns, new_columns, strict=True):
        column = np.empty(int(out_ptr[-1]), dtype=old.dtype)
        column[old_at] = old[kept]
        column[new_at] = new
        out.append(column)
    return tuple(out)


def _prefix_key(block: IntArray | int, spec: int, code: IntArray | int) -> Any:
    return ((np.asarray(block, dtype=np.int64) * 6 + spec) << _PREFIX_BITS) + code


def _prefix_index(
    eligible: BoolArray, blocks_of: list[list[int]], ptr: IntArray, codes: IntArray, specs: IntArray
) -> tuple[IntArray, IntArray]:
    keys: list[int] = []
    owners: list[int] = []
    for j in np.flatnonzero(eligible).tolist():
        for at in range(int(ptr[j]), int(ptr[j + 1])):
            for block in blocks_of[j]:
                keys.append(((block * 6 + int(specs[at])) << _PREFIX_BITS) + int(codes[at]))
                owners.append(j)
    key_array = np.asarray(keys, dtype=np.int64)
    order = np.argsort(key_array, kind="stable")
    return key_array[order], np.asarray(owners, dtype=np.int64)[order]


def _radius_index(with_radius: BoolArray, blocks_of: list[list[int]]) -> dict[int, IntArray]:
    by_block: dict[int, list[int]] = {}
    for j in np.flatnonzero(with_radius).tolist():
        for block in blocks_of[j]:
            by_block.setdefault(block, []).append(j)
    return {block: np.asarray(rows, dtype=np.int64) for block, rows in by_block.items()}


# --- candidate generation ------------------------------------------------------------------------

def _open_rows(needs: NeedTable, offers: OfferTable, today: int) -> IntArray:
    """Needs that can have a candidate at all: open, something left, not past due, in a block offers serve."""
    ok = needs.eligible & (needs.needed_by >= today) & (needs.block >= 0) & (needs.village >= 0)
    rows = np.flatnonzero(ok)
    return rows[_in_sorted(needs.block[rows], offers.blocks)]


def _region_pairs(needs: NeedTable, offers: OfferTable, rows: IntArray) -> tuple[IntArray, IntArray, IntArray]:
    """(need, offer, specificity) for offers whose service regions contain the need's village."""
    found: list[tuple[IntArray, IntArray, IntArray]] = []
    if offers.prefix_keys.size and rows.size:
        block, village = needs.block[rows], needs.village[rows]
        for spec, length in _LEVEL_LENGTH.items():
            keys = _prefix_key(block, spec, village // 10 ** (_VILLAGE_DIGITS - length))
            lo = np.searchsorted(offers.prefix_keys, keys, side="left")
            hi = np.searchsorted(offers.prefix_keys, keys, side="right")
            owner, position = _expand(lo, hi - lo)
            found.append((rows[owner], offers.prefix_offer[position], np.full(owner.size, spec, dtype=np.int64)))
    return _concat3(found)


def _radius_pairs(needs: NeedTable, offers: OfferTable, rows: IntArray) -> tuple[IntArray, IntArray]:
    """(need, offer) for offers whose radius reaches the need's coordinates, block by block."""
    found_n: list[IntArray] = []
    found_o: list[IntArray] = []
    rows = rows[~np.isnan(needs.xyz[rows, 0])]
    order = rows[np.argsort(needs.block[rows], kind="stable")]
    blocks, starts = np.unique(needs.block[order], return_index=True)
    ends = np.append(starts[1:], order.size) if order.size else starts
    bounds = {block: (lo, hi) for block, lo, hi in zip(blocks.tolist(), starts.tolist(), ends.tolist(), strict=True)}
    for block, offer_rows in offers.radius_by_block.items():
        if block not in bounds:
            continue
        lo, hi = bounds[block]
        need_rows = order[lo:hi]
        i, j = _within_radius(needs.xyz[need_rows], offers.xyz[offer_rows], _chord(offers.radius_km[offer_rows]))
        found_n.append(need_rows[i])
        found_o.append(offer_rows[j])
    empty = np.zeros(0, dtype=np.int64)
    return (np.concatenate(found_n) if found_n else empty, np.concatenate(found_o) if found_o else empty)


def _within_radius(points: FloatArray, centres: FloatArray, chords: FloatArray) -> tuple[IntArray, IntArray]:
    """Index pairs (point, centre) with |point - centre| ≤ the centre's chord."""
    if points.shape[0] * centres.shape[0] <= _BRUTE_FORCE_PAIRS:
        # On the unit sphere |p - c|² = 2 - 2 p·c, so one matrix product gives every chord.
        i, j = np.nonzero(points @ centres.T >= 1.0 - (chords * (1 + 1e-12)) ** 2 / 2.0)
        return i.astype(np.int64), j.astype(np.int64)
    tree = cKDTree(points)
    hits = tree.query_ball_point(centres, r=chords * (1 + 1e-12), return_sorted=False)
    counts = np.fromiter(map(len, hits), np.int64, len(hits))
    i = np.fromiter(itertools.chain.from_iterable(hits), np.int64, int(counts.sum()))
    return i, np.repeat(np.arange(len(hits), dtype=np.int64), counts)


def _concat3(parts: list[tuple[IntArray, IntArray, IntArray]]) -> tuple[IntArray, IntArray, IntArray]:
    if not parts:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    return (
        np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), np.concatenate([p[2] for p in parts])
    )


def _merge(
    offers: OfferTable, region: tuple[IntArray, IntArray, IntArray], radius: tuple[IntArray, IntArray]
) -> tuple[IntArray, IntArray, IntArray]:
    """One row per pair, keeping the most specific shared region level.

    Only offers with several service regions, or regions and a radius, can yield a pair twice; only their
    pairs are sorted to find repeats.
    """
    ni = np.concatenate((region[0], radius[0]))
    oj = np.concatenate((region[1], radius[1]))
    spec = np.concatenate((region[2], np.zeros(radius[0].size, dtype=np.int64)))
    repeats = offers.may_repeat[oj]
    if not repeats.any():
        return ni, oj, spec
    at = np.flatnonzero(repeats)
    coded = np.sort((ni[at] * len(offers) + oj[at]) * 8 + spec[at])
    pair = coded >> 3
    last = np.ones(pair.size, dtype=np.bool_)
    last[:-1] = pair[1:] != pair[:-1]
    coded, pair = coded[last], pair[last]
    single = ~repeats
    return (
        np.concatenate((ni[single], pair // len(offers))),
        np.concatenate((oj[single], pair % len(offers))),
        np.concatenate((spec[single], coded & 7)),
    )


def _pair_filters(needs: NeedTable, offers: OfferTable, ni: IntArray, oj: IntArray, today: int) -> BoolArray:
    """Time windows, beneficiary groups and skills; blocks, regions and status were applied before."""
    ok = _windows_ok(needs, offers, ni, oj, today) & _groups_ok(needs, offers, ni, oj)
    keep = np.flatnonzero(ok)
    ok[keep] = _skills_ok(needs, offers, ni[keep], oj[keep])
    return ok


def _windows_ok(needs: NeedTable, offers: OfferTable, ni: IntArray, oj: IntArray, today: int) -> BoolArray:
    """The offer's window [from, until] meets [today, needed_by]."""
    start, end = offers.start[oj], offers.end[oj]
    return np.asarray((start <= needs.needed_by[ni]) & (end >= today) & (start <= end), dtype=np.bool_)


def _groups_ok(needs: NeedTable, offers: OfferTable, ni: IntArray, oj: IntArray) -> BoolArray:
    """An offer naming target groups serves needs that share one of them, or that name 'general'."""
    shared = (needs.groups[ni] & offers.groups[oj]) != 0
    return np.asarray(~offers.restricts_groups[oj] | needs.general[ni] | shared, dtype=np.bool_)


def _skills_ok(needs: NeedTable, offers: OfferTable, ni: IntArray, oj: IntArray) -> BoolArray:
    ok = np.ones(ni.size, dtype=np.bool_)
    asks = np.flatnonzero(needs.skill_ptr[ni + 1] > needs.skill_ptr[ni])
    if asks.size:
        ok[asks] = _skills_present(needs, offers, ni[asks], oj[asks])
    return ok


def _skills_present(needs: NeedTable, offers: OfferTable, ni: IntArray, oj: IntArray) -> BoolArray:
    """For each pair: does the offer bring every skill the need asks for?"""
    translate = np.fromiter((offers.skill_index.get(name, -1) for name in needs.skill_names), np.int64, len(needs.skill_names))
    owner, position = _expand(needs.skill_ptr[ni], needs.skill_ptr[ni + 1] - needs.skill_ptr[ni])
    wanted = translate[needs.skill_ids[position]]
    found = (wanted >= 0) & _in_sorted(oj[owner] * offers.skill_stride + wanted, offers.skill_keys)
    missing = np.bincount(owner, weights=~found, minlength=ni.size)
    return np.asarray(missing == 0, dtype=np.bool_)


def _candidate_pairs(
    needs: NeedTable, offers: OfferTable, today: date, rows: IntArray | None = None
) -> tuple[IntArray, IntArray, IntArray]:
    """Every pair passing the hard filters, as (need rows, offer rows, shared region specificity)."""
    day = today.toordinal()
    open_rows = _open_rows(needs, offers, day)
    if rows is not None:
        open_rows = np.intersect1d(open_rows, rows)
    ni, oj, spec = _merge(offers, _region_pairs(needs, offers, open_rows), _radius_pairs(needs, offers, open_rows))
    keep = _pair_filters(needs, offers, ni, oj, day)
    return ni[keep], oj[keep], spec[keep]


# --- soft scores ---------------------------------------------------------------------------------

class _Pairs:
    """Candidate pairs of one call and their soft scores, computed one rule at a time to bound memory."""

    def __init__(
        self, needs: NeedTable, offers: OfferTable, ni: IntArray, oj: IntArray, spec: IntArray,
        context: Context, ruleset: RuleSet, *, keep: bool = False,
    ) -> None:
        self.needs, self.offers, self.ni, self.oj, self.spec = needs, offers, ni, oj, spec
        self.context, self.ruleset = context, ruleset
        self.capacity = np.minimum(needs.remaining[ni], offers.available[oj])
        self._distance: FloatArray | None = None
        # Explaining reads each rule's array once per explained pair: keep them. A region's scoring
        # needs each once: let them go, since millions of pairs × 8 rules is memory.
        self._keep = keep
        self._memo: dict[str, Any] = {}
        self._rules: dict[str, Callable[[Parameters], FloatArray]] = {
            "proximity": self._proximity, "coverage": self._coverage, "urgency": self._urgency,
            "deadline": self._deadline, "pairing": self._pairing, "grade": self._grade,
            "equity": self._equity, "beneficiaries": self._beneficiaries,
        }

    def __len__(self) -> int:
        return int(self.ni.size)

    @property
    def distance_km(self) -> FloatArray:
        if self._distance is None:
            n, o = self.needs, self.offers
            self._distance = haversine_km(n.lat[self.ni], n.lon[self.ni], o.lat[self.oj], o.lon[self.oj])
        return self._distance

    def _remember(self, key: str, compute: Callable[[], Any]) -> Any:
        if key in self._memo:
            return self._memo[key]
        value = compute()
        if self._keep:
            self._memo[key] = value
        return value

    def rule(self, name: str) -> FloatArray:
        result: FloatArray = self._remember(name, lambda: self._rules[name](self.ruleset.parameters))
        return result

    def total(self) -> FloatArray:
        total = np.zeros(len(self), dtype=np.float64)
        for name, share in self.ruleset.weights.normalised().items():
            if share > 0:
                total += share * self.rule(name)
        return np.clip(total, 0.0, 1.0)

    def _proximity(self, p: Parameters) -> FloatArray:
        decay = np.power(0.5, self.distance_km / p.half_distance_km)
        decay = np.where(np.isnan(decay), p.unknown_distance_score, decay)
        bonus = np.asarray(p.level_bonuses(), dtype=np.float64)[self.spec]
        return np.asarray(1.0 - (1.0 - decay) * (1.0 - bonus), dtype=np.float64)

    def _coverage(self, p: Parameters) -> FloatArray:
        return np.asarray(np.clip(self.capacity / self.needs.remaining[self.ni], 0.0, 1.0), dtype=np.float64)

    def _urgency(self, p: Parameters) -> FloatArray:
        return np.asarray((np.clip(self.needs.urgency[self.ni], 1, 5) - 1.0) / 4.0, dtype=np.float64)

    def days_left(self) -> IntArray:
        days: IntArray = self._remember(
            "days_left", lambda: np.asarray(self.needs.needed_by[self.ni] - self.context.today.toordinal(), dtype=np.int64)
        )
        return days

    def _deadline(self, p: Parameters) -> FloatArray:
        return np.asarray(np.clip(1.0 - self.days_left() / p.deadline_horizon_days, 0.0, 1.0), dtype=np.float64)

    def paired(self) -> BoolArray:
        def compute() -> BoolArray:
            keys = _pairing_keys(self.offers, self.context.pairings)
            paired = np.zeros(len(self), dtype=np.bool_)
            # Few organisations have pairings: look up only the pairs of those that do.
            pairs_some = np.zeros(len(self.offers.organisations), dtype=np.bool_)
            pairs_some[keys // 10**_VILLAGE_DIGITS] = True
            organisation = self.offers.organisation[self.oj]
            at = np.flatnonzero(pairs_some[organisation])
            paired[at] = _in_sorted(organisation[at] * 10**_VILLAGE_DIGITS + self.needs.village[self.ni[at]], keys)
            return paired

        paired: BoolArray = self._remember("paired", compute)
        return paired

    def _pairing(self, p: Parameters) -> FloatArray:
        return self.paired().astype(np.float64)

    def _grade(self, p: Parameters) -> FloatArray:
        grade = self.offers.grade[self.oj]
        return np.where(grade > 0, grade / 5.0, p.ungraded_score)

    def received(self) -> FloatArray:
        def compute() -> FloatArray:
            received = self.context.received_value_by_village
            villages = self.needs.villages
            by_village = np.fromiter((max(float(received.get(code, 0.0)), 0.0) for code in villages), np.float64, len(villages))
            return by_village[self.needs.village_slot[self.ni]]

        received: FloatArray = self._remember("received", compute)
        return received

    def _equity(self, p: Parameters) -> FloatArray:
        return np.asarray(1.0 / (1.0 + self.received() / p.equity_scale_cny), dtype=np.float64)

    def _beneficiaries(self, p: Parameters) -> FloatArray:
        reached = np.log1p(self.needs.beneficiaries[self.ni]) / math.log1p(p.beneficiaries_full_at)
        return np.asarray(np.clip(reached, 0.0, 1.0), dtype=np.float64)


def _pairing_keys(offers: OfferTable, pairings: AbstractSet[tuple[str, str]]) -> IntArray:
    """organisation index × 10^12 + village of each pairing, sorted; derived once per table and pairing set."""
    cached = offers.memo.get("pairings")
    if cached is not None and (cached[0] is pairings or cached[0] == pairings):
        keys: IntArray = cached[1]
        return keys
    keys = _pairing_keys_of(offers, pairings)
    offers.memo["pairings"] = (pairings, keys)
    return keys


def _pairing_keys_of(offers: OfferTable, pairings: AbstractSet[tuple[str, str]]) -> IntArray:
    keys = [
        offers.organisations[organisation] * 10**_VILLAGE_DIGITS + _village_int(village)
        for organisation, village in pairings
        if organisation in offers.organisations and _village_int(village) >= 0
    ]
    return np.unique(np.asarray(keys, dtype=np.int64))


# --- results -------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class RuleExplanation:
    """One soft rule's part in a score: `weight` is its share of the total weight, so Σ weight·score = score."""

    rule: str
    weight: float
    score: float
    reason_zh: str
    reason_en: str

    def reason(self, locale: Locale) -> str:
        return self.reason_zh if locale == "zh" else self.reason_en


@dataclass(frozen=True, slots=True)
class Candidate:
    """A ranked pair: `quantity` is what it could cover now, min(need's remaining, offer's available)."""

    need_id: str
    offer_id: str
    score: float
    quantity: float
    explanation: list[RuleExplanation]


@dataclass(frozen=True, slots=True, eq=False)
class ScoredPairs:
    """Every candidate pair of a region (in a deterministic order); rows index the tables scored."""

    need_idx: IntArray
    offer_idx: IntArray
    score: FloatArray  # weighted mean of the soft scores, in [0, 1]
    capacity: FloatArray  # min(remaining, available)
    level: IntArray  # specificity of the shared region: 0 none (radius only), 1 province … 5 village
    ruleset_version: int

    def __len__(self) -> int:
        return int(self.need_idx.size)


def score_pairs(
    needs: NeedTable, offers: OfferTable, context: Context, ruleset: RuleSet = DEFAULT_RULESET
) -> ScoredPairs:
    """All candidate pairs between these needs and offers with their scores, for a match run."""
    ni, oj, spec = _candidate_pairs(needs, offers, context.today)
    pairs = _Pairs(needs, offers, ni, oj, spec, context, ruleset)
    return ScoredPairs(ni, oj, pairs.total(), pairs.capacity, spec, ruleset.version)


def candidates_for_need(
    need: NeedView | int,
    offers: OfferTable,
    context: Context,
    ruleset: RuleSet = DEFAULT_RULESET,
    *,
    needs: NeedTable | None = None,
    limit: int = 10,
) -> list[Candidate]:
    """The best `limit` offers for one need (a view, or a row of `needs`), by score desc then offer id."""
    if isinstance(need, NeedView):
        table, row = NeedTable.from_views([need]), 0
    else:
        table, row = _require(needs, "needs"), int(need)
    ni, oj, spec = _candidate_pairs(table, offers, context.today, rows=np.asarray([row], dtype=np.int64))
    pairs = _Pairs(table, offers, ni, oj, spec, context, ruleset, keep=True)
    return _top(pairs, pairs.total(), lambda p: offers.views[int(oj[p])].id, limit)


def candidates_for_offer(
    offer: OfferView | int,
    needs: NeedTable,
    context: Context,
    ruleset: RuleSet = DEFAULT_RULESET,
    *,
    offers: OfferTable | None = None,
    limit: int = 10,
    need_rows: IntArray | None = None,
) -> list[Candidate]:
    """The best `limit` needs for one offer (a view, or a row of `offers`), by score desc then need id.

    `need_rows`, when given, limits the needs considered to those rows (e.g. a coordinator's region).
    """
    view = offer if isinstance(offer, OfferView) else _require(offers, "offers").views[offer]
    table = OfferTable.from_views([view])
    ni, oj, spec = _candidate_pairs(needs, table, context.today, rows=need_rows)
    pairs = _Pairs(needs, table, ni, oj, spec, context, ruleset, keep=True)
    return _top(pairs, pairs.total(), lambda p: needs.views[int(ni[p])].id, limit)


def explain_pairs(
    needs: NeedTable, offers: OfferTable, need_idx: IntArray, offer_idx: IntArray,
    context: Context, ruleset: RuleSet = DEFAULT_RULESET,
) -> list[Candidate]:
    """Scores and explanations of given pairs (e.g. a match run's proposals), in the order given.

    The pairs are assumed to pass the hard filters (see `check_pair`); only the soft scores are computed.
    """
    ni, oj = np.asarray(need_idx, dtype=np.int64), np.asarray(offer_idx, dtype=np.int64)
    spec = np.fromiter((_shared_level(needs, offers, i, j) for i, j in zip(ni.tolist(), oj.tolist(), strict=True)), np.int64, ni.size)
    pairs = _Pairs(needs, offers, ni, oj, spec, context, ruleset, keep=True)
    total = pairs.total()
    return [_candidate(pairs, total, p) for p in range(len(pairs))]


def _shared_level(needs: NeedTable, offers: OfferTable, i: int, j: int) -> int:
    village = int(needs.village[i])
    best = 0
    for at in range(int(offers.region_ptr[j]), int(offers.region_ptr[j + 1])):
        spec = int(offers.region_spec[at])
        if village >= 0 and village // 10 ** (_VILLAGE_DIGITS - _LEVEL_LENGTH[spec]) == offers.region_code[at]:
            best = max(best, spec)
    return best


def _require(table: _T | None, name: str) -> _T:
    if table is None:
        raise ValueError(f"a row index needs the `{name}` table")
    return table


def _top(pairs: _Pairs, total: FloatArray, other_id: Callable[[int], str], limit: int) -> list[Candidate]:
    """The `limit` best pairs by rounded score desc, then the other side's id; explained one by one."""
    if limit <= 0 or total.size == 0:
        return []
    rounded = np.round(total, 4)
    if rounded.size > limit:
        threshold = np.partition(rounded, rounded.size - limit)[rounded.size - limit]
        positions = np.flatnonzero(rounded >= threshold).tolist()
    else:
        positions = list(range(rounded.size))
    positions.sort(key=lambda p: (-rounded[p], other_id(p)))
    return [_candidate(pairs, total, p) for p in positions[:limit]]


# --- explanations --------------------------------------------------------------------------------

_LEVEL_TEXT: dict[int, Text] = {
    1: Text("同省", "same province"), 2: Text("同市", "same city"), 3: Text("同县", "same county"),
    4: Text("同乡镇", "same township"), 5: Text("同村", "same village"),
}


def _km(distance: float) -> str:
    return f"{distance:.1f}" if distance < 10 else f"{distance:,.0f}"


def _yuan_zh(value: float) -> str:
    for size, word in ((1e8, "亿元"), (1e4, "万元")):
        if value >= size:
            return f"{value / size:.2f}".rstrip("0").rstrip(".") + " " + word
    return f"{value:.0f} 元"


def _candidate(pairs: _Pairs, total: FloatArray, p: int) -> Candidate:
    shares = pairs.ruleset.weights.normalised()
    explanation = []
    for rule in RULES:
        if shares[rule] > 0:
            score = float(pairs.rule(rule)[p])
            reason = _REASONS[rule](pairs, p)
            explanation.append(RuleExplanation(rule, round(shares[rule], 4), round(score, 4), reason.zh, reason.en))
    return Candidate(
        need_id=pairs.needs.views[int(pairs.ni[p])].id,
        offer_id=pairs.offers.views[int(pairs.oj[p])].id,
        score=round(float(total[p]), 4),
        quantity=float(pairs.capacity[p]),
        explanation=explanation,
    )


def _proximity_reason(pairs: _Pairs, p: int) -> Text:
    level = int(pairs.spec[p])
    distance = float(pairs.distance_km[p])
    where = _LEVEL_TEXT.get(level, Text("在服务半径内", "within its service radius"))
    if math.isnan(distance):
        return Text(f"{where.zh}，距离未知", f"{where.en}, distance unknown")
    return Text(f"{where.zh}，距离 {_km(distance)} km", f"{where.en}, {_km(distance)} km away")


def _coverage_reason(pairs: _Pairs, p: int) -> Text:
    share = round(100 * float(pairs.capacity[p] / pairs.needs.remaining[pairs.ni[p]]))
    return Text(f"可覆盖剩余需求的 {share}%", f"covers {share}% of what is left")


def _urgency_reason(pairs: _Pairs, p: int) -> Text:
    urgency = int(pairs.needs.urgency[pairs.ni[p]])
    return Text(f"紧急程度 {urgency}/5", f"urgency {urgency} of 5")


def _deadline_reason(pairs: _Pairs, p: int) -> Text:
    days = int(pairs.days_left()[p])
    if days == 0:
        return Text("今天截止", "due today")
    return Text(f"距截止 {days} 天", f"{days} day{'s' if days != 1 else ''} to deadline")


def _pairing_reason(pairs: _Pairs, p: int) -> Text:
    if pairs.paired()[p]:
        return Text("已结对帮扶", "paired with this village")
    return Text("未与该村结对", "not paired with this village")


def _grade_reason(pairs: _Pairs, p: int) -> Text:
    grade = int(pairs.offers.grade[pairs.oj[p]])
    if grade == 0:
        return Text("社会组织尚未评估等级", "organisation not graded")
    return Text(f"{grade}A 级社会组织", f"grade {grade}A organisation")


def _equity_reason(pairs: _Pairs, p: int) -> Text:
    received = float(pairs.received()[p])
    if received <= 0:
        return Text("该村此前未获帮扶", "village has received nothing so far")
    return Text(f"该村此前已获 {_yuan_zh(received)}", f"village received ¥{received:,.0f} so far")


def _beneficiaries_reason(pairs: _Pairs, p: int) -> Text:
    people = int(pairs.needs.beneficiaries[pairs.ni[p]])
    return Text(f"惠及 {people} 人", f"reaches {people:,} {'person' if people == 1 else 'people'}")


_REASONS: dict[str, Callable[[_Pairs, int], Text]] = {
    "proximity": _proximity_reason, "coverage": _coverage_reason, "urgency": _urgency_reason,
    "deadline": _deadline_reason, "pairing": _pairing_reason, "grade": _grade_reason,
    "equity": _equity_reason, "beneficiaries": _beneficiaries_reason,
}


# --- why not -------------------------------------------------------------------------------------

class RejectionCode(StrEnum):
    NEED_NOT_OPEN = "need_not_open"
    NOTHING_LEFT = "nothing_left"
    DEADLINE_PASSED = "deadline_passed"
    NO_MATCHING_OFFER = "no_matching_offer"  # no active offer of this category, kind and unit
    OUT_OF_RANGE = "out_of_range"
    WINDOW_CLOSED = "window_closed"
    GROUPS_MISMATCH = "groups_mismatch"
    SKILLS_MISSING = "skills_missing"
    CAPACITY_TAKEN = "capacity_taken"  # offers would fit, but nothing of them is left


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a need has no candidate (or a pair is not allowed); `text` is complete, with no placeholders."""

    code: RejectionCode
    text: Text


def explain_rejection(need: NeedView, offers: OfferTable, context: Context) -> Rejection | None:
    """The first hard filter that leaves this need with no offer at all; None when it has candidates.

    Filters are applied as a funnel in a fixed order (what the offer is, where, when, for whom, with which
    skills, and last how much is left), so the reason names the step where the last offer dropped out:
    'capacity taken' means offers that fit in every other way exist but have nothing left.
    """
    own = _rejection_of_need(need, context.today)
    if own is not None:
        return own
    table = NeedTable.from_views([need])
    alive = offers.active & (offers.kind_unit == _KIND_UNIT_ID.get((need.kind, need.unit), -2))
    alive &= (offers.categories & (1 << _CATEGORY_INDEX.get(need.category, 62))) != 0
    rows = np.flatnonzero(alive)
    if rows.size == 0:
        return _rejection(RejectionCode.NO_MATCHING_OFFER, need)
    day = context.today.toordinal()

    def row0(of: IntArray) -> IntArray:
        return np.zeros(of.size, dtype=np.int64)

    funnel: list[tuple[RejectionCode, Callable[[IntArray], BoolArray]]] = [
        (RejectionCode.OUT_OF_RANGE, lambda at: _in_range(table, offers, at)),
        (RejectionCode.WINDOW_CLOSED, lambda at: _windows_ok(table, offers, row0(at), at, day)),
        (RejectionCode.GROUPS_MISMATCH, lambda at: _groups_ok(table, offers, row0(at), at)),
        (RejectionCode.SKILLS_MISSING, lambda at: _skills_ok(table, offers, row0(at), at)),
        (RejectionCode.CAPACITY_TAKEN, lambda at: offers.available[at] > 0),
    ]
    matching = rows.size
    for code, keep in funnel:
        rows = rows[keep(rows)]
        if rows.size == 0:
            return _rejection(code, need, offers=matching)
    return None


def _rejection_of_need(need: NeedView, today: date) -> Rejection | None:
    if need.status != NEED_OPEN:
        return _rejection(RejectionCode.NEED_NOT_OPEN, need)
    if need.remaining <= 0:
        return _rejection(RejectionCode.NOTHING_LEFT, need)
    if need.needed_by < today:
        return _rejection(RejectionCode.DEADLINE_PASSED, need)
    return None


def _in_range(table: NeedTable, offers: OfferTable, rows: IntArray) -> BoolArray:
    """Is the need's village in one of each offer's regions, or within its radius?"""
    village = int(table.village[0])
    inside = np.zeros(rows.size, dtype=np.bool_)
    if village < 0:
        return inside  # not a village code: matching needs one, as candidate generation does
    if rows.size:
        owner, position = _expand(offers.region_ptr[rows], offers.region_ptr[rows + 1] - offers.region_ptr[rows])
        lengths = np.asarray([_LEVEL_LENGTH[s] for s in range(1, 6)], dtype=np.int64)[offers.region_spec[position] - 1]
        hit = village // 10 ** (_VILLAGE_DIGITS - lengths) == offers.region_code[position]
        inside[np.unique(owner[hit])] = True
    distance = haversine_km(table.lat[0], table.lon[0], offers.lat[rows], offers.lon[rows])
    return inside | (distance <= offers.radius_km[rows] * (1 + 1e-12))


_CATEGORY_ZH = {
    "industry": "产业", "talent": "人才", "culture": "文化", "environment": "生态环境", "infrastructure": "基础设施",
    "education": "教育", "health": "医疗卫生", "elderly_children": "一老一小", "disaster": "防灾救灾",
    "governance": "基层治理", "other": "其他",
}
_KIND_ZH = {"funds": "资金", "goods": "物资", "service": "服务", "training": "培训", "expertise": "智力"}


def _rejection(code: RejectionCode, need: NeedView, offers: int = 0) -> Rejection:
    what_zh = f"{_CATEGORY_ZH.get(need.category, need.category)}类{_KIND_ZH.get(need.kind, need.kind)}（{need.unit}）"
    what_en = f"category '{need.category}', kind '{need.kind}' in '{need.unit}'"
    skills_zh, skills_en = "、".join(need.skills), ", ".join(need.skills)
    texts: dict[RejectionCode, Text] = {
        RejectionCode.NEED_NOT_OPEN: Text(f"需求状态为“{need.status}”，不参与匹配", f"the need is '{need.status}', not open"),
        RejectionCode.NOTHING_LEFT: Text("需求已全部有人承接", "nothing of the need is left to cover"),
        RejectionCode.DEADLINE_PASSED: Text("需求已过截止日期", "the need's deadline has passed"),
        RejectionCode.NO_MATCHING_OFFER: Text(f"没有{what_zh}的可用资源", f"no active offer of {what_en}"),
        RejectionCode.OUT_OF_RANGE: Text(
            f"{offers} 个同类资源的服务区域和半径都不包括本村",
            f"none of the {offers} matching offers serves this village (regions or radius)",
        ),
        RejectionCode.WINDOW_CLOSED: Text(
            "服务范围内的同类资源在截止日期前都不可用", "no matching offer in range is available before the deadline"
        ),
        RejectionCode.GROUPS_MISMATCH: Text(
            "服务范围内的同类资源面向的受益群体与本需求不符", "the matching offers in range target other beneficiary groups"
        ),
        RejectionCode.SKILLS_MISSING: Text(
            f"服务范围内没有资源具备所需技能：{skills_zh}", f"no matching offer in range brings the skills asked for: {skills_en}"
        ),
        RejectionCode.CAPACITY_TAKEN: Text(
            "符合条件的资源余量已全部被预留", "every offer that fits has all its capacity taken"
        ),
    }
    return Rejection(code, texts[code])


def check_pair(need: NeedView, offer: OfferView, context: Context) -> RejectionCode | None:
    """The first hard filter this one pair fails, or None: a plain-Python statement of the hard filters.

    The vectorised generation above must agree with it (the tests check so); the service can use it for a
    manual proposal or a pledge.
    """
    own = _rejection_of_need(need, context.today)
    if own is not None:
        return own.code
    kind_unit = _KIND_UNIT_ID.get((need.kind, need.unit))
    if (
        offer.status != OFFER_ACTIVE or kind_unit is None or _KIND_UNIT_ID.get((offer.kind, offer.unit)) != kind_unit
        or need.category not in _CATEGORY_INDEX or need.category not in offer.categories
    ):
        return RejectionCode.NO_MATCHING_OFFER
    if not _pair_in_range(need, offer):
        return RejectionCode.OUT_OF_RANGE
    start, end = offer.available_from or date.min, offer.available_until or date.max
    if not (start <= need.needed_by and end >= context.today and start <= end):
        return RejectionCode.WINDOW_CLOSED
    restricts = bool(offer.beneficiary_groups) and _GENERAL not in offer.beneficiary_groups
    shared = _group_mask(offer.beneficiary_groups) & _group_mask(need.beneficiary_groups)
    if restricts and _GENERAL not in need.beneficiary_groups and not shared:
        return RejectionCode.GROUPS_MISMATCH
    if need.kind in _SKILLED:
        brought = {normalise_skill(s) for s in offer.skills}
        if any(s and s not in brought for s in map(normalise_skill, need.skills)):
            return RejectionCode.SKILLS_MISSING
    if offer.available <= 0:
        return RejectionCode.CAPACITY_TAKEN
    return None


def _pair_in_range(need: NeedView, offer: OfferView) -> bool:
    if _village_int(need.village_code) < 0:
        return False
    if any(
        _region_int(code) >= 0 and need.village_code.startswith(code) for code in offer.region_codes
    ):
        return True
    coordinates = (need.lat, need.lon, offer.lat, offer.lon)
    if offer.radius_km is None or offer.radius_km < 0 or any(c is None for c in coordinates):
        return False
    lat1, lon1, lat2, lon2 = (np.radians(np.float64(c)) for c in coordinates)  # type: ignore[arg-type]
    return bool(haversine_km(lat1, lon1, lat2, lon2) <= offer.radius_km * (1 + 1e-12))
