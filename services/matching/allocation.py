"""Global allocation of a match run: how much of which offer goes to which need (a transportation problem).

The objective. For candidate pairs (i, j) with score sᵢⱼ ∈ [0, 1], allocate xᵢⱼ ≥ 0 to

    maximise   Σ sᵢⱼ · xᵢⱼ / rᵢ
    subject to Σⱼ xᵢⱼ ≤ rᵢ (need i's remaining),  Σᵢ xᵢⱼ ≤ aⱼ (offer j's available),  xᵢⱼ = 0 off the candidates.

Each unit given is worth its pair's score, counted as a share of what the need still lacks: covering a need
completely with a perfect pair is worth 1 whatever its size or unit. Why divide by rᵢ: candidate pairs
always share kind and unit, but needs within a unit differ by orders of magnitude (a ¥5,000 set of
dictionaries, a ¥1,000,000 road); a per-yuan objective would let one big need soak up a county's funds
ahead of ten small ones at the same score. Per share of need, the objective reads as "needs covered,
weighted by how good the match is", is dimensionless (so runs over several kinds add up) and lies in
[0, number of needs]. Among pairs of one need, the higher score always gets the units first.

Solved exactly as a min-cost flow (OR-Tools' cost-scaling SimpleMinCostFlow), which needs integers:
- flows are in hundredths of a unit: the contract allows at most two decimals (UNIT_DECIMALS), so
  rᵢ·100 and aⱼ·100 are integers and, the constraint matrix being totally unimodular, so is an optimum;
- the unit cost of arc (j → i) is cᵢⱼ = -round(K · sᵢⱼ / (100·rᵢ)), with K chosen per solve as large as
  int64 arithmetic inside the solver allows (see `_cost_scale`). Rounding moves each cost by at most ½,
  so the flow found is at most F/K below the true optimum, F being the most that can flow in that solve;
  `Allocation.rounding_bound` adds these up. It is a worst case (~0.005 on objectives of 14,000-26,000
  in the 50k benchmark); against HiGHS's LP optimum the gap found is usually 0.

The graph: each offer node supplies aⱼ; arcs offer → need (capacity min(rᵢ, aⱼ), cost cᵢⱼ), need → sink
(capacity rᵢ), and offer → sink (capacity aⱼ, cost 0) so that giving nothing is always possible.
For speed the candidate graph is first split into connected components: a one-need-one-offer component
is solved directly in NumPy, the rest by min-cost flow, small components packed together into one solve
(they stay independent; packing saves the per-solve overhead) and big ones alone.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
from ortools.graph.python import min_cost_flow
from scipy import sparse
from scipy.optimize import linprog
from scipy.sparse.csgraph import connected_components

from services.common.messages import Text
from services.matching.scoring import (
    BoolArray,
    Context,
    FloatArray,
    IntArray,
    NeedTable,
    OfferTable,
    Rejection,
    ScoredPairs,
    explain_rejection,
)

HUNDREDTHS = 100  # flows are integers in 0.01 of a unit
MIN_SCORE = 1e-9  # pairs scoring less are worth nothing (scores are shown to 4 decimals)
_MAX_UNIT_COST = 10**12  # resolution of the largest per-hundredth weight of a solve (see _cost_scale)
_BATCH_NODES = 4_000  # components smaller than this are packed together up to this many nodes per solve
_INT64_HEADROOM = 2**62


@dataclass(frozen=True, slots=True)
class ComponentStats:
    """One solve: a single component, or several small ones packed together (`components` says how many)."""

    components: int
    needs: int
    offers: int
    pairs: int
    method: str  # "single" (one need, one offer: NumPy), "min_cost_flow", "greedy", "linprog"
    objective: float
    seconds: float


@dataclass(frozen=True, slots=True)
class AllocatedPair:
    need_id: str
    offer_id: str
    quantity: float
    score: float


@dataclass(frozen=True, slots=True, eq=False)
class Allocation:
    """Quantities given per pair (only those > 0), with rows into the tables that were allocated."""

    need_idx: IntArray
    offer_idx: IntArray
    quantity: FloatArray  # in the need's (= the offer's) unit, multiples of 0.01
    score: FloatArray
    objective: float  # Σ score · quantity / need's remaining (see the module's docstring)
    rounding_bound: float  # the exact optimum is at most objective + rounding_bound
    method: str
    components: tuple[ComponentStats, ...] = ()
    timings: Mapping[str, float] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.need_idx.size)

    def pairs(self, needs: NeedTable, offers: OfferTable) -> list[AllocatedPair]:
        """The allocation as proposals, by need then offer row."""
        order = np.lexsort((self.offer_idx, self.need_idx))
        return [
            AllocatedPair(needs.views[i].id, offers.views[j].id, float(q), float(s))
            for i, j, q, s in zip(
                self.need_idx[order].tolist(), self.offer_idx[order].tolist(),
                self.quantity[order].tolist(), self.score[order].tolist(), strict=True,
            )
        ]

    def given_to_needs(self, n_needs: int) -> FloatArray:
        return np.asarray(np.bincount(self.need_idx, weights=self.quantity, minlength=n_needs), dtype=np.float64)

    def taken_from_offers(self, n_offers: int) -> FloatArray:
        return np.asarray(np.bincount(self.offer_idx, weights=self.quantity, minlength=n_offers), dtype=np.float64)


@dataclass(frozen=True, slots=True, eq=False)
class _Problem:
    """The pairs worth allocating (score ≥ MIN_SCORE, capacity ≥ 0.01), in hundredths."""

    ni: IntArray
    oj: IntArray
    score: FloatArray
    weight: FloatArray  # objective per hundredth: score / (100 · remaining)
    need_cap: IntArray  # per need row, hundredths
    offer_cap: IntArray  # per offer row, hundredths

    @classmethod
    def of(cls, scored: ScoredPairs, needs: NeedTable, offers: OfferTable) -> _Problem:
        if scored.need_idx.size and (scored.need_idx.max() >= len(needs) or scored.offer_idx.max() >= len(offers)):
            raise ValueError("the scored pairs index other tables than those given")
        need_cap = np.where(needs.eligible, np.rint(np.maximum(needs.remaining, 0) * HUNDREDTHS), 0).astype(np.int64)
        offer_cap = np.where(offers.eligible, np.rint(np.maximum(offers.available, 0) * HUNDREDTHS), 0).astype(np.int64)
        ni, oj = scored.need_idx, scored.offer_idx
        useful = (scored.score >= MIN_SCORE) & (need_cap[ni] > 0) & (offer_cap[oj] > 0)
        ni, oj, score = ni[useful], oj[useful], scored.score[useful]
        return cls(ni, oj, score, score / need_cap[ni], need_cap, offer_cap)

    def capacity(self) -> IntArray:
        return np.minimum(self.need_cap[self.ni], self.offer_cap[self.oj])

    def finish(
        self, flows: IntArray, method: str, bound: float, stats: list[ComponentStats], timings: dict[str, float]
    ) -> Allocation:
        given = flows > 0
        quantity = flows[given] / HUNDREDTHS
        objective = math.fsum((self.weight[given] * flows[given]).tolist())
        return Allocation(
            self.ni[given], self.oj[given], quantity, self.score[given], objective, bound, method, tuple(stats), timings
        )


# --- exact: min-cost flow over components ---------------------------------------------------------

def allocate(scored: ScoredPairs, needs: NeedTable, offers: OfferTable, *, decompose: bool = True) -> Allocation:
    """The exact optimum of the objective above (up to `rounding_bound`), by min-cost flow.

    `decompose=False` solves the whole candidate graph at once (for comparison and tests).
    """
    started = time.perf_counter()
    problem = _Problem.of(scored, needs, offers)
    flows = np.zeros(problem.ni.size, dtype=np.int64)
    stats: list[ComponentStats] = []
    label = _component_of_pairs(problem, len(needs)) if decompose else np.zeros(problem.ni.size, dtype=np.int64)
    split = time.perf_counter()
    bound = 0.0
    for pairs, count, single in _solves(label, problem, decompose):
        t0 = time.perf_counter()
        if single:
            flows[pairs] = problem.capacity()[pairs]
            method = "single"
        else:
            flows[pairs], solve_bound = _min_cost_flow(problem, pairs)
            bound += solve_bound
            method = "min_cost_flow"
        stats.append(_stats(problem, pairs, flows, count, method, time.perf_counter() - t0))
    done = time.perf_counter()
    timings = {"components": split - started, "solve": done - split, "total": done - started}
    return problem.finish(flows, "min_cost_flow", bound, stats, timings)


def _component_of_pairs(problem: _Problem, n_needs: int) -> IntArray:
    """Connected component of each pair in the bipartite graph needs ∪ offers."""
    n_offers = problem.offer_cap.size
    nodes = n_needs + n_offers
    graph = sparse.coo_matrix(
        (np.ones(problem.ni.size, dtype=np.int8), (problem.ni, n_needs + problem.oj)), shape=(nodes, nodes)
    ).tocsr()
    _, labels = connected_components(graph, directed=False)
    return np.asarray(labels[problem.ni], dtype=np.int64)


def _solves(label: IntArray, problem: _Problem, decompose: bool) -> Iterator[tuple[IntArray, int, bool]]:
    """Pair positions of each solve, how many components it covers, and whether it is one need-one offer."""
    order = np.argsort(label, kind="stable")
    _, starts, sizes = np.unique(label[order], return_index=True, return_counts=True)
    singles = order[starts[sizes == 1]]
    if singles.size:
        # Every one-pair component at once: its optimum is to give min(remaining, available).
        yield singles, int(singles.size), True
    batch: list[IntArray] = []
    batch_nodes = 0
    for start, size in zip(starts[sizes > 1].tolist(), sizes[sizes > 1].tolist(), strict=True):
        pairs = order[start:start + size]
        nodes = np.unique(problem.ni[pairs]).size + np.unique(problem.oj[pairs]).size
        if decompose and nodes >= _BATCH_NODES:
            yield pairs, 1, False
            continue
        batch.append(pairs)
        batch_nodes += nodes
        if decompose and batch_nodes >= _BATCH_NODES:
            yield np.concatenate(batch), len(batch), False
            batch, batch_nodes = [], 0
    if batch:
        yield np.concatenate(batch), len(batch), False


def _cost_scale(max_weight: float, nodes: int) -> float:
    """K such that the largest unit cost is as fine as useful yet safe from int64 overflow in the solver.

    OR-Tools multiplies costs by (nodes + 1) and node potentials may reach about nodes times that, so the
    largest cost must stay well below 2^62 / (nodes + 1)^2 (a solve reporting BAD_COST_RANGE anyway is
    retried coarser). Finer costs add cost-scaling phases: measured on 50k × 50k, going from 10^9 to the
    limit (~10^10 for a 12k-node component) costs ~8% more time and tightens the rounding bound ~50×.
    """
    largest = min(_MAX_UNIT_COST, _INT64_HEADROOM // (4 * (nodes + 1) ** 2))
    return max(largest, 1) / max_weight


def _min_cost_flow(problem: _Problem, pairs: IntArray) -> tuple[IntArray, float]:
    """Optimal flows (hundredths) on these pairs, and the bound on what cost rounding may have lost."""
    # Arcs in (offer, need) order: the solver then walks each node's arcs in memory order (~20% faster).
    order = np.lexsort((problem.ni[pairs], problem.oj[pairs]))
    pairs = pairs[order]
    need_rows, need_local = np.unique(problem.ni[pairs], return_inverse=True)
    offer_rows, offer_local = np.unique(problem.oj[pairs], return_inverse=True)
    n_offers, n_needs = offer_rows.size, need_rows.size
    sink = n_offers + n_needs
    supply = problem.offer_cap[offer_rows]
    weight = problem.weight[pairs]
    scale = _cost_scale(float(weight.max()), sink + 1)
    for _ in range(4):  # should the solver still report an overflow, retry coarser
        solver = min_cost_flow.SimpleMinCostFlow()
        arcs = solver.add_arcs_with_capacity_and_unit_cost(
            np.concatenate((offer_local, n_offers + np.arange(n_needs), np.arange(n_offers))).astype(np.int32),
            np.concatenate((n_offers + need_local, np.full(n_needs + n_offers, sink))).astype(np.int32),
            np.concatenate((problem.capacity()[pairs], problem.need_cap[need_rows], supply)).astype(np.int64),
            np.concatenate((-np.rint(weight * scale), np.zeros(n_needs + n_offers))).astype(np.int64),
        )
        solver.set_nodes_supplies(
            np.arange(sink + 1, dtype=np.int32), np.concatenate((supply, np.zeros(n_needs), [-supply.sum()])).astype(np.int64)
        )
        status = solver.solve()
        if status == solver.OPTIMAL:
            flows = np.empty(pairs.size, dtype=np.int64)
            flows[order] = solver.flows(arcs[:pairs.size])
            most = min(int(supply.sum()), int(problem.need_cap[need_rows].sum()))
            return flows, most / scale
        if status != solver.BAD_COST_RANGE:
            raise RuntimeError(f"min-cost flow failed with status {status}")
        scale /= 1024
    raise RuntimeError("min-cost flow: costs out of range even after rescaling")


def _stats(
    problem: _Problem, pairs: IntArray, flows: IntArray, components: int, method: str, seconds: float
) -> ComponentStats:
    return ComponentStats(
        components=components,
        needs=int(np.unique(problem.ni[pairs]).size),
        offers=int(np.unique(problem.oj[pairs]).size),
        pairs=int(pairs.size),
        method=method,
        objective=float(np.dot(problem.weight[pairs], flows[pairs])),
        seconds=seconds,
    )


# --- for comparison: greedy and the LP ------------------------------------------------------------

def greedy_allocation(scored: ScoredPairs, needs: NeedTable, offers: OfferTable) -> Allocation:
    """Highest score first (ties: need row, offer row), each pair filled as far as both sides allow."""
    started = time.perf_counter()
    problem = _Problem.of(scored, needs, offers)
    order = np.lexsort((problem.oj, problem.ni, -problem.score))
    need_left = problem.need_cap.tolist()
    offer_left = problem.offer_cap.tolist()
    flows = np.zeros(problem.ni.size, dtype=np.int64)
    given: list[int] = []
    amounts: list[int] = []
    for p, i, j in zip(order.tolist(), problem.ni[order].tolist(), problem.oj[order].tolist(), strict=True):
        amount = min(need_left[i], offer_left[j])
        if amount > 0:
            need_left[i] -= amount
            offer_left[j] -= amount
            given.append(p)
            amounts.append(amount)
    flows[np.asarray(given, dtype=np.int64)] = np.asarray(amounts, dtype=np.int64)
    seconds = time.perf_counter() - started
    stats = [_stats(problem, np.arange(problem.ni.size), flows, 1, "greedy", seconds)]
    return problem.finish(flows, "greedy", 0.0, stats, {"total": seconds})


def lp_allocation(scored: ScoredPairs, needs: NeedTable, offers: OfferTable) -> Allocation:
    """The same problem as a linear programme solved by HiGHS: the reference optimum for tests."""
    started = time.perf_counter()
    problem = _Problem.of(scored, needs, offers)
    # HiGHS returns a vertex, integral here (total unimodularity); rint only removes float dust.
    flows = np.rint(_lp(problem)[0]).astype(np.int64)
    seconds = time.perf_counter() - started
    stats = [_stats(problem, np.arange(problem.ni.size), flows, 1, "linprog", seconds)]
    return problem.finish(flows, "linprog", 0.0, stats, {"total": seconds})


def lp_optimum(scored: ScoredPairs, needs: NeedTable, offers: OfferTable) -> float:
    """The LP's optimal objective value, as HiGHS reports it."""
    return _lp(_Problem.of(scored, needs, offers))[1]


