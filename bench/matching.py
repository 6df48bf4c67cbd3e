"""Matching at scale: candidate generation, scoring and exact allocation on synthetic regions.

    python -m bench.matching                                # both profiles, sizes 1000, 10000, 50000
    python -m bench.matching --sizes 1000,10000 --profiles realistic

Each run is needs = offers of one size, in a fresh process so that its peak memory (ru_maxrss, which
includes making the synthetic data) is its own. The synthetic country: 31 provinces, ~3,000 counties under
~300 cities, 40 villages per county with coordinates clustered around their county; needs and offers with
the category, kind and unit mix of the source reports, target groups, time windows and, for service,
training and expertise, skills. Two profiles of how far offers reach (`PROFILES`):
- realistic: offers serve their county (50%), city (20%), province (6%), township (4%), a 20-100 km radius
  (15%) or county and radius (5%), like the county-level pairings of the source reports;
- dense: a stress case, half the offers serving a whole province, 2-4 categories each, few group limits.
On 1,000 × 1,000 the exact objective is checked against the LP optimum (HiGHS).
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np

from services.matching.allocation import allocate, equity_report, greedy_allocation, lp_optimum
from services.matching.rules import DEFAULT_RULESET
from services.matching.scoring import Context, NeedTable, NeedView, OfferTable, OfferView, score_pairs

TODAY = date(2025, 6, 1)
DEFAULT_SIZES = (1_000, 10_000, 50_000)
PROVINCES = (
    "11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34", "35", "36", "37", "41",
    "42", "43", "44", "45", "46", "50", "51", "52", "53", "54", "61", "62", "63", "64", "65",
)
COUNTIES = 3_000
VILLAGES_PER_COUNTY = 40
CATEGORIES = (
    ("industry", 0.15), ("talent", 0.05), ("culture", 0.06), ("environment", 0.06), ("infrastructure", 0.15),
    ("education", 0.18), ("health", 0.10), ("elderly_children", 0.10), ("disaster", 0.05), ("governance", 0.04),
    ("other", 0.06),
)
# (kind, unit, share, smallest, largest quantity of a need): log-uniform in between.
KIND_UNITS = (
    ("funds", "CNY", 0.34, 3_000, 1_000_000), ("goods", "item", 0.10, 10, 1_000), ("goods", "set", 0.04, 1, 50),
    ("goods", "kg", 0.05, 50, 5_000), ("goods", "book", 0.05, 100, 3_000), ("goods", "box", 0.03, 10, 500),
    ("service", "person_day", 0.09, 5, 200), ("service", "session", 0.08, 2, 50), ("training", "trainee", 0.11, 10, 200),
    ("expertise", "person_day", 0.11, 5, 100),
)
GROUPS = ("elderly", "children", "left_behind_children", "students", "disabled", "low_income", "landless_farmers", "women")
SKILLS = (
    "电器维修", "心理辅导", "数控", "电商直播", "果树修剪", "养殖技术", "中医义诊", "书法", "急救", "家政",
    "育婴", "厨师", "电焊", "农机维修", "财会", "法律咨询", "摄影", "舞蹈", "计算机", "园艺",
)
SKILLED = {"service", "training", "expertise"}


@dataclass(frozen=True, slots=True)
class Profile:
    """How widely offers reach. `realistic` follows the source reports; `dense` stresses the engine with
    offers that mostly serve whole provinces, name several categories and rarely restrict groups."""

    name: str
    areas: tuple[float, float, float, float, float, float]  # county, city, province, township, radius, county+radius
    radius_km: tuple[float, float]
    categories: tuple[float, float, float, float]  # offers naming 1, 2, 3, 4 categories
    groups_none: float  # offers with no target group
    skills: tuple[int, int]  # skills an offer of a skilled kind brings


PROFILES = {
    "realistic": Profile("realistic", (0.50, 0.20, 0.06, 0.04, 0.15, 0.05), (20, 100), (0.6, 0.3, 0.1, 0.0), 0.55, (2, 5)),
    "dense": Profile("dense", (0.10, 0.20, 0.50, 0.0, 0.15, 0.05), (50, 150), (0.0, 0.3, 0.4, 0.3), 0.80, (4, 8)),
}


@dataclass(frozen=True, slots=True)
class Geography:
    county_codes: list[str]
    village_codes: list[str]  # VILLAGES_PER_COUNTY per county, county-major
    village_lat: np.ndarray
    village_lon: np.ndarray
    county_lat: np.ndarray
    county_lon: np.ndarray


def geography(rng: np.random.Generator) -> Geography:
    """~3,000 counties under 31 provinces, their cities and villages, with clustered coordinates."""
    province_lat, province_lon = rng.uniform(22, 46, len(PROVINCES)), rng.uniform(85, 128, len(PROVINCES))
    codes: dict[str, tuple[float, float]] = {}
    city_centre: dict[str, tuple[float, float]] = {}
    while len(codes) < COUNTIES:
        p = int(rng.integers(len(PROVINCES)))
        city = f"{PROVINCES[p]}{rng.integers(1, 11):02d}"
        if city not in city_centre:
            city_centre[city] = (province_lat[p] + rng.normal(0, 1.2), province_lon[p] + rng.normal(0, 1.5))
        lat, lon = city_centre[city]
        codes.setdefault(f"{city}{rng.integers(1, 21):02d}", (lat + rng.normal(0, 0.3), lon + rng.normal(0, 0.35)))
    counties = list(codes)
    county_lat = np.array([codes[c][0] for c in counties])
    county_lon = np.array([codes[c][1] for c in counties])
    villages = [f"{c}{t:03d}{v:03d}" for c in counties for t, v in _township_villages(rng)]
    village_lat = np.repeat(county_lat, VILLAGES_PER_COUNTY) + rng.normal(0, 0.1, len(villages))
    village_lon = np.repeat(county_lon, VILLAGES_PER_COUNTY) + rng.normal(0, 0.12, len(villages))
    return Geography(counties, villages, village_lat, village_lon, county_lat, county_lon)


def _township_villages(rng: np.random.Generator) -> list[tuple[int, int]]:
    townships = rng.integers(100, 130, VILLAGES_PER_COUNTY)
    return [(int(t), 200 + i) for i, t in enumerate(townships)]


def _pick(rng: np.random.Generator, options: Sequence[tuple[str, float]], n: int) -> np.ndarray:
    weights = np.array([w for _, w in options])
    return rng.choice(len(options), size=n, p=weights / weights.sum())


def _quantities(rng: np.random.Generator, ku: np.ndarray, factor: float) -> np.ndarray:
    low = np.array([k[3] for k in KIND_UNITS], dtype=float)[ku]
    high = np.array([k[4] for k in KIND_UNITS], dtype=float)[ku]
    amount = np.exp(rng.uniform(np.log(low), np.log(high))) * factor
    return np.where(ku == 0, np.round(amount, -2), np.round(amount))


def _groups(rng: np.random.Generator, none: float, general: float) -> tuple[str, ...]:
    roll = rng.random()
    if roll < none:
        return ()
    if roll < none + general:
        return ("general",)
    return tuple(rng.choice(GROUPS, size=int(rng.integers(1, 3)), replace=False).tolist())


def _skills(rng: np.random.Generator, kind: str, low: int, high: int) -> tuple[str, ...]:
    if kind not in SKILLED:
        return ()
    return tuple(rng.choice(SKILLS, size=int(rng.integers(low, high + 1)), replace=False).tolist())


def synthetic_needs(rng: np.random.Generator, geo: Geography, n: int) -> list[NeedView]:
    village = rng.integers(len(geo.village_codes), size=n)
    category = _pick(rng, CATEGORIES, n)
    ku = _pick(rng, [(k[0], k[2]) for k in KIND_UNITS], n)
    quantity = _quantities(rng, ku, 1.0)
    remaining = np.where(rng.random(n) < 0.3, np.ceil(quantity * rng.uniform(0.3, 1.0, n)), quantity)
    urgency = rng.choice(5, size=n, p=[0.1, 0.25, 0.35, 0.2, 0.1]) + 1
    urgency = np.where(category == 8, np.maximum(urgency, 4), urgency)  # disaster relief is urgent
    days = rng.integers(3, 240, n)
    people = np.round(np.exp(rng.uniform(np.log(10), np.log(3_000), n))).astype(int)
    needs = []
    for i in range(n):
        kind, unit = KIND_UNITS[ku[i]][:2]
        skill_roll = rng.random()
        skills = _skills(rng, kind, 1, 2) if skill_roll < 0.6 else ()
        needs.append(NeedView(
            id=f"n{i:06d}", category=CATEGORIES[category[i]][0], kind=kind, unit=unit,
            remaining=float(remaining[i]), quantity=float(quantity[i]), urgency=int(urgency[i]),
            needed_by=TODAY + timedelta(days=int(days[i])), village_code=geo.village_codes[village[i]],
            lat=float(geo.village_lat[village[i]]), lon=float(geo.village_lon[village[i]]),
            beneficiaries=int(people[i]), beneficiary_groups=_groups(rng, 0.0, 0.15), skills=skills,
        ))
    return needs


def _service_area(rng: np.random.Generator, county: str, profile: Profile) -> tuple[tuple[str, ...], float | None]:
    area = int(rng.choice(6, p=profile.areas))
    if area < 4:
        return ((county, county[:4], county[:2], f"{county}{rng.integers(100, 130):03d}")[area],), None
    radius = float(rng.uniform(*profile.radius_km))
    return ((), radius) if area == 4 else ((county,), radius)


def synthetic_offers(
    rng: np.random.Generator, geo: Geography, n: int, profile: Profile
) -> tuple[list[OfferView], list[tuple[str, int]]]:
    """Offers and their organisations' (id, home county index)."""
    n_orgs = max(n // 3, 1)
    org_county = rng.integers(len(geo.county_codes), size=n_orgs)
    grades = rng.choice([0, 1, 2, 3, 4, 5], size=n_orgs, p=[0.45, 0.03, 0.08, 0.2, 0.16, 0.08])
    org = rng.integers(n_orgs, size=n)
    ku = _pick(rng, [(k[0], k[2]) for k in KIND_UNITS], n)
    available = _quantities(rng, ku, 2.0)
    available = np.where(rng.random(n) < 0.08, 0.0, available)  # fully reserved already
    start = rng.integers(-60, 60, n)
    end = np.where(rng.random(n) < 0.05, rng.integers(-30, 0, n), rng.integers(30, 365, n))
    offers = []
    for j in range(n):
        county = int(org_county[org[j]])
        kind, unit = KIND_UNITS[ku[j]][:2]
        regions, radius = _service_area(rng, geo.county_codes[county], profile)
        categories = _pick(rng, CATEGORIES, int(rng.choice([1, 2, 3, 4], p=profile.categories)))
        grade = int(grades[org[j]])
        offers.append(OfferView(
            id=f"o{j:06d}", organisation_id=f"org{org[j]:06d}",
            categories=tuple(dict.fromkeys(CATEGORIES[c][0] for c in categories)), kind=kind, unit=unit,
            available=float(available[j]), status="active" if rng.random() < 0.96 else "withdrawn",
            region_codes=regions, radius_km=radius,
            lat=float(geo.county_lat[county]), lon=float(geo.county_lon[county]),
            available_from=TODAY + timedelta(days=int(start[j])), available_until=TODAY + timedelta(days=int(end[j])),
            beneficiary_groups=_groups(rng, profile.groups_none, 0.10), skills=_skills(rng, kind, *profile.skills),
            organisation_grade=grade or None,
        ))
    return offers, [(f"org{k:06d}", int(org_county[k])) for k in range(n_orgs)]


def synthetic_context(rng: np.random.Generator, geo: Geography, organisations: list[tuple[str, int]]) -> Context:
    pairings = set()
    for org_id, county in organisations:
        if rng.random() < 0.10:
            for v in rng.integers(VILLAGES_PER_COUNTY, size=int(rng.integers(1, 4))):
                pairings.add((org_id, geo.village_codes[county * VILLAGES_PER_COUNTY + int(v)]))
    chosen = rng.random(len(geo.village_codes)) < 0.3
    amounts = np.exp(rng.uniform(np.log(1e3), np.log(5e5), len(geo.village_codes)))
    received = {code: float(a) for code, a, c in zip(geo.village_codes, amounts, chosen, strict=True) if c}
    return Context(today=TODAY, pairings=frozenset(pairings), received_value_by_village=received)


def synthetic_region(
    n_needs: int, n_offers: int, *, profile: Profile = PROFILES["realistic"], seed: int = 7
) -> tuple[list[NeedView], list[OfferView], Context]:
    rng = np.random.default_rng(seed)
    geo = geography(rng)
    needs = synthetic_needs(rng, geo, n_needs)
    offers, organisations = synthetic_offers(rng, geo, n_offers, profile)
    return needs, offers, synthetic_context(rng, geo, organisations)


# --- the run -------------------------------------------------------------------------------------

def run_size(size: int, profile: str, check_lp: bool) -> dict[str, float | int | str]:
    needs_v, offers_v, context = synthetic_region(size, size, profile=PROFILES[profile])
    t0 = time.perf_counter()
    needs, offers = NeedTable.from_views(needs_v), OfferTable.from_views(offers_v)
    t_build = time.perf_counter()
    scored = score_pairs(needs, offers, context, DEFAULT_RULESET)
    t_scored = time.perf_counter()
    exact = allocate(scored, needs, offers)
    t_allocated = time.perf_counter()
    greedy = greedy_allocation(scored, needs, offers)
    solves = [c for c in exact.components if c.method == "min_cost_flow"]
    equity = equity_report(needs, exact)
    row: dict[str, float | int | str] = {
        "size": size, "profile": profile, "pairs": len(scored), "build_s": t_build - t0, "candidates_s": t_scored - t0,
        "allocation_s": t_allocated - t_scored, "total_s": t_allocated - t0,
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "exact": exact.objective, "greedy": greedy.objective, "bound": exact.rounding_bound,
        "components": sum(c.components for c in exact.components),
        "solves": len(solves), "largest": max((c.needs + c.offers for c in solves), default=0),
        "allocated_pairs": len(exact), "needs_with_candidates": int(np.unique(scored.need_idx).size),
        "reach": equity.share_reached, "gini": equity.gini_value_per_beneficiary,
    }
    if check_lp:
        row["lp"] = lp_optimum(scored, needs, offers)
    return row


# (column, width, format spec); the first column is left-aligned, the rest right-aligned.
HEADER: tuple[tuple[str, int, str], ...] = (
    ("profile", 9, ""), ("size", 13, ""), ("candidate pairs", 15, ","), ("candidates s", 12, ".2f"),
    ("pairs scored/s", 14, ",.0f"), ("allocation s", 12, ".2f"), ("total s", 7, ".2f"), ("peak MB", 7, ".0f"),
    ("objective exact", 15, ".3f"), ("objective greedy", 16, ".3f"), ("greedy/exact %", 14, ".2f"),
)


def _cells(values: Sequence[object], *, names: bool = False) -> str:
    cells = []
    for k, ((_, width, spec), value) in enumerate(zip(HEADER, values, strict=True)):
        cells.append(f"{value:{'<' if k == 0 else '>'}{width}{'' if names else spec}}")
    return "  ".join(cells)


def _header() -> str:
    return _cells([name for name, _, _ in HEADER], names=True)


def _line(row: dict[str, float | int | str]) -> str:
    size = int(row["size"])
    values = (
        row["profile"], f"{size:,}×{size:,}", row["pairs"], row["candidates_s"],
        float(row["pairs"]) / float(row["candidates_s"]), row["allocation_s"], row["total_s"], row["peak_mb"],
        row["exact"], row["greedy"], 100 * float(row["greedy"]) / float(row["exact"]) if row["exact"] else 100.0,
    )
    return _cells(values)


def _details(row: dict[str, float | int | str]) -> str:
    where = f"{row['profile']} {int(row['size']):,}"
    text = (
        f"{where}: tables built in {row['build_s']:.2f} s (inside 'candidates s'); "
        f"{row['needs_with_candidates']:,} needs have candidates; {row['components']:,} components, "
        f"{row['solves']} min-cost-flow solves (largest {row['largest']:,} nodes); {row['allocated_pairs']:,} pairs allocated; "
        f"rounding bound {float(row['bound']):.1e}; villages reached {100 * float(row['reach']):.1f}%, "
        f"Gini of value per beneficiary {float(row['gini']):.3f}"
    )
    if "lp" in row:
        gap = abs(float(row["exact"]) - float(row["lp"]))
        verdict = "equal" if gap <= float(row["bound"]) + 1e-9 * max(1.0, float(row["lp"])) else "DIFFERENT"
        text += (
            f"\n{where}: LP optimum (HiGHS) {float(row['lp']):.9f}, exact {float(row['exact']):.9f}, "
            f"|gap| {gap:.1e} (rounding bound {float(row['bound']):.1e}): {verdict}"
        )
    return text


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.matching", description="Matching at scale.")
    parser.add_argument("--sizes", default=",".join(map(str, DEFAULT_SIZES)), help="needs = offers per run, comma-separated")
    parser.add_argument("--profiles", default=",".join(PROFILES), help=f"comma-separated, of: {', '.join(PROFILES)}")
    parser.add_argument("--in-process", action="store_true", help="run every size in this process (peak memory accumulates)")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    profiles = [p.strip() for p in args.profiles.split(",") if p.strip()]
    print("Matching: table build + candidates + scoring ('candidates s'), exact allocation by min-cost flow per component;")
    print("greedy (highest score first) for comparison. Objective: Σ score × quantity / need's remaining.")
    print(_header())
    details = []
    for profile in profiles:
        for size in sizes:
            row = _run(size, profile, check_lp=size <= 1_000, in_process=args.in_process)
            print(_line(row), flush=True)
            details.append(_details(row))
    print()
    print("\n".join(details))


def _run(size: int, profile: str, *, check_lp: bool, in_process: bool) -> dict[str, float | int | str]:
    if in_process:
        return run_size(size, profile, check_lp)
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(run_size, size, profile, check_lp).result()


if __name__ == "__main__":
    main(sys.argv[1:])
