"""What the matching API accepts and returns: rule sets, candidates, match runs, matches."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from services.common.vocabulary import AmountOut, RegionPrefix
from services.matching.models import MatchStatus, RunStatus
from services.matching.rules import Parameters, Weights

_STRICT = ConfigDict(extra="forbid")


# --- rule sets ------------------------------------------------------------------------------------

class RuleSetUpdate(BaseModel):
    """A whole new rule set: every weight ≥ 0 (at least one > 0), every parameter in its range."""

    model_config = _STRICT
    weights: Weights
    parameters: Parameters


class RuleSetRead(BaseModel):
    version: int
    weights: Weights
    parameters: Parameters
    created_by: str
    created_at: datetime


# --- explanations and candidates ------------------------------------------------------------------

class RuleExplanationRead(BaseModel):
    """One soft rule's part in a score. `weight` is its share of all weights, so Σ weight·score = score.

    `reason` is in the caller's language (Accept-Language, Chinese by default); `reason_zh` and
    `reason_en` are always both there, for pages that show both or switch without asking again.
    """

    rule: str
    weight: float
    score: float
    reason: str
    reason_zh: str
    reason_en: str


class ReasonRead(BaseModel):
    code: str
    reason: str
    reason_zh: str
    reason_en: str


class CandidateRead(BaseModel):
    need_id: uuid.UUID
    offer_id: uuid.UUID
    organisation_id: uuid.UUID | None = None
    village_code: str | None = None
    score: float = Field(description="Weighted mean of the soft scores, in [0, 1]")
    quantity: AmountOut = Field(description="What this pair could cover now: min(need's remaining, offer's available)")
    ruleset_version: int
    explanation: list[RuleExplanationRead]


class CandidatesRead(BaseModel):
    items: list[CandidateRead]
    ruleset_version: int
    why_none: ReasonRead | None = Field(
        default=None, description="When a need has no candidate at all: the first hard filter that left it none"
    )


# --- match runs -----------------------------------------------------------------------------------

class MatchRunCreate(BaseModel):
    model_config = _STRICT
    region_code: RegionPrefix


class EquityRead(BaseModel):
    villages_with_open_needs: int = 0
    villages_reached: int = 0
    villages_reached_share: float = 0.0
    gini: float = Field(0.0, description="Gini of value received per beneficiary across the villages with open needs")


class MatchRunRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    status: RunStatus
    stage: str
    progress: float = Field(description="0 to 1")
    region_code: str
    ruleset_version: int | None
    proposals: int
    objective: float | None = Field(description="Σ score · quantity / need's remaining over the proposals")
    counts: dict[str, Any]
    timings: dict[str, float]
    equity: EquityRead
    error: str | None
    created_by: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class UnmatchedRead(BaseModel):
    need_id: uuid.UUID
    village_code: str
    code: str = Field(description="no_candidate, capacity_taken, zero_score or not_selected")
    rejection: str | None = Field(description="For no_candidate: the hard filter that left the need no offer")
    reason: str
    reason_zh: str
    reason_en: str


# --- matches --------------------------------------------------------------------------------------

class MatchRead(BaseModel):
    id: uuid.UUID
    run_id: uuid.UUID | None
    need_id: uuid.UUID
    offer_id: uuid.UUID
    organisation_id: uuid.UUID
    village_code: str
    region_code: str
    quantity: AmountOut
    unit: str
    score: float
    explanation: list[RuleExplanationRead]
    ruleset_version: int
    status: MatchStatus
    status_reason: str | None
    version: int
    created_by: str
    created_at: datetime
    updated_at: datetime


class MatchFilters(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: MatchStatus | None = None
    region: str | None = None
    need_id: uuid.UUID | None = None
    offer_id: uuid.UUID | None = None
    run_id: uuid.UUID | None = None


def quantity_of(value: float) -> Decimal:
    """An engine float (a multiple of 0.01) as the exact amount it stands for."""
    return Decimal(f"{value:.2f}")
