"""Candidate generation and scoring: hard filters, soft-score directions, explanations, rejections."""

from __future__ import annotations

import dataclasses
import math
from datetime import date, timedelta
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.matching.rules import RULES, RuleSet, Weights
from services.matching.scoring import (
    Candidate,
    Context,
    NeedTable,
    NeedView,
    OfferTable,
    OfferView,
    RejectionCode,
    candidates_for_need,
    candidates_for_offer,
    check_pair,
    explain_pairs,
    explain_rejection,
    normalise_skill,
    score_pairs,
)

TODAY = date(2025, 3, 1)
HUIZHOU = "441302"  # 惠州市惠城区
VILLAGE = "441302104201"  # a village of 芦洲镇 (township 441302104)
LAT, LON = 23.11, 114.41
KM_PER_DEGREE_LAT = 111.2


def need(**changes: Any) -> NeedView:
    base = NeedView(
        id="n1", category="disaster", kind="goods", unit="kg", remaining=1000.0, quantity=1000.0, urgency=3,
        needed_by=TODAY + timedelta(days=30), village_code=VILLAGE, lat=LAT, lon=LON, beneficiaries=500,
        beneficiary_groups=("elderly",),
    )
    return dataclasses.replace(base, **changes)


def offer(**changes: Any) -> OfferView:
    base = OfferView(
        id="o1", organisation_id="org1", categories=("disaster",), kind="goods", unit="kg", available=600.0,
        region_codes=(HUIZHOU,), lat=LAT + 0.1, lon=LON, available_from=TODAY - timedelta(days=10),
        available_until=TODAY + timedelta(days=90), organisation_grade=3,
    )
    return dataclasses.replace(base, **changes)


def context(**changes: Any) -> Context:
    return dataclasses.replace(Context(today=TODAY), **changes)


def north(km: float) -> float:
    return LAT + km / KM_PER_DEGREE_LAT


def ranked(n: NeedView, offers: list[OfferView], ctx: Context | None = None, **kwargs: Any) -> list[Candidate]:
    return candidates_for_need(n, OfferTable.from_views(offers), ctx or context(), **kwargs)


def rule(candidate: Candidate, name: str) -> float:
    return next(e.score for e in candidate.explanation if e.rule == name)


def only_score(n: NeedView, o: OfferView, ctx: Context | None = None, ruleset: RuleSet | None = None) -> Candidate:
    found = ranked(n, [o], ctx, ruleset=ruleset or RuleSet())
    assert len(found) == 1, check_pair(n, o, ctx or context())
    return found[0]


# --- hard filters --------------------------------------------------------------------------------

