"""What the needs API accepts and returns."""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from pydantic_core import PydanticCustomError
from typing_extensions import TypedDict

from services.common import spreadsheets as sheets
from services.common.errors import about_field, bilingual_error
from services.common.messages import Text
from services.common.vocabulary import (
    CATEGORY_LABELS,
    GROUP_LABELS,
    KIND_LABELS,
    MAX_QUANTITY,
    UNIT_LABELS,
    AmountOut,
    BeneficiaryGroup,
    Category,
    Kind,
    VillageCode,
    check_quantity,
    check_unit,
)
from services.needs.models import DuplicateStatus, NeedStatus

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
        try:
            if kind is not None and unit is not None:
                check_unit(kind, unit)
        except PydanticCustomError as error:
            raise about_field(error, "unit") from None
        try:
            if unit is not None and quantity is not None:
                check_quantity(unit, quantity)
        except PydanticCustomError as error:
            raise about_field(error, "quantity") from None

    def _check_coordinates(self, lat: float | None, lon: float | None) -> None:
        if (lat is None) != (lon is None):
            raise about_field(bilingual_error(Text("纬度和经度须同时填写", "Give both latitude and longitude, or neither")),
                              "lat" if lat is None else "lon")


NEEDED_BY_PAST = Text("需求截止日期不能早于今天", "needed_by cannot be in the past")


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
            raise about_field(bilingual_error(NEEDED_BY_PAST), "needed_by")
        if self.channel != "online" and self.requester is None:
            raise about_field(bilingual_error(
                Text("电话、来信或走访收集的需求，请填写提出人（requester）",
                     "A need taken by phone, letter or visit needs its requester")
            ), "requester")
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
            raise about_field(bilingual_error(NEEDED_BY_PAST), "needed_by")
        if (self.kind is None) != (self.unit is None):
            raise about_field(bilingual_error(Text("修改类型时须同时给出单位", "Change kind and unit together")), "unit")
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
    possible_duplicates: list[PossibleDuplicate] = Field(
        default=[], description="Open needs of the same village this one closely resembles (shown to those who manage it)"
    )


class RequesterJson(TypedDict):
    name: str
    phone: str | None


class NeedReadJson(TypedDict):
    """NeedRead as its JSON is written from values read straight from the database: the same fields in the
    same order and spellings, but serialised without validating again what the database holds (a page of
    50 was validated field by field only to be dumped at once). Enumerations are their stored strings,
    amounts their text."""

    id: uuid.UUID
    title: str
    description: str
    category: str
    kind: str
    quantity: str  # amounts as their text, "45.00", as AmountOut writes them
    unit: str
    committed: str
    delivered: str
    remaining: str
    beneficiaries: int
    beneficiary_groups: list[str]
    skills: list[str]
    urgency: int
    needed_by: date
    village_code: str
    lat: float | None
    lon: float | None
    channel: str
    requester: RequesterJson | None
    status: str
    version: int
    created_by: str
    created_at: datetime
    updated_at: datetime
    possible_duplicates: list[PossibleDuplicate]


class NeedPageJson(TypedDict):
    items: list[NeedReadJson]
    next_cursor: str | None


class ActionReason(BaseModel):
    """Why a need is closed or cancelled: kept in its history."""

    model_config = _STRICT
    reason: Annotated[str, StringConstraints(min_length=1, max_length=500)]


class PossibleDuplicate(BaseModel):
    need_id: uuid.UUID
    title: str
    similarity: float


# NeedReadJson must write what NeedRead would: the same fields, in the same order.
assert tuple(NeedReadJson.__annotations__) == tuple(NeedRead.model_fields), "NeedReadJson has drifted from NeedRead"
assert tuple(RequesterJson.__annotations__) == tuple(RequesterRead.model_fields)


class DuplicateDecision(BaseModel):
    """`distinct`: both needs are wanted; `withdraw`: cancel this (newer) need as a duplicate."""

    model_config = _STRICT
    decision: Literal["distinct", "withdraw"]


class DuplicateRead(BaseModel):
    id: uuid.UUID
    need_id: uuid.UUID
    need_title: str
    other_need_id: uuid.UUID
    other_title: str
    village_code: str
    similarity: float
    status: DuplicateStatus
    created_at: datetime


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


# --- spreadsheets: the same fields as NeedCreate, as bureaus' needs-project sheets write them ----

