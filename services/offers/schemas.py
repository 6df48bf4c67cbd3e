"""What the offers API accepts and returns: organisations, offers, pairings, reservations."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Literal, Self, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, model_validator
from pydantic_core import PydanticCustomError

from services.common import spreadsheets as sheets
from services.common.errors import bilingual_error
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
    RegionPrefix,
    VillageCode,
    check_quantity,
    check_unit,
)
from services.offers.models import OfferStatus, OrgType, PairingStatus

# --- 统一社会信用代码 (GB 32100-2015) -----------------------------------------------------------

# 31 characters: digits and capitals without I, O, Z, S, V (they read like 1, 0, 2, 5, U).
CREDIT_CODE_CHARSET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
CREDIT_CODE_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
CREDIT_CODE_LENGTH = 18


def credit_code_check_character(body: str) -> str:
    """The 18th character for the first 17: (31 - weighted sum mod 31) mod 31, through the charset."""
    total = sum(CREDIT_CODE_CHARSET.index(char) * weight for char, weight in zip(body, CREDIT_CODE_WEIGHTS, strict=True))
    return CREDIT_CODE_CHARSET[(31 - total % 31) % 31]


def check_credit_code(value: str) -> str:
    if len(value) != CREDIT_CODE_LENGTH:
        raise bilingual_error(
            Text("统一社会信用代码须为 18 位（现为 {n} 位）", "A unified social credit code has 18 characters, not {n}"),
            n=len(value),
        )
    wrong = [char for char in value if char not in CREDIT_CODE_CHARSET]
    if wrong:
        raise bilingual_error(
            Text("统一社会信用代码不能含有“{char}”（只用数字和除 I、O、Z、S、V 外的大写字母）",
                 "A unified social credit code cannot contain '{char}' (digits and capitals except I, O, Z, S, V)"),
            char=wrong[0],
        )
    if credit_code_check_character(value[:17]) != value[17]:
        raise bilingual_error(
            Text("统一社会信用代码校验位不正确，请核对", "The check character of the credit code is wrong; check the code")
        )
    return value


CreditCode = Annotated[
    str, StringConstraints(strip_whitespace=True, to_upper=True, max_length=40), AfterValidator(check_credit_code)
]

# --- shared field types -------------------------------------------------------------------------

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=2, max_length=200)]
Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=2, max_length=200)]
Description = Annotated[str, StringConstraints(strip_whitespace=True, max_length=5000)]
Note = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)]
Skill = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=40)]
Amount = Annotated[Decimal, Field(gt=0, le=MAX_QUANTITY, max_digits=15, decimal_places=2)]
Latitude = Annotated[float, Field(ge=-90, le=90)]
Longitude = Annotated[float, Field(ge=-180, le=180)]
RadiusKm = Annotated[float, Field(gt=0, le=2000)]
Grade = Annotated[int, Field(ge=1, le=5)]  # 1A..5A of the civil-affairs evaluation (等级评估)
Phone = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^\+?[0-9][0-9 \-]{4,24}$")]

T = TypeVar("T")


def _distinct(values: list[T]) -> list[T]:
    """The first occurrence of each value, in the order given: ["health", "health"] says health once."""
    return list(dict.fromkeys(values))


OrgRegions = Annotated[list[RegionPrefix], Field(min_length=1, max_length=50), AfterValidator(_distinct)]
OfferRegions = Annotated[list[RegionPrefix], Field(max_length=50), AfterValidator(_distinct)]
Categories = Annotated[list[Category], Field(min_length=1, max_length=len(Category)), AfterValidator(_distinct)]
Groups = Annotated[list[BeneficiaryGroup], Field(max_length=len(BeneficiaryGroup)), AfterValidator(_distinct)]
Skills = Annotated[list[Skill], Field(max_length=20), AfterValidator(_distinct)]

_STRICT = ConfigDict(extra="forbid", str_strip_whitespace=True)


# --- organisations ------------------------------------------------------------------------------

class Contact(BaseModel):
    model_config = _STRICT
    name: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    phone: Phone | None = None


class OrganisationCreate(BaseModel):
    model_config = _STRICT
    name: Name
    org_type: OrgType
    credit_code: CreditCode
    grade: Grade | None = None
    region_codes: OrgRegions
    contact: Contact | None = None
    description: Description = ""


class OrganisationUpdate(BaseModel):
    """Omitted fields stay. The credit code can be corrected only before verification."""

    model_config = _STRICT
    name: Name | None = None
    org_type: OrgType | None = None
    credit_code: CreditCode | None = None
    grade: Grade | None = None
    region_codes: OrgRegions | None = None
    contact: Contact | None = None
    description: Description | None = None

    @model_validator(mode="after")
    def _required_stay_set(self) -> Self:
        for field in ("name", "org_type", "credit_code", "region_codes", "description"):
            if field in self.model_fields_set and getattr(self, field) is None:
                raise bilingual_error(Text("“{field}”不能清空", "'{field}' cannot be cleared"), field=field)
        return self


class ContactRead(BaseModel):
    name: str
    phone: str | None = None


class OrganisationRead(BaseModel):
    id: uuid.UUID
    name: str
    org_type: OrgType
    credit_code: str
    grade: int | None
    region_codes: list[str]
    contact: ContactRead | None
    description: str
    verified: bool
    verified_by: str | None
    verified_at: datetime | None
    version: int
    created_by: str
    created_at: datetime
    updated_at: datetime


class OrganisationFilters(BaseModel):
    model_config = ConfigDict(extra="forbid")
    region: str | None = None
    verified: bool | None = None
    org_type: OrgType | None = None
    q: str | None = None


# --- offers -------------------------------------------------------------------------------------

def check_offer_consistency(
    *,
    kind: Kind | None,
    unit: str | None,
    quantity: Decimal | None,
    region_codes: Sequence[str],
    radius_km: float | None,
    lat: float | None,
    lon: float | None,
    available_from: date,
    available_until: date,
) -> None:
    """Rules across fields, for a new offer and for an offer after an edit alike.

    Each error names, in its context, the field it is about: an import points at that column.
    """
    try:
        if kind is not None and unit is not None:
            check_unit(kind, unit)
    except PydanticCustomError as error:
        raise _named(error, "unit") from None
    try:
        if unit is not None and quantity is not None:
            check_quantity(unit, quantity)
    except PydanticCustomError as error:
        raise _named(error, "quantity") from None
    if (lat is None) != (lon is None):
        raise _error_about("lat" if lat is None else "lon",
                           Text("纬度和经度须同时填写", "Give both latitude and longitude, or neither"))
    if radius_km is not None and lat is None:
        raise _error_about("lat", Text("按半径服务须给出中心点的纬度和经度",
                                       "A service radius needs the centre's latitude and longitude"))
    if not region_codes and radius_km is None:
        raise _error_about(
            "region_codes",
            Text("请填写服务地区（region_codes），或给出中心点和服务半径",
                 "Name the regions served (region_codes), or give a centre and a radius"),
        )
    if available_until < available_from:
        raise _error_about("available_until",
                           Text("结束日期不能早于开始日期", "available_until cannot be before available_from"))


def check_not_past(available_until: date) -> None:
    if available_until < date.today():
        raise _error_about("available_until", Text("结束日期不能早于今天", "available_until cannot be in the past"))


def _error_about(field: str, text: Text, **params: object) -> PydanticCustomError:
    return _named(bilingual_error(text, **params), field)


def _named(error: PydanticCustomError, field: str) -> PydanticCustomError:
    """The same error, naming in its context the field it is about."""
    return PydanticCustomError(error.type, error.message_template, {**(error.context or {}), "field": field})


class OfferCreate(BaseModel):
    model_config = _STRICT
    organisation_id: uuid.UUID
    title: Title
    description: Description = ""
    categories: Categories
    kind: Kind
    quantity: Amount
    unit: str
    region_codes: OfferRegions = []
    radius_km: RadiusKm | None = None
    lat: Latitude | None = None
    lon: Longitude | None = None
    available_from: date
    available_until: date
    beneficiary_groups: Groups = []
    skills: Skills = []

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        check_offer_consistency(
            kind=self.kind, unit=self.unit, quantity=self.quantity, region_codes=self.region_codes,
            radius_km=self.radius_km, lat=self.lat, lon=self.lon, available_from=self.available_from,
            available_until=self.available_until,
        )
        check_not_past(self.available_until)
        return self


class OfferUpdate(BaseModel):
    """Fields an organisation may change while an offer is active or paused. Omitted fields stay.

    Rules that involve the stored offer (unit of the stored kind, dates in order, regions or radius)
    are checked by the service on the result of the edit.
    """

    model_config = _STRICT
    title: Title | None = None
    description: Description | None = None
    categories: Categories | None = None
    kind: Kind | None = None
    quantity: Amount | None = None
    unit: str | None = None
    region_codes: OfferRegions | None = None
    radius_km: RadiusKm | None = None
    lat: Latitude | None = None
    lon: Longitude | None = None
    available_from: date | None = None
    available_until: date | None = None
    beneficiary_groups: Groups | None = None
    skills: Skills | None = None
    status: Literal["active", "paused"] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        for field in ("title", "description", "categories", "kind", "quantity", "unit", "region_codes",
                      "available_from", "available_until", "beneficiary_groups", "skills", "status"):
            if field in self.model_fields_set and getattr(self, field) is None:
                raise bilingual_error(Text("“{field}”不能清空", "'{field}' cannot be cleared"), field=field)
        if (self.kind is None) != (self.unit is None):
            raise bilingual_error(Text("修改类型时须同时给出单位", "Change kind and unit together"))
        if self.available_until is not None:
            check_not_past(self.available_until)
        return self


class OfferRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    organisation_id: uuid.UUID
    title: str
    description: str
    categories: list[Category]
    kind: Kind
    quantity: AmountOut
    unit: str
    reserved: AmountOut
    delivered: AmountOut
    available: AmountOut
    region_codes: list[str]
    radius_km: float | None
    lat: float | None
    lon: float | None
    available_from: date
    available_until: date
    beneficiary_groups: list[BeneficiaryGroup]
    skills: list[str]
    status: OfferStatus
    version: int
    created_by: str
    created_at: datetime
    updated_at: datetime


class OfferFilters(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: OfferStatus | None = None
    category: Category | None = None
    kind: Kind | None = None
    region: str | None = None
    q: str | None = None
    organisation_id: uuid.UUID | None = None


# --- pairings (结对帮扶) ---------------------------------------------------------------------------

class PairingCreate(BaseModel):
    model_config = _STRICT
    organisation_id: uuid.UUID
    village_code: VillageCode
    started_on: date | None = None
    note: Note = ""


class PairingRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    organisation_id: uuid.UUID
    village_code: str
    started_on: date
    ended_on: date | None
    note: str
    status: PairingStatus
    version: int
    created_by: str
    created_at: datetime
    updated_at: datetime


class PairingFilters(BaseModel):
    model_config = ConfigDict(extra="forbid")
    organisation_id: uuid.UUID | None = None
    village_code: str | None = None
    region: str | None = None
    status: PairingStatus | None = None


class ActionReason(BaseModel):
    """Why an offer is withdrawn: kept in its history."""

    model_config = _STRICT
    reason: Annotated[str, StringConstraints(min_length=1, max_length=500)]


# --- internal: reservations, keyed by match id ---------------------------------------------------

class ReservationCreate(BaseModel):
    model_config = _STRICT
    match_id: uuid.UUID
    quantity: Amount


class DeliveryRecord(BaseModel):
    """The cumulative quantity delivered under one match: repeating it changes nothing."""

    model_config = _STRICT
    delivered_total: Annotated[Decimal, Field(ge=0, le=MAX_QUANTITY, decimal_places=2)]


class ReservationRead(BaseModel):
    offer_id: uuid.UUID
    match_id: uuid.UUID
    quantity: AmountOut
    delivered: AmountOut
    status: str
    offer_available: AmountOut


# --- spreadsheets: the same fields as OrganisationCreate and OfferCreate, as people write them ------

ORG_TYPE_LABELS: dict[OrgType, Text] = {
    OrgType.SOCIAL_ORGANISATION: Text("社会组织", "Social organisation"),
    OrgType.FOUNDATION: Text("基金会", "Foundation"),
    OrgType.ENTERPRISE: Text("企业", "Enterprise"),
    OrgType.PARTY_BRANCH: Text("党组织", "Party organisation"),
    OrgType.VOLUNTEER_TEAM: Text("志愿服务队", "Volunteer team"),
    OrgType.SCHOOL: Text("学校", "School"),
    OrgType.OTHER: Text("其他", "Other"),
}
# How registers of social organisations name the same types.
ORG_TYPE_SYNONYMS: dict[str, OrgType] = {
    "社会团体": OrgType.SOCIAL_ORGANISATION, "社团": OrgType.SOCIAL_ORGANISATION,
    "民办非企业单位": OrgType.SOCIAL_ORGANISATION, "社会服务机构": OrgType.SOCIAL_ORGANISATION,
    "公司": OrgType.ENTERPRISE, "志愿者队伍": OrgType.VOLUNTEER_TEAM, "志愿队": OrgType.VOLUNTEER_TEAM,
    "党支部": OrgType.PARTY_BRANCH, "民主党派": OrgType.PARTY_BRANCH, "学院": OrgType.SCHOOL, "大学": OrgType.SCHOOL,
}
VERIFIED_LABELS = {True: Text("已认证", "verified"), False: Text("未认证", "unverified")}
OFFER_STATUS_LABELS: dict[OfferStatus, Text] = {
    OfferStatus.ACTIVE: Text("可对接", "active"), OfferStatus.PAUSED: Text("已暂停", "paused"),
    OfferStatus.WITHDRAWN: Text("已撤回", "withdrawn"), OfferStatus.EXHAUSTED: Text("已用完", "exhausted"),
}


def _org_type(cell: sheets.Cell) -> str:
    synonym = ORG_TYPE_SYNONYMS.get(sheets.as_text(cell))
    return synonym.value if synonym else _ORG_TYPE_CHOICE(cell)


_ORG_TYPE_CHOICE = sheets.choice(ORG_TYPE_LABELS)
_GRADE = re.compile(r"^([1-5])\s*A?\s*级?$|^(A{1,5})\s*级?$", re.IGNORECASE)


def as_grade(cell: sheets.Cell) -> int:
    """The civil-affairs evaluation grade as written: '4A', '4A级', 'AAAA', 4 → 4."""
    match = _GRADE.match(sheets.as_text(cell).replace("Ａ", "A"))
    if not match:
        raise bilingual_error(
            Text("“{value}”不是评估等级，请写成 1A 至 5A", "'{value}' is not a grade: write 1A to 5A"),
            value=sheets.as_text(cell),
        )
    return int(match.group(1)) if match.group(1) else len(match.group(2))


def grade_text(grade: int | None) -> str | None:
    return f"{grade}A" if grade else None


def as_number(cell: sheets.Cell) -> float:
    """Coordinates and radii, written as plain numbers."""
    return float(sheets.as_amount(cell))


ORGANISATION_COLUMNS: tuple[sheets.Column, ...] = (
    sheets.Column("name", "组织名称", "Name", required=True, example="惠州市慈善助学基金会", aliases=("名称", "单位名称")),
    sheets.Column("org_type", "组织类型", "Type", _org_type, required=True, example="基金会", aliases=("类型", "Org type")),
    sheets.Column("credit_code", "统一社会信用代码", "Credit code", required=True, example="53441300MJL000017Y",
                  aliases=("信用代码", "Unified social credit code")),
    sheets.Column("grade", "评估等级", "Grade", as_grade, example="4A", aliases=("等级",)),
    sheets.Column("region_codes", "服务地区", "Regions", sheets.as_list, required=True, example="4413",
                  aliases=("服务地区代码", "区划代码", "Region codes")),
    sheets.Column("contact_name", "联系人", "Contact", example="陈主任"),
    sheets.Column("contact_phone", "联系电话", "Contact phone", example="0752-2345678", aliases=("电话",)),
    sheets.Column("description", "简介", "Description", example="资助乡村学校的助学基金", aliases=("组织简介", "描述")),
)
# What an export adds; an import of that export reads past these columns.
ORGANISATION_EXPORT_COLUMNS: tuple[sheets.Column, ...] = (
    sheets.Column("id", "编号", "ID"),
    sheets.Column("verified", "认证状态", "Verification"),
    sheets.Column("verified_at", "认证时间", "Verified at"),
    sheets.Column("created_at", "登记时间", "Registered at"),
)

OFFER_COLUMNS: tuple[sheets.Column, ...] = (
    # The organisation by its unified social credit code (or its id); a member's own when left out.
    sheets.Column("organisation_id", "组织", "Organisation", example="53441300MJL000017Y",
                  aliases=("组织信用代码", "统一社会信用代码", "组织编号", "Organisation credit code", "Organisation ID")),
    sheets.Column("title", "供给名称", "Title", required=True, example="职业技能培训名额", aliases=("标题", "项目名称")),
    sheets.Column("description", "供给内容", "Description", example="职业学校实训中心提供电商、数控等课程",
                  aliases=("描述", "内容")),
    sheets.Column("categories", "领域", "Categories", sheets.choices(CATEGORY_LABELS), required=True,
                  example="人才、教育", aliases=("类别", "Category")),
    sheets.Column("kind", "帮扶方式", "Kind", sheets.choice(KIND_LABELS), required=True, example="培训", aliases=("类型",)),
    sheets.Column("quantity", "数量或金额", "Quantity", sheets.as_amount, required=True, example="60",
                  aliases=("数量", "金额")),
    sheets.Column("unit", "单位", "Unit", sheets.choice(UNIT_LABELS), required=True, example="人"),
    sheets.Column("region_codes", "服务地区", "Regions", sheets.as_list, example="4413",
                  aliases=("服务地区代码", "区划代码", "Region codes")),
    sheets.Column("radius_km", "服务半径（公里）", "Radius (km)", as_number, aliases=("服务半径", "半径")),
    sheets.Column("lat", "纬度", "Latitude", as_number, example="23.11"),
    sheets.Column("lon", "经度", "Longitude", as_number, example="114.41"),
    sheets.Column("available_from", "开始日期", "Available from", sheets.as_date, required=True,
                  example=lambda: date.today().isoformat(), aliases=("起始日期",)),
    sheets.Column("available_until", "结束日期", "Available until", sheets.as_date, required=True,
                  example=lambda: (date.today() + timedelta(days=180)).isoformat(), aliases=("截止日期",)),
    sheets.Column("beneficiary_groups", "受益群体", "Beneficiary groups", sheets.choices(GROUP_LABELS),
                  example="残疾人、失地农民"),
    sheets.Column("skills", "技能", "Skills", sheets.as_list, example="电商、数控", aliases=("可提供技能",)),
)
OFFER_EXPORT_COLUMNS: tuple[sheets.Column, ...] = (
    sheets.Column("organisation_name", "组织名称", "Organisation name"),
    sheets.Column("id", "编号", "ID"),
    sheets.Column("status", "当前状态", "Status"),
    sheets.Column("reserved", "已预留", "Reserved"),
    sheets.Column("delivered", "已交付", "Delivered"),
    sheets.Column("available", "可用", "Available"),
    sheets.Column("created_at", "登记时间", "Posted at"),
)


class RowErrorRead(BaseModel):
    row: int
    column: str
    message: str


class ImportReport(BaseModel):
    """What an import did, or (a dry run) would do: rows read, rows created, each row's errors (the first 1000)."""

    dry_run: bool
    rows: int
    created: int
    errors: list[RowErrorRead]
    error_count: int = 0
    ignored_columns: list[str]
    ids: list[uuid.UUID] = []