HARD_FILTER_CASES: list[tuple[str, dict[str, Any], dict[str, Any], RejectionCode | None]] = [
    ("baseline", {}, {}, None),
    ("category among several", {}, {"categories": ("education", "disaster")}, None),
    ("other category", {}, {"categories": ("education",)}, RejectionCode.NO_MATCHING_OFFER),
    ("other kind", {"kind": "funds", "unit": "CNY"}, {}, RejectionCode.NO_MATCHING_OFFER),
    ("other unit", {}, {"unit": "box"}, RejectionCode.NO_MATCHING_OFFER),
    ("need is a draft", {"status": "draft"}, {}, RejectionCode.NEED_NOT_OPEN),
    ("nothing left of the need", {"remaining": 0.0}, {}, RejectionCode.NOTHING_LEFT),
    ("offer withdrawn", {}, {"status": "withdrawn"}, RejectionCode.NO_MATCHING_OFFER),
    ("offer fully reserved", {}, {"available": 0.0}, RejectionCode.CAPACITY_TAKEN),
    ("other county", {}, {"region_codes": ("450123",)}, RejectionCode.OUT_OF_RANGE),
    ("province prefix", {}, {"region_codes": ("44",)}, None),
    ("city prefix", {}, {"region_codes": ("4413",)}, None),
    ("township prefix", {}, {"region_codes": ("441302104",)}, None),
    ("other township", {}, {"region_codes": ("441302105",)}, RejectionCode.OUT_OF_RANGE),
    ("the village itself", {}, {"region_codes": (VILLAGE,)}, None),
    ("no region, no radius", {}, {"region_codes": ()}, RejectionCode.OUT_OF_RANGE),
    ("within radius", {}, {"region_codes": (), "radius_km": 30.0, "lat": north(10)}, None),
    ("beyond radius", {}, {"region_codes": (), "radius_km": 30.0, "lat": north(50)}, RejectionCode.OUT_OF_RANGE),
    ("radius, other region", {}, {"region_codes": ("450123",), "radius_km": 30.0, "lat": north(10)}, None),
    ("radius without coordinates", {}, {"region_codes": (), "radius_km": 30.0, "lat": None, "lon": None},
     RejectionCode.OUT_OF_RANGE),
    ("need without coordinates, radius", {"lat": None, "lon": None}, {"region_codes": (), "radius_km": 30.0},
     RejectionCode.OUT_OF_RANGE),
    ("deadline passed", {"needed_by": TODAY - timedelta(days=1)}, {}, RejectionCode.DEADLINE_PASSED),
    ("due today", {"needed_by": TODAY}, {}, None),
    ("offer ended", {}, {"available_until": TODAY - timedelta(days=1)}, RejectionCode.WINDOW_CLOSED),
    ("offer starts after the deadline", {}, {"available_from": TODAY + timedelta(days=31)}, RejectionCode.WINDOW_CLOSED),
    ("offer starts on the deadline", {}, {"available_from": TODAY + timedelta(days=30)}, None),
    ("open-ended offer", {}, {"available_from": None, "available_until": None}, None),
    ("other target group", {}, {"beneficiary_groups": ("disabled",)}, RejectionCode.GROUPS_MISMATCH),
    ("need names general", {"beneficiary_groups": ("general",)}, {"beneficiary_groups": ("disabled",)}, None),
    ("groups intersect", {"beneficiary_groups": ("elderly", "disabled")}, {"beneficiary_groups": ("disabled",)}, None),
    ("offer targets general", {}, {"beneficiary_groups": ("general",)}, None),
    ("need names no group", {"beneficiary_groups": ()}, {"beneficiary_groups": ("disabled",)},
     RejectionCode.GROUPS_MISMATCH),
    ("skills brought", {"kind": "service", "unit": "person_day", "skills": ("电器维修",)},
     {"kind": "service", "unit": "person_day", "skills": ("心理辅导", "电器 维修")}, None),
    ("skills missing", {"kind": "service", "unit": "person_day", "skills": ("电器维修", "数控")},
     {"kind": "service", "unit": "person_day", "skills": ("电器维修",)}, RejectionCode.SKILLS_MISSING),
    ("skills by case", {"kind": "training", "unit": "trainee", "skills": ("CNC",)},
     {"kind": "training", "unit": "trainee", "skills": ("ｃｎｃ",)}, None),
    ("skills of goods are ignored", {"skills": ("电器维修",)}, {}, None),
]


@pytest.mark.parametrize(("need_changes", "offer_changes", "expected"), [c[1:] for c in HARD_FILTER_CASES],
                         ids=[c[0] for c in HARD_FILTER_CASES])
def test_each_hard_filter(need_changes: dict[str, Any], offer_changes: dict[str, Any], expected: RejectionCode | None) -> None:
    n, o = need(**need_changes), offer(**offer_changes)
    assert check_pair(n, o, context()) == expected
    found = ranked(n, [o])
    assert (len(found) == 1) == (expected is None)
    rejection = explain_rejection(n, OfferTable.from_views([o]), context())
    assert (rejection.code if rejection else None) == expected


def test_skills_are_normalised() -> None:
    assert normalise_skill(" CNC  Machining ") == normalise_skill("cncmachining") == normalise_skill("ＣＮＣ machining")


