"""Rule sets are validated, versioned data."""

from __future__ import annotations

import math
from typing import Any

import pytest
from pydantic import ValidationError

from services.matching.rules import DEFAULT_RULESET, RULE_NAMES, RULES, Parameters, RuleSet, Weights


def test_defaults_are_valid_and_cover_every_rule() -> None:
    assert DEFAULT_RULESET.version == 1
    assert set(DEFAULT_RULESET.weights.as_dict()) == set(RULES) == set(RULE_NAMES)
    assert math.isclose(sum(DEFAULT_RULESET.weights.normalised().values()), 1.0)
    assert all(weight > 0 for weight in DEFAULT_RULESET.weights.as_dict().values())


def test_a_rule_set_round_trips_as_data() -> None:
    ruleset = RuleSet.model_validate(
        {"version": 7, "weights": {"urgency": 3, "pairing": 0}, "parameters": {"half_distance_km": 40}}
    )
    assert ruleset.weights.urgency == 3 and ruleset.weights.pairing == 0 and ruleset.weights.proximity == 0.2
    assert RuleSet.model_validate_json(ruleset.model_dump_json()) == ruleset


def test_only_ratios_of_weights_matter() -> None:
    doubled = Weights(**{rule: 2 * w for rule, w in DEFAULT_RULESET.weights.as_dict().items()})
    assert doubled.normalised() == pytest.approx(DEFAULT_RULESET.weights.normalised())


@pytest.mark.parametrize(
    "data",
    [
        {"version": 0},
        {"surprise": 1},
        {"weights": {"proximity": -0.1}},
        {"weights": {"proximity": float("inf")}},
        {"weights": {"kindness": 1}},
        {"weights": dict.fromkeys(RULES, 0)},
        {"parameters": {"half_distance_km": 0}},
        {"parameters": {"deadline_horizon_days": 0}},
        {"parameters": {"same_county_bonus": 1.5}},
        {"parameters": {"ungraded_score": -0.1}},
        {"parameters": {"equity_scale_cny": 0}},
        {"parameters": {"beneficiaries_full_at": 0}},
        {"parameters": {"same_county_bonus": 0.7}},  # above the township's 0.6: a wider region would score higher
    ],
)
def test_invalid_rule_sets_are_refused(data: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        RuleSet.model_validate(data)


def test_refusals_speak_both_languages() -> None:
    with pytest.raises(ValidationError) as caught:
        Weights(**dict.fromkeys(RULES, 0))
    context = caught.value.errors()[0]["ctx"]
    assert "权重" in context["zh"] and "weight" in context["en"]


def test_rule_sets_are_immutable() -> None:
    with pytest.raises(ValidationError):
        DEFAULT_RULESET.weights.urgency = 5  # type: ignore[misc]


def test_level_bonuses_grow_with_specificity() -> None:
    bonuses = Parameters().level_bonuses()
    assert bonuses[0] == 0.0 and list(bonuses[1:]) == sorted(bonuses[1:])
