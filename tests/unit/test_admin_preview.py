"""The rule-set preview's arithmetic: the candidates' own per-rule scores re-weighted, nothing else."""

from __future__ import annotations

from typing import Any

from gateway.web.admin import reweigh


def _candidate(offer_id: str, score: float, **rules: float) -> dict[str, Any]:
    return {"offer_id": offer_id, "score": score,
            "explanation": [{"rule": rule, "weight": 0.5, "score": value} for rule, value in rules.items()]}


def test_edited_weights_reorder_by_the_weighted_mean_of_the_rule_scores() -> None:
    near = _candidate("b-near", 0.55, proximity=0.9, coverage=0.2)
    far = _candidate("a-far", 0.6, proximity=0.2, coverage=1.0)
    rows, missing = reweigh([far, near], {"proximity": 3.0, "coverage": 1.0})
    assert missing == []
    by_id = {row["offer_id"]: row for row in rows}
    assert by_id["b-near"]["new_score"] == round((3 * 0.9 + 0.2) / 4, 4)
    assert (by_id["b-near"]["rank"], by_id["b-near"]["new_rank"], by_id["b-near"]["change"]) == (2, 1, 1)
    assert (by_id["a-far"]["rank"], by_id["a-far"]["new_rank"], by_id["a-far"]["change"]) == (1, 2, -1)


def test_the_same_weights_keep_the_order_and_ties_go_by_offer_id() -> None:
    first, second = _candidate("b", 0.5, urgency=0.5), _candidate("a", 0.5, urgency=0.5)
    rows, _missing = reweigh([second, first], {"urgency": 1.0})
    assert [(row["offer_id"], row["new_rank"]) for row in rows] == [("a", 1), ("b", 2)]


def test_a_rule_the_candidates_carry_no_score_for_gives_no_new_order() -> None:
    rows, missing = reweigh([_candidate("a", 0.5, urgency=0.5)], {"urgency": 1.0, "grade": 1.0})
    assert missing == ["grade"]
    assert "new_rank" not in rows[0]