# Small worlds where every filter can go either way: the vectorised generation must agree with check_pair.
_VILLAGES = ("441302104201", "441302104202", "441302105201", "441303101201", "450123100201")
_COORDS = {code: (23.1 + 0.05 * k, 114.4 + 0.04 * k) for k, code in enumerate(_VILLAGES[:4])} | {
    "450123100201": (22.9, 107.7),
}
_PREFIXES = ("44", "4413", "441302", "441303", "441302104", "441302104201", "450123", "1234")
_KIND_UNITS = (("goods", "kg"), ("goods", "kg"), ("service", "person_day"), ("service", "person_day"), ("goods", "book"))
_GROUP_NAMES = ("elderly", "disabled", "children", "general")
_SKILL_NAMES = ("电器维修", "数控", "心理辅导")


@st.composite
def small_world(draw: st.DrawFn) -> tuple[list[NeedView], list[OfferView], Context]:
    needs = []
    for i in range(draw(st.integers(1, 6))):
        kind, unit = draw(st.sampled_from(_KIND_UNITS))
        village = draw(st.sampled_from(_VILLAGES))
        lat, lon = _COORDS[village]
        needs.append(NeedView(
            id=f"n{i}", category=draw(st.sampled_from(("disaster", "disaster", "education"))), kind=kind, unit=unit,
            remaining=draw(st.sampled_from((100.0, 5.0, 100.0, 100.0, 100.0, 0.0))), quantity=100.0, urgency=draw(st.integers(1, 5)),
            needed_by=TODAY + timedelta(days=draw(st.integers(-3, 60))), village_code=village,
            lat=lat if draw(st.integers(0, 5)) else None, lon=lon, beneficiaries=draw(st.integers(0, 3000)),
            beneficiary_groups=tuple(draw(st.sets(st.sampled_from(_GROUP_NAMES), max_size=2))),
            skills=tuple(draw(st.sets(st.sampled_from(_SKILL_NAMES), max_size=2))),
            status=draw(st.sampled_from(("open",) * 9 + ("draft",))),
        ))
    offers = []
    for j in range(draw(st.integers(1, 6))):
        kind, unit = draw(st.sampled_from(_KIND_UNITS))
        village = draw(st.sampled_from(_VILLAGES))
        offers.append(OfferView(
            id=f"o{j}", organisation_id=f"org{draw(st.integers(0, 2))}",
            categories=tuple(draw(st.sets(st.sampled_from(("disaster", "education", "health")), min_size=1, max_size=3))),
            kind=kind, unit=unit, available=draw(st.sampled_from((200.0, 10.0, 0.0))),
            status=draw(st.sampled_from(("active",) * 9 + ("withdrawn",))),
            region_codes=tuple(draw(st.sets(st.sampled_from(_PREFIXES), min_size=draw(st.sampled_from((1, 0))), max_size=2))),
            radius_km=draw(st.sampled_from((15.0, None, 5.0, 60.0))),
            lat=_COORDS[village][0], lon=_COORDS[village][1],
            available_from=draw(st.sampled_from((None, TODAY - timedelta(days=5), TODAY + timedelta(days=20)))),
            available_until=draw(st.sampled_from((None, TODAY - timedelta(days=1), TODAY + timedelta(days=40)))),
            beneficiary_groups=tuple(draw(st.sets(st.sampled_from(_GROUP_NAMES), max_size=2))),
            skills=tuple(draw(st.sets(st.sampled_from(_SKILL_NAMES), max_size=3))),
            organisation_grade=draw(st.sampled_from((None, 1, 3, 5))),
        ))
    pairings = frozenset(draw(st.sets(st.tuples(st.sampled_from(("org0", "org1")), st.sampled_from(_VILLAGES)), max_size=3)))
    return needs, offers, Context(today=TODAY, pairings=pairings, received_value_by_village={_VILLAGES[0]: 35_000.0})


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_world())
def test_vectorised_generation_agrees_with_check_pair(world: tuple[list[NeedView], list[OfferView], Context]) -> None:
    needs, offers, ctx = world
    scored = score_pairs(NeedTable.from_views(needs), OfferTable.from_views(offers), ctx)
    found = set(zip(scored.need_idx.tolist(), scored.offer_idx.tolist(), strict=True))
    expected = {(i, j) for i, n in enumerate(needs) for j, o in enumerate(offers) if check_pair(n, o, ctx) is None}
    assert found == expected
    assert len(found) == len(scored)  # no pair twice
    assert np.all((scored.score >= 0) & (scored.score <= 1))
    for i, n in enumerate(needs):
        has = any(pair[0] == i for pair in found)
        assert (explain_rejection(n, OfferTable.from_views(offers), ctx) is None) == has
        assert len(candidates_for_need(n, OfferTable.from_views(offers), ctx, limit=100)) == sum(p[0] == i for p in found)


