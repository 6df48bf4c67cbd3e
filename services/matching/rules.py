"""Rule sets: the weights and parameters of matching, kept as versioned data (DESIGN.md, "Matching by scored rules").

A rule set is never code: an admin PUTs a new version, and every score names the version it came from.
Soft scores are each in [0, 1]; a pair's total is the weighted mean Σ wᵢ·sᵢ / Σ wᵢ, so only the ratios
of the weights matter. The hard filters have no parameters: they are the contract, not a preference.
"""

from __future__ import annotations

import itertools
import math
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.common.errors import bilingual_error
from services.common.messages import Text

# The soft rules, in the order explanations list them.
RULES: tuple[str, ...] = (
    "proximity", "coverage", "urgency", "deadline", "pairing", "grade", "equity", "beneficiaries",
)

RULE_NAMES: dict[str, Text] = {
    "proximity": Text("距离", "proximity"),
    "coverage": Text("覆盖", "coverage"),
    "urgency": Text("紧急程度", "urgency"),
    "deadline": Text("截止日期", "deadline"),
    "pairing": Text("结对帮扶", "pairing"),
    "grade": Text("组织等级", "grade"),
    "equity": Text("均衡", "equity"),
    "beneficiaries": Text("受益人数", "beneficiaries"),
}

_MAX_WEIGHT = 1000.0


def _weight(default: float) -> float:
    return Field(default, ge=0, le=_MAX_WEIGHT, allow_inf_nan=False)


class Weights(BaseModel):
    """Relative importance of each soft score. Defaults favour what rural assistance asks for first:
    urgent needs and nearby help, then coverage, equity between villages and people reached."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    proximity: float = _weight(0.20)
    coverage: float = _weight(0.15)
    urgency: float = _weight(0.20)
    deadline: float = _weight(0.10)
    pairing: float = _weight(0.10)
    grade: float = _weight(0.05)
    equity: float = _weight(0.10)
    beneficiaries: float = _weight(0.10)

    @model_validator(mode="after")
    def _some_weight(self) -> Self:
        if self.total <= 0:
            raise bilingual_error(Text("至少一项权重须大于 0", "At least one weight must be above 0"))
        return self

    @property
    def total(self) -> float:
        return math.fsum(self.as_dict().values())

    def as_dict(self) -> dict[str, float]:
        return {rule: float(getattr(self, rule)) for rule in RULES}

    def normalised(self) -> dict[str, float]:
        """Each weight's share of the total: Σ share·score is the pair's score."""
        total = self.total
        return {rule: weight / total for rule, weight in self.as_dict().items()}


class Parameters(BaseModel):
    """The numbers inside the soft scores."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # proximity = 1 - (1 - decay)·(1 - bonus), decay = 0.5^(km / half_distance_km): at this distance
    # an offer with no region in common scores 0.5. A rural county is roughly 40-60 km across.
    half_distance_km: float = Field(25.0, gt=0, le=5000, allow_inf_nan=False)
    # Used for the decay when either side has no coordinates.
    unknown_distance_score: float = Field(0.3, ge=0, le=1, allow_inf_nan=False)
    # Bonus when the most specific of the offer's service regions containing the village is at this level.
    same_village_bonus: float = Field(1.0, ge=0, le=1, allow_inf_nan=False)
    same_township_bonus: float = Field(0.6, ge=0, le=1, allow_inf_nan=False)
    same_county_bonus: float = Field(0.4, ge=0, le=1, allow_inf_nan=False)
    same_city_bonus: float = Field(0.2, ge=0, le=1, allow_inf_nan=False)
    same_province_bonus: float = Field(0.05, ge=0, le=1, allow_inf_nan=False)
    # deadline = 1 - days_left / horizon, clipped to [0, 1]: due today → 1, due beyond the horizon → 0.
    deadline_horizon_days: int = Field(90, ge=1, le=3650)
    # grade = g / 5 for 1A..5A; an organisation not (yet) evaluated sits between 1A and 2A:
    # no evaluation is not a fault, but an evaluated one has earned some trust.
    ungraded_score: float = Field(0.3, ge=0, le=1, allow_inf_nan=False)
    # equity = 1 / (1 + received / equity_scale_cny): a village that has received this much scores 0.5.
    equity_scale_cny: float = Field(50_000.0, gt=0, le=1e12, allow_inf_nan=False)
    # beneficiaries = log(1 + people) / log(1 + beneficiaries_full_at), at most 1.
    beneficiaries_full_at: int = Field(2_000, ge=1, le=100_000_000)

    @model_validator(mode="after")
    def _bonuses_shrink_with_the_region(self) -> Self:
        bonuses = self.level_bonuses()[1:]
        if any(wide > narrow for wide, narrow in itertools.pairwise(bonuses)):
            raise bilingual_error(Text(
                "同村、同乡镇、同县、同市、同省的加分须依次不增",
                "Region bonuses must not grow from village to township, county, city and province",
            ))
        return self

    def level_bonuses(self) -> tuple[float, ...]:
        """Bonus by the shared level's specificity: 0 none, 1 province, 2 city, 3 county, 4 township, 5 village."""
        return (
            0.0, self.same_province_bonus, self.same_city_bonus, self.same_county_bonus,
            self.same_township_bonus, self.same_village_bonus,
        )


class RuleSet(BaseModel):
    """One version of the matching rules."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int = Field(1, ge=1)
    weights: Weights = Field(default_factory=Weights)
    parameters: Parameters = Field(default_factory=Parameters)


DEFAULT_RULESET = RuleSet()