def _lp(problem: _Problem) -> tuple[FloatArray, float]:
    """Optimal flows (hundredths) and objective of the LP.

    Solved in shares of each need, yᵢⱼ = xᵢⱼ / rᵢ: the objective's coefficients are then the scores
    themselves. Per hundredth they can be ~1e-9 (a score spread over a big need), under HiGHS's tolerances,
    which would treat them as 0; in shares the LP is well conditioned.
    """
    n_pairs = problem.ni.size
    if n_pairs == 0:
        return np.zeros(0, dtype=np.float64), 0.0
    need_rows, need_of_pair = np.unique(problem.ni, return_inverse=True)
    offer_rows, offer_of_pair = np.unique(problem.oj, return_inverse=True)
    columns = np.arange(n_pairs)
    remaining = problem.need_cap[problem.ni].astype(np.float64)
    shares = sparse.vstack((  # Σⱼ yᵢⱼ ≤ 1 and Σᵢ yᵢⱼ·rᵢ/aⱼ ≤ 1
        sparse.csr_matrix((np.ones(n_pairs), (need_of_pair, columns)), shape=(need_rows.size, n_pairs)),
        sparse.csr_matrix(
            (remaining / problem.offer_cap[problem.oj], (offer_of_pair, columns)), shape=(offer_rows.size, n_pairs)
        ),
    )).tocsr()
    bounds = np.column_stack((np.zeros(n_pairs), problem.capacity() / remaining))
    result = linprog(
        -problem.score, A_ub=shares, b_ub=np.ones(need_rows.size + offer_rows.size), bounds=bounds, method="highs"
    )
    if result.status != 0:
        raise RuntimeError(f"linprog failed: {result.message}")
    return np.asarray(result.x, dtype=np.float64) * remaining, float(-result.fun)