# --- soft scores ---------------------------------------------------------------------------------

def test_nearer_scores_higher_than_farther() -> None:
    near = only_score(need(), offer(region_codes=(), radius_km=80.0, lat=north(5)))
    far = only_score(need(), offer(region_codes=(), radius_km=80.0, lat=north(40)))
    assert rule(near, "proximity") > rule(far, "proximity")
    assert near.score > far.score


def test_a_narrower_shared_region_scores_higher() -> None:
    scores = [rule(only_score(need(), offer(region_codes=(code,), lat=None, lon=None)), "proximity")
              for code in ("44", "4413", HUIZHOU, "441302104", VILLAGE)]
    assert scores == sorted(scores) and len(set(scores)) == 5
    assert scores[-1] == 1.0  # the offer serves this very village


def test_more_urgent_scores_higher() -> None:
    assert rule(only_score(need(urgency=5), offer()), "urgency") == 1.0
    assert rule(only_score(need(urgency=1), offer()), "urgency") == 0.0
    assert only_score(need(urgency=4), offer()).score > only_score(need(urgency=2), offer()).score


def test_sooner_deadline_scores_higher() -> None:
    soon = only_score(need(needed_by=TODAY + timedelta(days=9)), offer())
    late = only_score(need(needed_by=TODAY + timedelta(days=60)), offer())
    assert rule(soon, "deadline") > rule(late, "deadline")


def test_paired_scores_higher_than_unpaired() -> None:
    paired = only_score(need(), offer(), context(pairings=frozenset({("org1", VILLAGE)})))
    unpaired = only_score(need(), offer(), context(pairings=frozenset({("org1", "441302104202"), ("org2", VILLAGE)})))
    assert rule(paired, "pairing") == 1.0 and rule(unpaired, "pairing") == 0.0


def test_higher_grade_scores_higher_and_ungraded_is_neutral() -> None:
    grades = [rule(only_score(need(), offer(organisation_grade=g)), "grade") for g in (1, 2, 3, 4, 5)]
    assert grades == sorted(grades) and len(set(grades)) == 5
    ungraded = rule(only_score(need(), offer(organisation_grade=None)), "grade")
    assert grades[0] < ungraded < grades[-1]


def test_village_that_received_less_scores_higher() -> None:
    less = only_score(need(), offer(), context(received_value_by_village={VILLAGE: 5_000.0}))
    more = only_score(need(), offer(), context(received_value_by_village={VILLAGE: 500_000.0}))
    nothing = only_score(need(), offer())
    assert rule(nothing, "equity") == 1.0 > rule(less, "equity") > rule(more, "equity")


def test_covering_more_of_what_is_left_scores_higher() -> None:
    half = only_score(need(), offer(available=500.0))
    all_of_it = only_score(need(), offer(available=5_000.0))
    assert rule(half, "coverage") == 0.5 and rule(all_of_it, "coverage") == 1.0
    assert half.quantity == 500.0 and all_of_it.quantity == 1000.0


def test_more_beneficiaries_score_higher() -> None:
    assert rule(only_score(need(beneficiaries=2000), offer()), "beneficiaries") > rule(
        only_score(need(beneficiaries=45), offer()), "beneficiaries"
    )


# --- explanations --------------------------------------------------------------------------------

