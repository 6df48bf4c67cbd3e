"""Exact allocation by min-cost flow: feasibility, optimality against the LP, decomposition, reasons, equity."""

from __future__ import annotations

import dataclasses
from datetime import date, timedelta

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.matching.allocation import (
    Allocation,
    UnallocatedCode,
    allocate,
    equity_report,
    gini,
    greedy_allocation,
    lp_allocation,
    lp_optimum,
    unallocated_needs,
)
from services.matching.scoring import (
    Context,
    NeedTable,
    NeedView,
    OfferTable,
    OfferView,
    RejectionCode,
    ScoredPairs,
    score_pairs,
)

TODAY = date(2025, 3, 1)
LP_TOLERANCE = 1e-7


def _need(i: int, remaining: float, village: str = "", beneficiaries: int = 100) -> NeedView:
    return NeedView(
        id=f"n{i}", category="education", kind="funds", unit="CNY", remaining=remaining, quantity=remaining,
        urgency=3, needed_by=TODAY + timedelta(days=30), village_code=village or f"4413021042{i:02d}",
        lat=23.1, lon=114.4, beneficiaries=beneficiaries,
    )


def _offer(j: int, available: float) -> OfferView:
    return OfferView(id=f"o{j}", organisation_id=f"org{j}", categories=("education",), kind="funds", unit="CNY",
                     available=available, region_codes=("441302",))


def instance(
    remaining: list[float], available: list[float], pairs: list[tuple[int, int, float]]
) -> tuple[ScoredPairs, NeedTable, OfferTable]:
    """Tables and hand-made candidate pairs (need, offer, score): allocation alone under test."""
    needs = NeedTable.from_views([_need(i, r) for i, r in enumerate(remaining)])
    offers = OfferTable.from_views([_offer(j, a) for j, a in enumerate(available)])
    ni = np.array([p[0] for p in pairs], dtype=np.int64)
    oj = np.array([p[1] for p in pairs], dtype=np.int64)
    capacity = np.minimum(needs.remaining[ni], offers.available[oj])
    scored = ScoredPairs(ni, oj, np.array([p[2] for p in pairs], dtype=np.float64), capacity,
                         np.zeros(len(pairs), dtype=np.int64), 1)
    return scored, needs, offers


def assert_feasible(allocation: Allocation, scored: ScoredPairs, needs: NeedTable, offers: OfferTable) -> None:
    assert np.all(allocation.quantity > 0)
    assert np.allclose(allocation.quantity * 100, np.rint(allocation.quantity * 100))  # whole hundredths
    assert np.all(allocation.given_to_needs(len(needs)) <= needs.remaining + 1e-9)
    assert np.all(allocation.taken_from_offers(len(offers)) <= offers.available + 1e-9)
    candidates = set(zip(scored.need_idx.tolist(), scored.offer_idx.tolist(), strict=True))
    assert set(zip(allocation.need_idx.tolist(), allocation.offer_idx.tolist(), strict=True)) <= candidates


hundredths = st.integers(1, 100_000).map(lambda cents: cents / 100)


@st.composite
def random_instance(draw: st.DrawFn) -> tuple[ScoredPairs, NeedTable, OfferTable]:
    remaining = draw(st.lists(hundredths, min_size=1, max_size=8))
    available = draw(st.lists(hundredths, min_size=1, max_size=7))
    all_pairs = [(i, j) for i in range(len(remaining)) for j in range(len(available))]
    chosen = draw(st.lists(st.sampled_from(all_pairs), unique=True, max_size=len(all_pairs)))
    scores = draw(st.lists(st.floats(0.0, 1.0, allow_nan=False), min_size=len(chosen), max_size=len(chosen)))
    return instance(remaining, available, [(i, j, s) for (i, j), s in zip(chosen, scores, strict=True)])


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_instance())
def test_exact_is_feasible_beats_greedy_and_equals_the_lp(case: tuple[ScoredPairs, NeedTable, OfferTable]) -> None:
    scored, needs, offers = case
    exact = allocate(scored, needs, offers)
    greedy = greedy_allocation(scored, needs, offers)
    assert_feasible(exact, scored, needs, offers)
    assert_feasible(greedy, scored, needs, offers)
    assert exact.objective >= greedy.objective - exact.rounding_bound - 1e-12
    # Never above the LP optimum, and below it by no more than the documented cost-rounding bound
    # (LP_TOLERANCE covers HiGHS's own optimality tolerance).
    optimum = lp_optimum(scored, needs, offers)
    assert optimum - exact.rounding_bound - LP_TOLERANCE <= exact.objective <= optimum + LP_TOLERANCE
    whole = allocate(scored, needs, offers, decompose=False)
    assert optimum - whole.rounding_bound - LP_TOLERANCE <= whole.objective <= optimum + LP_TOLERANCE


