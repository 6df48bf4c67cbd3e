"""Reports for coordinators and admins: a period's summary, the participation score, and a summary year by year.

What counts, and when (days are calendar days in China's time zone, UTC+8):
- needs posted: created in the needs service within the period (drafts are not posted); open: those of them open
  now; fulfilled: needs whose status became fulfilled within the period;
- value committed: matches approved within the period that still hold their quantity (approved, delivered,
  received); failed, rejected, superseded and cancelled matches never count;
- value delivered: the deliveries dated within the period, each by its own quantity (a delivery row is one
  increment: the cumulative total it also records is never summed);
- value: quantity × the reference CNY value of its unit (1 for CNY, `allocation.DEFAULT_UNIT_VALUES_CNY`);
- beneficiaries reached: the beneficiaries of the needs that received a delivery within the period, each need once;
- waits: from the need's posting to the match's approval (matches approved in the period), and to the receipt
  (receipts confirmed in the period); satisfaction: the ratings of the receipts confirmed in the period.

Rules only: the queries are in repository.py; this module never writes.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from typing import Any

from openpyxl import Workbook
from sqlalchemy.ext.asyncio import AsyncSession

from services.common import spreadsheets as sheets
from services.common.errors import CORRECT_FIELDS, FieldError, Forbidden, ValidationFailed
from services.common.identity import Principal, Role
from services.common.messages import Locale, Text
from services.common.vocabulary import CATEGORY_LABELS, KIND_LABELS
from services.matching import repository
from services.matching.allocation import DEFAULT_UNIT_VALUES_CNY
from services.matching.schemas import (
    FormulaRead,
    NeedCountsRead,
    ParticipationRead,
    ReportTotalsRead,
    SummaryReportRead,
    ValueRowRead,
    YearRead,
    YearsReportRead,
)

# China keeps UTC+8 all year: a fixed offset is exact, and needs no time-zone database.
REPORT_TZ = timezone(timedelta(hours=8), "Asia/Shanghai")
REPORT_TZ_NAME = "Asia/Shanghai"
MAX_YEARS = 30
FIRST_YEAR = 2000

CENT = Decimal("0.01")
TENTH = Decimal("0.1")
FOURTH_PLACE = Decimal("0.0001")
UNIT_VALUES: dict[str, Decimal] = {unit: Decimal(str(value)) for unit, value in DEFAULT_UNIT_VALUES_CNY.items()}

# --- the organisation participation score (民政评估：社会组织参与度) ---------------------------------
WEIGHTS: dict[str, Decimal] = {"delivered": Decimal("0.5"), "receipts": Decimal("0.3"), "satisfaction": Decimal("0.2")}
SCORE_FORMULA = Text(
    "参与度得分 = 100 × (0.5 × D + 0.3 × R + 0.2 × S)，保留一位小数（四舍五入）。"
    "D = 该组织在期内交付的价值 ÷ 各组织中最大的期内交付价值；"
    "R = 该组织在期内获确认收货的对接数 ÷ 各组织中最多的确认数；"
    "S = (该组织期内确认收货的平均满意度 − 1) ÷ 4，无确认收货时为 0。"
    "参评组织：期内在本地区有对接获批、有交付或有确认收货的组织；最大值为 0 时相应分项为 0。",
    "Participation score = 100 × (0.5 × D + 0.3 × R + 0.2 × S), rounded half up to one decimal. "
    "D = the organisation's value delivered in the period ÷ the largest value delivered by any organisation; "
    "R = its receipts confirmed in the period ÷ the most receipts confirmed by any organisation; "
    "S = (its average satisfaction rating in the period − 1) ÷ 4, or 0 without receipts. "
    "Organisations scored: those with a match approved, a delivery or a receipt in the region in the period; "
    "a component whose largest value is 0 is 0.",
)

REGION_FORBIDDEN = Text(
    "只有协调员（本辖区内）和管理员可以查看报表；{region} 不在你的辖区内。",
    "Only coordinators (within their region) and admins may see reports; {region} is outside your region.",
)
REPORTS_FORBIDDEN = Text("只有协调员和管理员可以查看报表。", "Only coordinators and admins may see reports.")


class ReportFormat(StrEnum):
    JSON = "json"
    CSV = "csv"
    XLSX = "xlsx"


# --- who may see which region ---------------------------------------------------------------------

def report_region(principal: Principal, region: str | None) -> str:
    """The region prefix a report covers: an admin's choice ('' for everywhere), a coordinator's own region or
    a part of it. Anyone else, or a coordinator asking about another region, is refused (403)."""
    if principal.is_admin:
        return region or ""
    if principal.role is not Role.COORDINATOR or not principal.region_code:
        raise Forbidden(REPORTS_FORBIDDEN)
    if region is None:
        return principal.region_code
    if not region.startswith(principal.region_code):
        raise Forbidden(REGION_FORBIDDEN, region=region)
    return region


# --- periods --------------------------------------------------------------------------------------

def today() -> date:
    return datetime.now(REPORT_TZ).date()


def day_start(day: date) -> datetime:
    """The first instant of a day in China, in UTC."""
    return datetime.combine(day, time(0), REPORT_TZ).astimezone(UTC)


def _invalid(field_name: str, message: Text, **params: object) -> ValidationFailed:
    return ValidationFailed(CORRECT_FIELDS, errors=[FieldError(field_name, message, **params)])


def check_period(date_from: date | None, date_to: date | None) -> tuple[date, date]:
    """The period, first and last day included; by default from 1 January of this year to today."""
    last = date_to or today()
    first = date_from or date(last.year, 1, 1)
    if first > last:
        raise _invalid("from", Text("开始日期不能晚于结束日期", "The start date cannot be after the end date"))
    return first, last


def check_years(from_year: int | None, to_year: int | None) -> tuple[int, int]:
    last = to_year or today().year
    first = from_year or last - 4  # five years, as the reports this replaces
    if first > last:
        raise _invalid("from_year", Text("开始年份不能晚于结束年份", "The first year cannot be after the last"))
    if last - first + 1 > MAX_YEARS:
        raise _invalid("from_year", Text("一次最多 {n} 年", "At most {n} years at a time"), n=MAX_YEARS)
    return first, last


# --- figures of one period ------------------------------------------------------------------------

def value_of(unit: str, quantity: Decimal) -> Decimal:
    """The CNY value of a quantity, exact to the fen (units without a reference value count 0)."""
    return (quantity * UNIT_VALUES.get(unit, Decimal(0))).quantize(CENT, rounding=ROUND_HALF_UP)


DIMENSIONS = ("category", "kind", "county", "organisation")


@dataclass
class _Values:
    committed: Decimal = Decimal(0)
    delivered: Decimal = Decimal(0)


@dataclass
class _Organisation:
    name: str = ""
    delivered: Decimal = Decimal(0)
    receipts: int = 0
    ratings: int = 0


@dataclass
class PeriodFigures:
    """Everything a report says about one period, before it is shaped for the caller."""

    needs: tuple[int, int, int] = (0, 0, 0)
    committed: Decimal = Decimal(0)
    delivered: Decimal = Decimal(0)
    matches_approved: int = 0
    matches_delivered: int = 0
    deliveries: int = 0
    beneficiaries: int = 0
    receipts: int = 0
    ratings: int = 0
    approval_wait: tuple[Decimal, int] = (Decimal(0), 0)  # Σ seconds, how many
    receipt_wait: tuple[Decimal, int] = (Decimal(0), 0)
    by: dict[str, dict[str, _Values]] = field(default_factory=lambda: {d: {} for d in DIMENSIONS})
    organisations: dict[uuid.UUID, _Organisation] = field(default_factory=dict)


def _add(figures: PeriodFigures, row: Any, amount: Decimal, what: str) -> None:
    _unit, category, kind, organisation_id, name, county = row[:6]
    keys = {"category": category or "", "kind": kind or "", "county": county or "", "organisation": str(organisation_id)}
    for dimension, key in keys.items():
        values = figures.by[dimension].setdefault(key, _Values())
        setattr(values, what, getattr(values, what) + amount)
    organisation = figures.organisations.setdefault(organisation_id, _Organisation())
    organisation.name = name or organisation.name
    if what == "delivered":
        organisation.delivered += amount


async def period_figures(session: AsyncSession, *, region: str, first: date, last: date, waits: bool = True) -> PeriodFigures:
    start, end = day_start(first), day_start(last + timedelta(days=1))
    figures = PeriodFigures(needs=await repository.needs_counts(session, region=region, start=start, end=end))
    for row in await repository.committed_groups(session, region=region, start=start, end=end):
        amount = value_of(row[0], repository._amount(row[6]))
        figures.committed += amount
        figures.matches_approved += int(row[7])
        _add(figures, row, amount, "committed")
    for row in await repository.delivered_groups(session, region=region, first=first, last=last):
        amount = value_of(row[0], repository._amount(row[6]))
        figures.delivered += amount
        figures.deliveries += int(row[7])
        figures.matches_delivered += int(row[8] or 0)
        _add(figures, row, amount, "delivered")
    figures.beneficiaries = await repository.beneficiaries_reached(session, region=region, first=first, last=last)
    for organisation_id, name, receipts, ratings in await repository.receipt_groups(session, region=region, start=start, end=end):
        organisation = figures.organisations.setdefault(organisation_id, _Organisation())
        organisation.name = name or organisation.name
        organisation.receipts += int(receipts)
        organisation.ratings += int(ratings)
        figures.receipts += int(receipts)
        figures.ratings += int(ratings)
    if waits:
        figures.approval_wait = await repository.approval_waits(session, region=region, start=start, end=end)
        figures.receipt_wait = await repository.receipt_waits(session, region=region, start=start, end=end)
    return figures


# --- the participation score ----------------------------------------------------------------------

def _ratio(part: Decimal, whole: Decimal) -> Decimal:
    return part / whole if whole > 0 else Decimal(0)


def participation(organisations: Mapping[uuid.UUID, _Organisation]) -> list[ParticipationRead]:
    """Every organisation active in the period, best first (then by value delivered, name, id)."""
    most_delivered = max((o.delivered for o in organisations.values()), default=Decimal(0))
    most_receipts = Decimal(max((o.receipts for o in organisations.values()), default=0))
    rows = []
    for organisation_id, o in organisations.items():
        d = _ratio(o.delivered, most_delivered)
        r = _ratio(Decimal(o.receipts), most_receipts)
        s = (Decimal(o.ratings) / o.receipts - 1) / 4 if o.receipts else Decimal(0)
        score = 100 * (WEIGHTS["delivered"] * d + WEIGHTS["receipts"] * r + WEIGHTS["satisfaction"] * s)
        rows.append(ParticipationRead(
            organisation_id=organisation_id, name=o.name, value_delivered=o.delivered, receipts_confirmed=o.receipts,
            satisfaction_avg=_average(o.ratings, o.receipts), delivered_component=d.quantize(FOURTH_PLACE, ROUND_HALF_UP),
            receipts_component=r.quantize(FOURTH_PLACE, ROUND_HALF_UP),
            satisfaction_component=s.quantize(FOURTH_PLACE, ROUND_HALF_UP), score=score.quantize(TENTH, ROUND_HALF_UP),
        ))
    rows.sort(key=lambda row: (-row.score, -row.value_delivered, row.name, str(row.organisation_id)))
    return rows


def formula(locale: Locale) -> FormulaRead:
    return FormulaRead(text=SCORE_FORMULA.in_locale(locale), zh=SCORE_FORMULA.zh, en=SCORE_FORMULA.en, weights=WEIGHTS)


# --- the reports ----------------------------------------------------------------------------------

def _average(total: int, count: int) -> Decimal | None:
    return (Decimal(total) / count).quantize(CENT, ROUND_HALF_UP) if count else None


def _days(wait: tuple[Decimal, int]) -> Decimal | None:
    seconds, count = wait
    if not count:
        return None
    return (seconds / 86_400 / count).quantize(TENTH, ROUND_HALF_UP)


def _label(labels: Mapping[Any, Text], locale: Locale) -> Callable[[str], str]:
    return lambda key: labels[key].in_locale(locale) if key in labels else key


def _value_rows(values: Mapping[str, _Values], name: Callable[[str], str]) -> list[ValueRowRead]:
    rows = [ValueRowRead(key=key, name=name(key), value_committed=v.committed, value_delivered=v.delivered)
            for key, v in values.items()]
    rows.sort(key=lambda row: (-row.value_delivered, -row.value_committed, row.key))
    return rows


async def summary(
    session: AsyncSession, *, principal: Principal, region: str | None, date_from: date | None, date_to: date | None,
    locale: Locale,
) -> SummaryReportRead:
    scope = report_region(principal, region)
    first, last = check_period(date_from, date_to)
    f = await period_figures(session, region=scope, first=first, last=last)
    names = {str(key): o.name for key, o in f.organisations.items()}
    posted, still_open, fulfilled = f.needs
    return SummaryReportRead(
        region=scope, date_from=first, date_to=last, timezone=REPORT_TZ_NAME,
        needs=NeedCountsRead(posted=posted, open=still_open, fulfilled=fulfilled),
        totals=ReportTotalsRead(
            value_committed=f.committed, value_delivered=f.delivered, matches_approved=f.matches_approved,
            matches_delivered=f.matches_delivered, deliveries=f.deliveries, beneficiaries_reached=f.beneficiaries,
            receipts_confirmed=f.receipts, satisfaction_avg=_average(f.ratings, f.receipts),
            avg_days_to_approval=_days(f.approval_wait), avg_days_to_receipt=_days(f.receipt_wait),
        ),
        by_category=_value_rows(f.by["category"], _label(CATEGORY_LABELS, locale)),
        by_kind=_value_rows(f.by["kind"], _label(KIND_LABELS, locale)),
        by_county=_value_rows(f.by["county"], lambda key: key),
        by_organisation=_value_rows(f.by["organisation"], lambda key: names.get(key, "")),
        participation=participation(f.organisations),
        participation_formula=formula(locale),
        unit_values_cny=UNIT_VALUES,
    )


async def years(
    session: AsyncSession, *, principal: Principal, region: str | None, from_year: int | None, to_year: int | None
) -> YearsReportRead:
    scope = report_region(principal, region)
    first, last = check_years(from_year, to_year)
    rows = []
    for year in range(first, last + 1):
        f = await period_figures(session, region=scope, first=date(year, 1, 1), last=date(year, 12, 31), waits=False)
        rows.append(YearRead(
            year=year, value_committed=f.committed, value_delivered=f.delivered, beneficiaries_reached=f.beneficiaries,
            needs_posted=f.needs[0], matches_approved=f.matches_approved, matches_delivered=f.matches_delivered,
            organisations=len(f.organisations),
        ))
    return YearsReportRead(region=scope, from_year=first, to_year=last, timezone=REPORT_TZ_NAME, years=rows)


# --- the same tables as CSV and XLSX --------------------------------------------------------------

@dataclass(frozen=True)
class Table:
    """One table of a report: in XLSX a sheet of its own; in CSV its rows in the long table, one cell per line."""

    code: str
    title: Text
    metrics: Sequence[tuple[str, Text]]
    rows: Sequence[tuple[str, str, Sequence[Any]]]  # key, name, one value per metric


KEY, NAME = Text("代码", "Key"), Text("名称", "Name")
LONG_HEADER = (Text("表代码", "Table code"), Text("表", "Table"), KEY, NAME, Text("指标代码", "Metric code"),
               Text("指标", "Metric"), Text("数值", "Value"))
ALL = Text("合计", "All")

_VALUE_METRICS = (("value_committed", Text("承诺价值（元）", "Value committed (CNY)")),
                  ("value_delivered", Text("交付价值（元）", "Value delivered (CNY)")))
SUMMARY_METRICS: dict[str, Sequence[tuple[str, Text]]] = {
    "needs": (("posted", Text("发布需求数", "Needs posted")), ("open", Text("其中仍开放", "Of them still open")),
              ("fulfilled", Text("期内满足需求数", "Needs fulfilled"))),
    "totals": (
        *_VALUE_METRICS,
        ("matches_approved", Text("获批对接数", "Matches approved")),
        ("matches_delivered", Text("交付完成对接数", "Matches fully delivered")),
        ("deliveries", Text("交付次数", "Deliveries")),
        ("beneficiaries_reached", Text("受益人数", "Beneficiaries reached")),
        ("receipts_confirmed", Text("确认收货数", "Receipts confirmed")),
        ("satisfaction_avg", Text("平均满意度", "Average satisfaction")),
        ("avg_days_to_approval", Text("发布至批准平均天数", "Average days from posting to approval")),
        ("avg_days_to_receipt", Text("发布至收货平均天数", "Average days from posting to receipt")),
    ),
    "by_category": _VALUE_METRICS, "by_kind": _VALUE_METRICS, "by_county": _VALUE_METRICS,
    "by_organisation": _VALUE_METRICS,
    "participation": (
        ("value_delivered", Text("交付价值（元）", "Value delivered (CNY)")),
        ("receipts_confirmed", Text("确认收货数", "Receipts confirmed")),
        ("satisfaction_avg", Text("平均满意度", "Average satisfaction")),
        ("delivered_component", Text("交付分项 D", "Delivered component D")),
        ("receipts_component", Text("收货分项 R", "Receipts component R")),
        ("satisfaction_component", Text("满意度分项 S", "Satisfaction component S")),
        ("score", Text("参与度得分", "Participation score")),
    ),
    "formula": (("formula", Text("参与度得分公式", "Participation score formula")),),
}
SUMMARY_TITLES = {
    "needs": Text("需求", "Needs"), "totals": Text("总计", "Totals"), "by_category": Text("按类别", "By category"),
    "by_kind": Text("按资源类型", "By kind"), "by_county": Text("按县区", "By county"),
    "by_organisation": Text("按组织", "By organisation"), "participation": Text("组织参与度", "Participation"),
    "formula": Text("评分公式", "Score formula"),
}
YEAR_METRICS: Sequence[tuple[str, Text]] = (
    *_VALUE_METRICS,
    ("beneficiaries_reached", Text("帮扶人数", "People helped")),
    ("needs_posted", Text("发布需求数", "Needs posted")),
    ("matches_approved", Text("获批对接项目数", "Matches approved")),
    ("matches_delivered", Text("交付完成项目数", "Matches fully delivered")),
    ("organisations", Text("参与组织数", "Organisations taking part")),
)


def _cells(values: Mapping[str, Any], metrics: Sequence[tuple[str, Text]]) -> list[Any]:
    return [values[code] for code, _ in metrics]


def summary_tables(report: SummaryReportRead, locale: Locale) -> list[Table]:
    everything = ALL.in_locale(locale)
    tables: list[Table] = [
        Table("needs", SUMMARY_TITLES["needs"], SUMMARY_METRICS["needs"],
              [(report.region, everything, _cells(report.needs.model_dump(), SUMMARY_METRICS["needs"]))]),
        Table("totals", SUMMARY_TITLES["totals"], SUMMARY_METRICS["totals"],
              [(report.region, everything, _cells(report.totals.model_dump(), SUMMARY_METRICS["totals"]))]),
    ]
    for code in ("by_category", "by_kind", "by_county", "by_organisation"):
        rows: list[ValueRowRead] = getattr(report, code)
        tables.append(Table(code, SUMMARY_TITLES[code], SUMMARY_METRICS[code],
                            [(row.key, row.name, _cells(row.model_dump(), SUMMARY_METRICS[code])) for row in rows]))
    tables.append(Table("participation", SUMMARY_TITLES["participation"], SUMMARY_METRICS["participation"], [
        (str(row.organisation_id), row.name, _cells(row.model_dump(), SUMMARY_METRICS["participation"]))
        for row in report.participation
    ]))
    tables.append(Table("formula", SUMMARY_TITLES["formula"], SUMMARY_METRICS["formula"],
                        [("", "", [report.participation_formula.text])]))
    return tables


def years_tables(report: YearsReportRead) -> list[Table]:
    rows = [(str(row.year), str(row.year), _cells(row.model_dump(), YEAR_METRICS)) for row in report.years]
    return [Table("years", Text("年度汇总", "Year by year"), YEAR_METRICS, rows)]


def csv_bytes(tables: Iterable[Table], locale: Locale) -> bytes:
    """A long table: one line per cell of every table (table, key, name, metric, value), UTF-8 with a BOM."""
    lines = [sheets.csv_line([text.in_locale(locale) for text in LONG_HEADER])]
    for table in tables:
        title = table.title.in_locale(locale)
        for key, name, values in table.rows:
            for (code, label), value in zip(table.metrics, values, strict=True):
                lines.append(sheets.csv_line([table.code, title, key, name, code, label.in_locale(locale), _text(value)]))
    return ("\ufeff" + "".join(lines)).encode()


def _text(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value, "f")
    return value


_SHEET_FORBIDDEN = str.maketrans({c: " " for c in "[]:*?/\\"})


def xlsx_bytes(tables: Iterable[Table], locale: Locale) -> bytes:
    """One sheet per table, named by the table's title; a header row, then key, name and the metrics."""
    workbook = Workbook()
    first = workbook.active
    if first is not None:
        workbook.remove(first)
    for table in tables:
        sheet = workbook.create_sheet(table.title.in_locale(locale).translate(_SHEET_FORBIDDEN)[:31])
        sheet.append([KEY.in_locale(locale), NAME.in_locale(locale), *(label.in_locale(locale) for _, label in table.metrics)])
        for key, name, values in table.rows:
            sheet.append([key, name, *(_number(value) for value in values)])
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def _number(value: Any) -> Any:
    """Decimals as numbers Excel can sum: every figure here has at most 4 decimals, exact as a float's shortest form."""
    return float(value) if isinstance(value, Decimal) else value