def test_explanation_has_every_weighted_rule_in_both_languages() -> None:
    found = only_score(need(), offer(), context(pairings=frozenset({("org1", VILLAGE)})))
    assert [e.rule for e in found.explanation] == list(RULES)
    assert all(e.reason_zh and e.reason_en and e.reason_zh != e.reason_en for e in found.explanation)
    assert math.isclose(sum(e.weight for e in found.explanation), 1.0, abs_tol=1e-3)
    assert math.isclose(sum(e.weight * e.score for e in found.explanation), found.score, abs_tol=1e-3)
    assert found.explanation[0].reason("en") == found.explanation[0].reason_en


def test_rules_with_zero_weight_are_left_out() -> None:
    ruleset = RuleSet(version=2, weights=Weights(proximity=1, coverage=0, urgency=1, deadline=0, pairing=0, grade=0,
                                                 equity=0, beneficiaries=0))
    found = only_score(need(urgency=5), offer(), ruleset=ruleset)
    assert [e.rule for e in found.explanation] == ["proximity", "urgency"]
    assert [e.weight for e in found.explanation] == [0.5, 0.5]


def test_reasons_are_concrete() -> None:
    ctx = context(pairings=frozenset({("org1", VILLAGE)}), received_value_by_village={VILLAGE: 35_000.0})
    found = only_score(need(needed_by=TODAY + timedelta(days=9), beneficiaries=2000), offer(organisation_grade=4,
                                                                                          lat=north(12)), ctx)
    reasons = {e.rule: (e.reason_zh, e.reason_en) for e in found.explanation}
    assert reasons["proximity"] == ("同县，距离 12 km", "same county, 12 km away")
    assert reasons["coverage"] == ("可覆盖剩余需求的 60%", "covers 60% of what is left")
    assert reasons["pairing"] == ("已结对帮扶", "paired with this village")
    assert reasons["grade"] == ("4A 级社会组织", "grade 4A organisation")
    assert reasons["equity"] == ("该村此前已获 3.5 万元", "village received ¥35,000 so far")
    assert reasons["deadline"] == ("距截止 9 天", "9 days to deadline")
    assert reasons["beneficiaries"] == ("惠及 2000 人", "reaches 2,000 people")
    assert reasons["urgency"] == ("紧急程度 3/5", "urgency 3 of 5")


def test_radius_only_reason_and_unknown_distance() -> None:
    radius = only_score(need(), offer(region_codes=(), radius_km=50.0, lat=north(3.4)))
    assert next(e for e in radius.explanation if e.rule == "proximity").reason_en == "within its service radius, 3.4 km away"
    unknown = only_score(need(lat=None, lon=None), offer())
    assert next(e for e in unknown.explanation if e.rule == "proximity").reason_zh == "同县，距离未知"


def test_explain_pairs_matches_candidates() -> None:
    needs = NeedTable.from_views([need()])
    offers = OfferTable.from_views([offer(id="a"), offer(id="b", region_codes=("44",))])
    ctx = context()
    by_candidates = candidates_for_need(0, offers, ctx, needs=needs)
    by_pairs = explain_pairs(needs, offers, np.array([0, 0]), np.array([0, 1]), ctx)
    assert sorted(by_candidates, key=lambda c: c.offer_id) == by_pairs


# --- ranking and the seed scenarios --------------------------------------------------------------

def test_huizhou_paired_offer_ranks_first() -> None:
    """In 惠城区 (441302) two otherwise equal offers: the one whose organisation is paired (结对) with the village wins."""
    ctx = context(pairings=frozenset({("org-paired", VILLAGE)}))
    offers = [offer(id="o-a", organisation_id="org-other"), offer(id="o-b", organisation_id="org-paired")]
    found = ranked(need(), offers, ctx)
    assert [c.offer_id for c in found] == ["o-b", "o-a"]
    assert found[0].score > found[1].score


def test_urgent_drought_relief_outranks_routine_need() -> None:
    """For the same offer, an urgent (5) drought-relief need outranks a routine (2) one."""
    drought = need(id="drought", urgency=5, village_code="441302104202")
    routine = need(id="routine", urgency=2)
    found = candidates_for_offer(offer(), NeedTable.from_views([routine, drought]), context())
    assert [c.need_id for c in found] == ["drought", "routine"]