CHANNEL_LABELS = {
    "online": Text("网上", "online"), "phone": Text("电话", "phone"), "letter": Text("来信", "letter"),
    "visit": Text("走访", "visit"),
}
POSTED_STATUS_LABELS = {"open": Text("发布", "open"), "draft": Text("草稿", "draft")}
STATUS_LABELS = {
    NeedStatus.DRAFT: Text("草稿", "draft"), NeedStatus.OPEN: Text("征集中", "open"),
    NeedStatus.FULFILLED: Text("已完成", "fulfilled"), NeedStatus.CLOSED: Text("已关闭", "closed"),
    NeedStatus.CANCELLED: Text("已撤销", "cancelled"),
}


def _coordinate(cell: sheets.Cell) -> float:
    return float(sheets.as_amount(cell))


NEED_COLUMNS: tuple[sheets.Column, ...] = (
    sheets.Column("title", "项目名称", "Title", required=True, example="芦洲镇村道防护栏", aliases=("标题", "需求名称")),
    sheets.Column("description", "项目内容", "Description", example="村道临水路段安装波形护栏约 2 公里", aliases=("描述", "需求描述")),
    sheets.Column("category", "类别", "Category", sheets.choice(CATEGORY_LABELS), required=True, example="基础设施",
                  aliases=("需求类别", "领域")),
    sheets.Column("kind", "帮扶方式", "Kind", sheets.choice(KIND_LABELS), required=True, example="资金", aliases=("类型",)),
    sheets.Column("quantity", "数量或金额", "Quantity", sheets.as_amount, required=True, example="145万元",
                  aliases=("数量", "金额", "资金需求")),
    sheets.Column("unit", "单位", "Unit", sheets.choice(UNIT_LABELS), required=True, example="元"),
    sheets.Column("beneficiaries", "受益人数", "Beneficiaries", sheets.as_integer, example="3200"),
    sheets.Column("beneficiary_groups", "受益群体", "Beneficiary groups", sheets.choices(GROUP_LABELS), example="全体村民"),
    sheets.Column("urgency", "紧急程度", "Urgency", sheets.as_integer, example="4", aliases=("紧急程度1-5",)),
    sheets.Column("needed_by", "需求截止日期", "Needed by", sheets.as_date, required=True,
                  example=lambda: (date.today() + timedelta(days=180)).isoformat(),
                  aliases=("截止日期", "完成时限")),
    sheets.Column("village_code", "村代码", "Village code", required=True, example="441302101001",
                  aliases=("行政区划代码", "村级区划代码", "区划代码")),
    sheets.Column("lat", "纬度", "Latitude", _coordinate),
    sheets.Column("lon", "经度", "Longitude", _coordinate),
    sheets.Column("skills", "所需技能", "Skills", sheets.as_list, aliases=("技能",)),
    sheets.Column("channel", "收集方式", "Channel", sheets.choice(CHANNEL_LABELS), example="走访"),
    sheets.Column("requester_name", "提出人", "Requester", example="张三"),
    sheets.Column("requester_phone", "提出人电话", "Requester phone", example="13800000000"),
    sheets.Column("status", "发布状态", "Post as", sheets.choice(POSTED_STATUS_LABELS), example="发布"),
)
# What an export adds; an import of that export reads past these columns.
NEED_EXPORT_COLUMNS: tuple[sheets.Column, ...] = (
    sheets.Column("id", "编号", "ID"),
    sheets.Column("current_status", "当前状态", "Status"),
    sheets.Column("committed", "已承诺", "Committed"),
    sheets.Column("delivered", "已交付", "Delivered"),
    sheets.Column("remaining", "待满足", "Remaining"),
    sheets.Column("created_at", "登记时间", "Posted at"),
)


class RowErrorRead(BaseModel):
    row: int
    column: str
    message: str


class RowDuplicate(BaseModel):
    row: int
    need_id: uuid.UUID | None = Field(description="The open need it resembles; null when it resembles an earlier row")
    duplicate_of_row: int | None = None
    title: str
    similarity: float


class ImportReport(BaseModel):
    dry_run: bool
    rows: int
    created: int
    errors: list[RowErrorRead]
    ignored_columns: list[str]
    ids: list[uuid.UUID] = []
    possible_duplicates: list[RowDuplicate] = Field(default=[], description="Warnings, not errors (the first 1000)")
    duplicate_count: int = 0