def test_a_larger_instance_reaches_the_lp_optimum() -> None:
    rng = np.random.default_rng(3)
    remaining = np.round(np.exp(rng.uniform(np.log(100), np.log(1e6), 60)), 2).tolist()
    available = np.round(np.exp(rng.uniform(np.log(1e3), np.log(2e6), 40)), 2).tolist()
    pairs = [(i, j, float(rng.uniform(0.2, 0.9))) for i in range(60) for j in range(40) if rng.random() < 0.15]
    scored, needs, offers = instance(remaining, available, pairs)
    exact, optimum = allocate(scored, needs, offers), lp_optimum(scored, needs, offers)
    assert_feasible(exact, scored, needs, offers)
    assert exact.rounding_bound < 1e-3
    assert optimum - exact.rounding_bound - LP_TOLERANCE <= exact.objective <= optimum + LP_TOLERANCE


def test_lp_allocation_is_feasible_and_optimal() -> None:
    scored, needs, offers = instance([10, 20, 5], [12, 15], [(0, 0, 0.9), (1, 0, 0.5), (1, 1, 0.8), (2, 1, 0.4)])
    lp = lp_allocation(scored, needs, offers)
    assert_feasible(lp, scored, needs, offers)
    assert lp.objective == pytest.approx(allocate(scored, needs, offers).objective, abs=1e-9)


def test_exact_beats_greedy_where_greedy_is_short_sighted() -> None:
    # Offer 0 can serve need 0 (0.9) or need 1 (0.8); offer 1 only need 0 (0.85). Greedy gives offer 0 to
    # need 0 and leaves need 1 empty; the optimum sends offer 1 to need 0 and offer 0 to need 1.
    scored, needs, offers = instance([100, 100], [100, 100], [(0, 0, 0.9), (1, 0, 0.8), (0, 1, 0.85)])
    exact, greedy = allocate(scored, needs, offers), greedy_allocation(scored, needs, offers)
    assert greedy.objective == pytest.approx(0.9)
    assert exact.objective == pytest.approx(0.8 + 0.85, abs=exact.rounding_bound + 1e-12)
    assert [(p.need_id, p.offer_id, p.quantity, p.score) for p in exact.pairs(needs, offers)] == [
        ("n0", "o1", 100.0, 0.85), ("n1", "o0", 100.0, 0.8),
    ]


def test_objective_counts_shares_of_needs() -> None:
    # ¥5,000 covers a small need fully or 5% of a big one at the same score: the small need wins.
    scored, needs, offers = instance([5_000, 100_000], [5_000], [(0, 0, 0.6), (1, 0, 0.6)])
    exact = allocate(scored, needs, offers)
    assert exact.need_idx.tolist() == [0] and exact.quantity.tolist() == [5_000.0]
    assert exact.objective == pytest.approx(0.6)


def test_hundredths_are_kept_exactly() -> None:
    # 10.31 for needs of 10.25 and 0.07 at equal scores: the small one is covered first (a larger share).
    scored, needs, offers = instance([10.25, 0.07], [10.31], [(0, 0, 0.5), (1, 0, 0.5)])
    exact = allocate(scored, needs, offers)
    assert sorted(exact.quantity.tolist()) == [0.07, 10.24]