def test_ties_break_by_id_and_limit_applies() -> None:
    offers = [offer(id=name) for name in ("c", "a", "b")]
    assert [c.offer_id for c in ranked(need(), offers)] == ["a", "b", "c"]
    assert [c.offer_id for c in ranked(need(), offers, limit=2)] == ["a", "b"]
    assert ranked(need(), offers, limit=0) == []


def test_candidates_by_row_equal_candidates_by_view() -> None:
    needs = NeedTable.from_views([need(id="x", category="education"), need()])
    offers = OfferTable.from_views([offer(id="a"), offer(id="b", available=2000.0)])
    assert candidates_for_need(1, offers, context(), needs=needs) == candidates_for_need(need(), offers, context())
    assert candidates_for_offer(1, needs, context(), offers=offers) == candidates_for_offer(
        offer(id="b", available=2000.0), needs, context()
    )
    with pytest.raises(ValueError, match="needs"):
        candidates_for_need(0, offers, context())


def test_scores_stay_in_unit_interval_and_round_to_four_decimals() -> None:
    for c in ranked(need(), [offer(id=f"o{k}", available=100.0 * k) for k in range(1, 6)]):
        assert 0.0 <= c.score <= 1.0 and round(c.score, 4) == c.score


# --- rejections ----------------------------------------------------------------------------------

def test_rejection_names_the_step_where_the_last_offer_dropped_out() -> None:
    far = offer(id="far", region_codes=("450123",))
    closed = offer(id="closed", available_until=TODAY - timedelta(days=2))
    assert explain_rejection(need(), OfferTable.from_views([far, closed]), context()).code == RejectionCode.WINDOW_CLOSED  # type: ignore[union-attr]
    full = offer(id="full", available=0.0)
    rejection = explain_rejection(need(), OfferTable.from_views([far, full]), context())
    assert rejection is not None and rejection.code == RejectionCode.CAPACITY_TAKEN
    assert "capacity" in rejection.text.en and "预留" in rejection.text.zh
    assert explain_rejection(need(), OfferTable.from_views([far, full, offer()]), context()) is None


def test_rejection_texts_are_complete() -> None:
    health = explain_rejection(need(category="health"), OfferTable.from_views([offer()]), context())
    assert health is not None and health.code == RejectionCode.NO_MATCHING_OFFER
    assert health.text.zh == "没有医疗卫生类物资（kg）的可用资源"
    out = explain_rejection(need(), OfferTable.from_views([offer(region_codes=("450123",)), offer(id="o2", region_codes=())]),
                            context())
    assert out is not None and out.code == RejectionCode.OUT_OF_RANGE and "2" in out.text.en
    skills = explain_rejection(
        need(kind="expertise", unit="person_day", skills=("数控",)),
        OfferTable.from_views([offer(kind="expertise", unit="person_day", skills=("电焊",))]), context(),
    )
    assert skills is not None and skills.code == RejectionCode.SKILLS_MISSING and "数控" in skills.text.zh


def test_need_view_from_feed() -> None:
    feed = {
        "id": "b3f1", "title": "抗旱救灾饮水", "category": "disaster", "kind": "funds", "unit": "CNY",
        "quantity": "50000.00", "committed": "12500.50", "delivered": "0.00", "beneficiaries": 800,
        "beneficiary_groups": ["general"], "skills": [], "urgency": 5, "needed_by": "2025-03-20",
        "village_code": VILLAGE, "lat": LAT, "lon": LON, "status": "open", "version": 3,
        "created_at": "2025-02-01T08:00:00+00:00",
    }
    view = NeedView.from_feed(feed)
    assert view.remaining == 37499.5 and view.quantity == 50000.0
    assert view.needed_by == date(2025, 3, 20) and view.beneficiary_groups == ("general",)