# --- what was left out, and how evenly -----------------------------------------------------------

class UnallocatedCode(StrEnum):
    NO_CANDIDATE = "no_candidate"  # no offer passes the hard filters: see `rejection`
    CAPACITY_TAKEN = "capacity_taken"  # its candidates' capacity went to higher-valued pairs
    ZERO_SCORE = "zero_score"  # its candidates all score 0, so giving to it adds nothing
    NOT_SELECTED = "not_selected"  # capacity was left yet unused: only within the rounding bound


@dataclass(frozen=True, slots=True)
class Unallocated:
    need_idx: int
    need_id: str
    code: UnallocatedCode
    text: Text
    rejection: Rejection | None = None


def unallocated_needs(
    needs: NeedTable, offers: OfferTable, scored: ScoredPairs, allocation: Allocation, context: Context
) -> list[Unallocated]:
    """Every open need with something left that the allocation gave nothing, and why."""
    given = allocation.given_to_needs(len(needs))
    offer_left = np.rint((offers.available - allocation.taken_from_offers(len(offers))) * HUNDREDTHS)
    useful = scored.score >= MIN_SCORE
    has_pair = np.bincount(scored.need_idx, minlength=len(needs)) > 0
    has_useful = np.bincount(scored.need_idx[useful], minlength=len(needs)) > 0
    open_left = np.bincount(scored.need_idx[useful & (offer_left[scored.offer_idx] >= 1)], minlength=len(needs)) > 0
    candidates = np.bincount(scored.need_idx[useful], minlength=len(needs))
    result: list[Unallocated] = []
    for i in np.flatnonzero(needs.eligible & (given <= 0)).tolist():
        view = needs.views[i]
        if not has_pair[i]:
            rejection = explain_rejection(view, offers, context)
            text = rejection.text if rejection else Text("没有符合条件的资源", "no offer passes the hard filters")
            result.append(Unallocated(i, view.id, UnallocatedCode.NO_CANDIDATE, text, rejection))
        elif not has_useful[i]:
            result.append(Unallocated(i, view.id, UnallocatedCode.ZERO_SCORE, _ZERO_SCORE))
        elif not open_left[i]:
            text = Text(
                f"{candidates[i]} 个候选资源的余量已分配给得分更高的需求",
                f"the capacity of its {candidates[i]} candidate offers went to higher-valued needs",
            )
            result.append(Unallocated(i, view.id, UnallocatedCode.CAPACITY_TAKEN, text))
        else:
            result.append(Unallocated(i, view.id, UnallocatedCode.NOT_SELECTED, _NOT_SELECTED))
    return result