def test_components_are_solved_apart_with_the_same_result() -> None:
    # Three components: a one-to-one pair, a chain of two needs sharing an offer, and a 2×2 block.
    pairs = [(0, 0, 0.7), (1, 1, 0.6), (2, 1, 0.9), (3, 2, 0.5), (3, 3, 0.4), (4, 2, 0.8), (4, 3, 0.3)]
    scored, needs, offers = instance([50, 40, 30, 60, 25], [20, 50, 40, 40], pairs)
    split, whole = allocate(scored, needs, offers), allocate(scored, needs, offers, decompose=False)
    assert sum(c.components for c in split.components) == 3
    assert {c.method for c in split.components} == {"single", "min_cost_flow"}
    assert split.objective == pytest.approx(whole.objective, abs=split.rounding_bound + whole.rounding_bound)
    assert split.objective == pytest.approx(lp_optimum(scored, needs, offers), abs=split.rounding_bound + LP_TOLERANCE)
    assert set(split.timings) >= {"components", "solve", "total"}


def test_pairs_scoring_zero_get_nothing() -> None:
    scored, needs, offers = instance([10], [10], [(0, 0, 0.0)])
    assert len(allocate(scored, needs, offers)) == 0 and len(greedy_allocation(scored, needs, offers)) == 0


def test_nothing_to_allocate() -> None:
    scored, needs, offers = instance([10], [10], [])
    for allocation in (allocate(scored, needs, offers), greedy_allocation(scored, needs, offers),
                       lp_allocation(scored, needs, offers)):
        assert len(allocation) == 0 and allocation.objective == 0.0


# --- reasons and equity --------------------------------------------------------------------------

def test_unallocated_needs_say_why() -> None:
    ctx = Context(today=TODAY)
    villages = ["441302104201", "441302104202", "441302104203", "450123100201"]
    needs_v = [
        _need(0, 100, villages[0]),  # gets the offer
        _need(1, 100, villages[1]),  # same offer, lower score: capacity taken
        _need(2, 100, villages[2]),  # a category nobody offers
        _need(3, 100, villages[3]),  # out of every offer's range
    ]
    needs_v[0] = dataclasses.replace(needs_v[0], urgency=5)
    needs_v[2] = dataclasses.replace(needs_v[2], category="health")
    needs, offers = NeedTable.from_views(needs_v), OfferTable.from_views([_offer(0, 100)])
    scored = score_pairs(needs, offers, ctx)
    exact = allocate(scored, needs, offers)
    assert exact.need_idx.tolist() == [0]
    reasons = {u.need_id: u for u in unallocated_needs(needs, offers, scored, exact, ctx)}
    assert set(reasons) == {"n1", "n2", "n3"}
    assert reasons["n1"].code == UnallocatedCode.CAPACITY_TAKEN and "1" in reasons["n1"].text.en
    assert reasons["n2"].code == UnallocatedCode.NO_CANDIDATE
    assert reasons["n2"].rejection is not None and reasons["n2"].rejection.code == RejectionCode.NO_MATCHING_OFFER
    assert reasons["n3"].rejection is not None and reasons["n3"].rejection.code == RejectionCode.OUT_OF_RANGE


def test_zero_score_is_its_own_reason() -> None:
    scored, needs, offers = instance([10], [10], [(0, 0, 0.0)])
    reasons = unallocated_needs(needs, offers, scored, allocate(scored, needs, offers), Context(today=TODAY))
    assert [u.code for u in reasons] == [UnallocatedCode.ZERO_SCORE]


def test_equity_report() -> None:
    scored, needs, offers = instance([100, 100, 100], [100], [(0, 0, 0.9), (1, 0, 0.5)])
    report = equity_report(needs, allocate(scored, needs, offers))
    assert report.villages_with_open_needs == 3 and report.villages_reached == 1
    assert report.share_reached == pytest.approx(1 / 3)
    assert report.gini_value_per_beneficiary == pytest.approx(gini(np.array([0.0, 0.0, 1.0])))


def test_gini() -> None:
    assert gini(np.array([])) == 0.0
    assert gini(np.array([0.0, 0.0])) == 0.0
    assert gini(np.array([3.0, 3.0, 3.0])) == pytest.approx(0.0)
    assert gini(np.array([0.0, 1.0])) == pytest.approx(0.5)
    assert gini(np.array([0.0, 0.0, 0.0, 1.0])) == pytest.approx(0.75)