def test_offer_view_from_feed() -> None:
    feed = {
        "id": "7c2e", "organisation_id": "a1", "title": "助学基金", "categories": ["education"], "kind": "funds",
        "unit": "CNY", "quantity": "550000.00", "reserved": "50000.00", "delivered": "0.00", "available": "500000.00",
        "region_codes": ["4413"], "radius_km": None, "lat": None, "lon": None, "available_from": "2025-01-01",
        "available_until": "2025-12-31", "beneficiary_groups": ["students"], "skills": [], "status": "active",
        "version": 2, "created_at": "2025-01-01T00:00:00+00:00",
    }
    view = OfferView.from_feed(feed, organisation_grade=5)
    assert view.available == 500000.0 and view.region_codes == ("4413",) and view.organisation_grade == 5
    assert view.available_until == date(2025, 12, 31) and view.beneficiary_groups == ("students",)


# --- incremental offer tables ----------------------------------------------------------------------

_COUNTIES = ("441302", "441303", "441322", "440113")
_KIND_UNITS = (("goods", "kg"), ("funds", "CNY"), ("service", "person_day"), ("training", "trainee"))
_CATEGORIES = ("disaster", "education", "health", "industry")
_SKILLS = ("数控", "电焊", "急救", "ＣＮＣ 数控", "园艺")


def _random_offer(rng: np.random.Generator, key: str, *, organisations: int = 6, skills: tuple[str, ...] = _SKILLS) -> OfferView:
    county = str(rng.choice(_COUNTIES))
    kind, unit = _KIND_UNITS[int(rng.integers(len(_KIND_UNITS)))]
    area = int(rng.integers(5))
    regions: tuple[str, ...] = ((county,), (county[:4],), (county, county[:4] + "99"), (), (f"{county}104",))[area]
    groups = ((), ("general",), ("elderly",), ("children", "elderly"))[int(rng.integers(4))]
    return OfferView(
        id=key, organisation_id=f"org{int(rng.integers(organisations))}",
        categories=tuple(dict.fromkeys(rng.choice(_CATEGORIES, size=int(rng.integers(1, 3))).tolist())),
        kind=kind, unit=unit, available=float(rng.choice([0.0, 50.0, 600.0, 5000.0])),
        status="active" if rng.random() < 0.9 else "withdrawn", region_codes=regions,
        radius_km=float(rng.uniform(5, 80)) if area in (2, 3) else None,
        lat=LAT + float(rng.normal(0, 0.2)), lon=LON + float(rng.normal(0, 0.2)),
        available_from=TODAY - timedelta(days=int(rng.integers(0, 30))),
        available_until=TODAY + timedelta(days=int(rng.integers(-5, 90))), beneficiary_groups=groups,
        skills=tuple(rng.choice(skills, size=int(rng.integers(0, 3)), replace=False).tolist()),
        organisation_grade=int(rng.integers(0, 6)) or None,
    )


def _random_need(rng: np.random.Generator, key: str) -> NeedView:
    kind, unit = _KIND_UNITS[int(rng.integers(len(_KIND_UNITS)))]
    county = str(rng.choice(_COUNTIES))
    return need(
        id=key, kind=kind, unit=unit, category=str(rng.choice(_CATEGORIES)),
        village_code=f"{county}{int(rng.integers(103, 106)):03d}{int(rng.integers(200, 203)):03d}",
        lat=LAT + float(rng.normal(0, 0.2)), lon=LON + float(rng.normal(0, 0.2)), urgency=int(rng.integers(1, 6)),
        beneficiary_groups=(("elderly",), ("general",), ("children",))[int(rng.integers(3))],
        skills=tuple(rng.choice(_SKILLS[:3], size=int(rng.integers(0, 2)), replace=False).tolist())
        if kind in ("service", "training") else (),
    )


