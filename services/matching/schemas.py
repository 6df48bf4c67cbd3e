"""What the matching API accepts and returns: rule sets, candidates, match runs, matches."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field

from services.common.vocabulary import MAX_QUANTITY, AmountOut, RegionPrefix
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

Amount = Annotated[Decimal, Field(gt=0, le=MAX_QUANTITY, decimal_places=2)]
Reason = Annotated[str, Field(min_length=1, max_length=2000)]
Note = Annotated[str, Field(max_length=4000)]


class MatchCreate(BaseModel):
    """A coordinator's proposal, or an organisation member's pledge of their own offer."""

    model_config = _STRICT
    need_id: uuid.UUID
    offer_id: uuid.UUID
    quantity: Amount
    note: Note | None = None


class ReasonBody(BaseModel):
    model_config = _STRICT
    reason: Reason


class DeliveryCreate(BaseModel):
    model_config = _STRICT
    quantity: Amount
    delivered_on: date
    note: Note = ""


class ReceiptCreate(BaseModel):
    model_config = _STRICT
    quantity: Annotated[Decimal, Field(ge=0, le=MAX_QUANTITY, decimal_places=2)]
    satisfaction: Annotated[int, Field(ge=1, le=5)]
    comment: Note = ""


class FollowUpCreate(BaseModel):
    model_config = _STRICT
    visited_on: date
    note: Annotated[str, Field(min_length=1, max_length=4000)]


class DeliveryRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    quantity: AmountOut
    delivered_total: AmountOut
    delivered_on: date
    note: str
    recorded_by: str
    created_at: datetime


class FollowUpRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    visited_on: date
    note: str
    recorded_by: str
    created_at: datetime


class ReceiptRead(BaseModel):
    quantity: AmountOut
    satisfaction: int
    comment: str | None
    received_by: str
    received_at: datetime


class MatchEventRead(BaseModel):
    """One state change: who, when, from → to, what changed, and why (in the caller's language and both)."""

    id: uuid.UUID
    match_id: uuid.UUID
    village_code: str
    organisation_id: uuid.UUID
    action: str
    from_status: str | None
    to_status: str | None
    actor: str
    actor_role: str
    changes: dict[str, Any]
    reason: str | None
    reason_zh: str | None
    reason_en: str | None
    created_at: datetime


class NotificationRead(BaseModel):
    id: uuid.UUID
    event: str
    audience_kind: str
    audience: str
    match_id: uuid.UUID | None
    title: str
    title_zh: str
    title_en: str
    data: dict[str, Any]
    read: bool
    created_at: datetime


class WebhookPut(BaseModel):
    model_config = _STRICT
    url: AnyHttpUrl = Field(description="http(s) URL that receives the organisation's events as signed JSON POSTs")


class WebhookRead(BaseModel):
    organisation_id: uuid.UUID
    url: str
    created_at: datetime
    updated_at: datetime
    secret: str | None = Field(
        default=None,
        description="The signing secret, shown only in the answer to the PUT that set it. Verify "
                    "X-Duijie-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of '<t>.<body>' with this secret>",
    )


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
    status_reason: str | None = Field(description="Why it failed, was rejected or cancelled, in the caller's language")
    status_reason_zh: str | None = None
    status_reason_en: str | None = None
    saga_step: str | None = Field(default=None, description="While approving or cancelling: the step under way")
    origin: str = "run"
    note: str | None = None
    delivered: AmountOut = Decimal(0)
    receipt: ReceiptRead | None = None
    version: int
    created_by: str
    created_at: datetime
    updated_at: datetime


class MatchDetailRead(MatchRead):
    """One match as its three parties see it: with its deliveries, follow-ups and history."""

    deliveries: list[DeliveryRead] = Field(default_factory=list)
    follow_ups: list[FollowUpRead] = Field(default_factory=list)
    history: list[MatchEventRead] = Field(default_factory=list)


class MatchFilters(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: MatchStatus | None = None
    region: str | None = None
    need_id: uuid.UUID | None = None
    offer_id: uuid.UUID | None = None
    run_id: uuid.UUID | None = None


class DeliveryFilters(BaseModel):
    model_config = ConfigDict(extra="forbid")
    region: str | None = None
    organisation_id: uuid.UUID | None = None
    match_id: uuid.UUID | None = None
    need_id: uuid.UUID | None = None
    date_from: date | None = None
    date_to: date | None = None


def quantity_of(value: float) -> Decimal:
    """An engine float (a multiple of 0.01) as the exact amount it stands for."""
    return Decimal(f"{value:.2f}")


# --- reports --------------------------------------------------------------------------------------

class NeedCountsRead(BaseModel):
    posted: int = Field(description="Needs posted in the period (drafts are not posted)")
    open: int = Field(description="Of those, the ones still open now")
    fulfilled: int = Field(description="Needs that became fulfilled in the period, whenever posted")


class ReportTotalsRead(BaseModel):
    value_committed: AmountOut = Field(description="CNY value of the matches approved in the period (still holding)")
    value_delivered: AmountOut = Field(description="CNY value of the deliveries dated in the period")
    matches_approved: int
    matches_delivered: int = Field(description="Matches whose last delivery (completing them) is dated in the period")
    deliveries: int
    beneficiaries_reached: int = Field(description="Beneficiaries of the needs that received a delivery, each need once")
    receipts_confirmed: int
    satisfaction_avg: Decimal | None = Field(description="Average rating (1–5) of the receipts confirmed, 2 decimals")
    avg_days_to_approval: Decimal | None = Field(description="Days from posting the need to approving the match, 1 decimal")
    avg_days_to_receipt: Decimal | None = Field(description="Days from posting the need to confirming receipt, 1 decimal")


class ValueRowRead(BaseModel):
    key: str
    name: str
    value_committed: AmountOut
    value_delivered: AmountOut


class ParticipationRead(BaseModel):
    organisation_id: uuid.UUID
    name: str
    value_delivered: AmountOut
    receipts_confirmed: int
    satisfaction_avg: Decimal | None
    delivered_component: Decimal = Field(description="D: delivered value ÷ the largest among the organisations, 4 decimals")
    receipts_component: Decimal = Field(description="R: receipts confirmed ÷ the most among the organisations, 4 decimals")
    satisfaction_component: Decimal = Field(description="S: (average rating − 1) ÷ 4, 0 without receipts, 4 decimals")
    score: Decimal = Field(description="100 × (0.5·D + 0.3·R + 0.2·S), rounded half up to 1 decimal")


class FormulaRead(BaseModel):
    text: str = Field(description="In the caller's language")
    zh: str
    en: str
    weights: dict[str, Decimal]


class SummaryReportRead(BaseModel):
    region: str = Field(description="Region code prefix ('' for everywhere)")
    date_from: date
    date_to: date
    timezone: str = Field(description="Days are calendar days of this time zone")
    needs: NeedCountsRead
    totals: ReportTotalsRead
    by_category: list[ValueRowRead]
    by_kind: list[ValueRowRead]
    by_county: list[ValueRowRead]
    by_organisation: list[ValueRowRead]
    participation: list[ParticipationRead]
    participation_formula: FormulaRead
    unit_values_cny: dict[str, Decimal] = Field(description="CNY per unit used to value goods, services and training")


class YearRead(BaseModel):
    year: int
    value_committed: AmountOut
    value_delivered: AmountOut
    beneficiaries_reached: int
    needs_posted: int
    matches_approved: int
    matches_delivered: int
    organisations: int = Field(description="Organisations with a match approved, a delivery or a receipt that year")


class YearsReportRead(BaseModel):
    region: str
    from_year: int
    to_year: int
    timezone: str
    years: list[YearRead]