_ZERO_SCORE = Text("候选资源得分均为 0", "every candidate offer scores 0")
_NOT_SELECTED = Text("候选资源仍有余量，但分配未选用（在取整误差内）", "candidates had capacity left but were not used (within rounding)")

# Rough CNY per unit, to compare what villages received across kinds (reports only; pass real ones).
DEFAULT_UNIT_VALUES_CNY: Mapping[str, float] = {
    "CNY": 1.0, "item": 100.0, "set": 500.0, "kg": 10.0, "book": 30.0, "box": 100.0,
    "person_day": 300.0, "session": 500.0, "trainee": 1000.0,
}


@dataclass(frozen=True, slots=True)
class EquityReport:
    villages_with_open_needs: int
    villages_reached: int
    share_reached: float  # villages reached / villages with open needs
    gini_value_per_beneficiary: float  # 0 = every village got the same value per beneficiary, → 1 = one got all


def equity_report(
    needs: NeedTable, allocation: Allocation, *, unit_values: Mapping[str, float] = DEFAULT_UNIT_VALUES_CNY
) -> EquityReport:
    """How evenly the allocation spreads over the villages that have open needs."""
    open_rows = needs.eligible
    unit_value = np.fromiter((unit_values.get(v.unit, 1.0) for v in needs.views), np.float64, len(needs))
    value = np.bincount(allocation.need_idx, weights=allocation.quantity * unit_value[allocation.need_idx], minlength=len(needs))
    villages = len(needs.villages)
    has_open = np.bincount(needs.village_slot[open_rows], minlength=villages) > 0
    people = np.bincount(needs.village_slot[open_rows], weights=np.maximum(needs.beneficiaries[open_rows], 1), minlength=villages)
    received = np.bincount(needs.village_slot, weights=value, minlength=villages)
    reached: BoolArray = has_open & (received > 0)
    per_person = received[has_open] / people[has_open]
    total = int(has_open.sum())
    return EquityReport(total, int(reached.sum()), reached.sum() / total if total else 0.0, gini(per_person))


def gini(values: FloatArray) -> float:
    """Gini coefficient of non-negative values (0 for none, or when all are 0)."""
    ordered = np.sort(np.asarray(values, dtype=np.float64))
    n, total = ordered.size, float(ordered.sum())
    if n == 0 or total <= 0:
        return 0.0
    ranks = np.arange(1, n + 1)
    return float(2.0 * np.dot(ranks, ordered) / (n * total) - (n + 1.0) / n)