def _same_table(a: OfferTable, b: OfferTable) -> None:
    """Equal as tables: the same rows, columns and index order; organisation and skill numbering may differ."""
    assert a.views == b.views and dict(a.row_of) == dict(b.row_of)
    for name in ("kind_unit", "categories", "active", "eligible", "available", "start", "end", "lat", "lon", "xyz",
                 "radius_km", "groups", "restricts_groups", "grade", "region_ptr", "region_code", "region_spec",
                 "prefix_keys", "prefix_offer", "blocks", "may_repeat", "block_count"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and np.array_equal(x, y, equal_nan=x.dtype.kind == "f"), name
    assert list(a.radius_by_block) == list(b.radius_by_block)
    assert all(np.array_equal(a.radius_by_block[k], b.radius_by_block[k]) for k in a.radius_by_block)
    names_a, names_b = list(a.organisations), list(b.organisations)
    assert [names_a[i] for i in a.organisation] == [names_b[i] for i in b.organisation]

    def skills(t: OfferTable) -> set[tuple[int, str]]:
        names = list(t.skill_index)
        return {(int(k) // t.skill_stride, names[int(k) % t.skill_stride]) for k in t.skill_keys}

    assert skills(a) == skills(b)


@pytest.mark.parametrize("seed", range(6))
def test_offer_table_updated_in_place_equals_a_rebuild(seed: int) -> None:
    rng = np.random.default_rng(seed)
    offers = {f"o{k:03d}": _random_offer(rng, f"o{k:03d}") for k in range(120)}
    table = OfferTable.from_views(tuple(offers.values()))
    pairings = frozenset({("org1", f"{_COUNTIES[0]}104201"), ("org7", f"{_COUNTIES[1]}105202")})
    ctx = context(pairings=pairings)
    needs = [_random_need(rng, f"n{k:02d}") for k in range(40)]
    candidates_for_need(needs[0], table, ctx)  # fills the table's memo, which an update may carry over
    for round_ in range(4):
        changed = []
        for key in rng.choice(sorted(offers), size=int(rng.integers(1, 15)), replace=False).tolist():
            # changed offers, some of them of new organisations or with skills no offer had before
            offers[key] = _random_offer(rng, key, organisations=9, skills=(*_SKILLS, f"技能{round_}"))
            changed.append(offers[key])
        for k in range(int(rng.integers(0, 4))):
            key = f"new{round_}-{k}"
            offers[key] = _random_offer(rng, key, organisations=9)
            changed.append(offers[key])
        table = table.with_offers(changed)
        rebuilt = OfferTable.from_views(tuple(offers.values()))
        _same_table(table, rebuilt)
        for one in needs:
            assert candidates_for_need(one, table, ctx, limit=20) == candidates_for_need(one, rebuilt, ctx, limit=20)
            assert explain_rejection(one, table, ctx) == explain_rejection(one, rebuilt, ctx)
        a, b = score_pairs(NeedTable.from_views(needs), table, ctx), score_pairs(NeedTable.from_views(needs), rebuilt, ctx)
        assert np.array_equal(a.need_idx, b.need_idx) and np.array_equal(a.offer_idx, b.offer_idx)
        assert np.array_equal(a.score, b.score) and np.array_equal(a.level, b.level)
        assert candidates_for_offer(2, NeedTable.from_views(needs), ctx, offers=table) == candidates_for_offer(
            2, NeedTable.from_views(needs), ctx, offers=rebuilt
        )


def test_offer_table_update_leaves_the_old_table_as_it_was() -> None:
    old = OfferTable.from_views([offer(), offer(id="o2", region_codes=("440113",))])
    before = (old.available.copy(), old.prefix_keys.copy(), old.views)
    new = old.with_offers([offer(available=0.0), offer(id="o3")])
    assert [v.id for v in new.views] == ["o1", "o2", "o3"] and new.available[0] == 0.0
    assert np.array_equal(old.available, before[0]) and np.array_equal(old.prefix_keys, before[1]) and old.views == before[2]
    assert [c.offer_id for c in candidates_for_need(need(), new, context())] == ["o3"]
    assert [c.offer_id for c in candidates_for_need(need(), old, context())] == ["o1"]
    assert old.with_offers([]) is old


def test_pairing_keys_follow_the_pairings_given() -> None:
    table = OfferTable.from_views([offer()])
    unpaired = candidates_for_need(need(), table, context())
    paired = candidates_for_need(need(), table, context(pairings=frozenset({("org1", VILLAGE)})))
    assert unpaired[0].score < paired[0].score
    assert candidates_for_need(need(), table, context()) == unpaired
