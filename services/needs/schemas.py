"""What the needs API accepts and returns."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from services.common.errors import bilingual_error
from services.common.messages import Text
from services.common.vocabulary import (
    MAX_QUANTITY,
    AmountOut,
    BeneficiaryGroup,
    Category,
    Kind,
    VillageCode,
    check_quantity,
    check_unit,
)
from services.needs.models import NeedStatus

Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=2, max_length=200)]
Description = Annotated[str, StringConstraints(strip_whitespace=True, max_length=5000)]
Skill = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=40)]
Amount = Annotated[Decimal, Field(gt=0, le=MAX_QUANTITY, max_digits=15, decimal_places=2)]
Latitude = Annotated[float, Field(ge=-90, le=90)]
Longitude = Annotated[float, Field(ge=-180, le=180)]
Phone = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^\+?[0-9][0-9 \-]{4,24}$")]
Channel = Literal["online", "phone", "letter", "visit"]

_STRICT = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Requester(BaseModel):
    """A villager whose request an officer took by phone, letter or visit."""

    model_config = _STRICT
    name: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    phone: Phone | None = None


class _NeedFields(BaseModel):
    model_config = _STRICT

    def _check_quantity_unit(self, kind: Kind | None, unit: str | None, quantity: Decimal | None) -> None:
        if kind is not None and unit is not None:
            check_unit(kind, unit)
        if unit is not None and quantity is not None:
            check_quantity(unit, quantity)

    def _check_coordinates(self, lat: float | None, lon: float | None) -> None:
        if (lat is None) != (lon is None):
            raise bilingual_error(Text("纬度和经度须同时填写", "Give both latitude and longitude, or neither"))


class NeedCreate(_NeedFields):
    title: Title
    description: Description = ""
    category: Category
    kind: Kind
    quantity: Amount
    unit: str
    beneficiaries: Annotated[int, Field(ge=0, le=10_000_000)] = 0
    beneficiary_groups: Annotated[list[BeneficiaryGroup], Field(max_length=9)] = []
    urgency: Annotated[int, Field(ge=1, le=5)] = 3
    needed_by: date
    village_code: VillageCode
    lat: Latitude | None = None
    lon: Longitude | None = None
    skills: Annotated[list[Skill], Field(max_length=20)] = []
    channel: Channel = "online"
    requester: Requester | None = None
    status: Literal["draft", "open"] = "open"

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        self._check_quantity_unit(self.kind, self.unit, self.quantity)
        self._check_coordinates(self.lat, self.lon)
        if self.needed_by < date.today():
            raise bilingual_error(Text("需求截止日期不能早于今天", "needed_by cannot be in the past"))
        if self.channel != "online" and self.requester is None:
            raise bilingual_error(
                Text("电话、来信或走访收集的需求，请填写提出人（requester）",
                     "A need taken by phone, letter or visit needs its requester")
            )
        return self


class NeedUpdate(_NeedFields):
    """Fields an officer may change while a need is a draft or open. Omitted fields stay."""

    title: Title | None = None
    description: Description | None = None
    category: Category | None = None
    kind: Kind | None = None
    quantity: Amount | None = None
    unit: str | None = None
    beneficiaries: Annotated[int, Field(ge=0, le=10_000_000)] | None = None
    beneficiary_groups: Annotated[list[BeneficiaryGroup], Field(max_length=9)] | None = None
    urgency: Annotated[int, Field(ge=1, le=5)] | None = None
    needed_by: date | None = None
    lat: Latitude | None = None
    lon: Longitude | None = None
    skills: Annotated[list[Skill], Field(max_length=20)] | None = None
    requester: Requester | None = None
    status: Literal["open"] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        self._check_coordinates(self.lat, self.lon)
        if self.needed_by is not None and self.needed_by < date.today():
            raise bilingual_error(Text("需求截止日期不能早于今天", "needed_by cannot be in the past"))
        if (self.kind is None) != (self.unit is None):
            raise bilingual_error(Text("修改类型时须同时给出单位", "Change kind and unit together"))
        return self


class RequesterRead(BaseModel):
    name: str
    phone: str | None = None


class NeedRead(BaseModel):
    id: uuid.UUID
    title: str
    description: str
    category: Category
    kind: Kind
    quantity: AmountOut
    unit: str
    committed: AmountOut
    delivered: AmountOut
    remaining: AmountOut
    beneficiaries: int
    beneficiary_groups: list[BeneficiaryGroup]
    skills: list[str]
    urgency: int
    needed_by: date
    village_code: str
    lat: float | None
    lon: float | None
    channel: Channel
    requester: RequesterRead | None
    status: NeedStatus
    version: int
    created_by: str
    created_at: datetime
    updated_at: datetime


class NeedFilters(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: NeedStatus | None = None
    category: Category | None = None
    kind: Kind | None = None
    region: str | None = None
    q: str | None = None
    urgency_min: int | None = None
    needed_before: date | None = None
    village_code: str | None = None


# --- internal: commitments, keyed by match id -----------------------------------------------

class CommitmentCreate(BaseModel):
    model_config = _STRICT
    match_id: uuid.UUID
    quantity: Amount


class DeliveryRecord(BaseModel):
    """The cumulative quantity delivered under one match: repeating it changes nothing."""

    model_config = _STRICT
    delivered_total: Annotated[Decimal, Field(ge=0, le=MAX_QUANTITY, decimal_places=2)]


class CommitmentRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    need_id: uuid.UUID
    match_id: uuid.UUID
    quantity: AmountOut
    delivered: AmountOut
    status: str
    need_remaining: AmountOut
