"""Reports: a small platform whose figures are worked out by hand below, period by period.

The fixture (D is today in Beijing; values at the reference unit values: a set 500 CNY, CNY 1):

  organisation A (惠州市慈善总会), B (惠城区义工联合会), both of Huizhou; C (南宁市爱心基金会), of Nanning.
  n1  VILLAGE_A  education/goods  10 sets   120 beneficiaries  posted D-10 (exactly 10 days before m1's approval)
  n2  VILLAGE_B  education/goods  10 sets    80 beneficiaries  posted D-4  (4 days before m2's approval)
  n3  VILLAGE_C  infrastructure/funds 20000 CNY  300 beneficiaries  posted D-1 (1 day before m3's approval)
  n4  CENSHAN    education/goods   5 sets    50 beneficiaries  posted D
  n5  VILLAGE_A  education/goods   2 sets    10 beneficiaries  posted a microsecond before D-10 began (so on D-11)

  m1 n1×A  4 sets  approved D; deliveries 1 on D-11, 2 on D-10, 1 on D-5 (complete); receipt rated 5
  m2 n2×B  6 sets  approved D; deliveries 3 on D-4, 3 on D (complete); receipt rated 3
  m3 n3×A  20000 CNY approved D; delivery 20000 on D-5 (complete, n3 fulfilled); receipt rated 4
  m4 n2×B  2 sets  approved D, then cancelled           → never counts
  m5 n1×B  3 sets  proposed, then rejected              → never counts
  m6 n4×C  5 sets  approved D; delivery 5 on D-5 (complete, n4 fulfilled); receipt rated 2   (Nanning)
"""

from __future__ import annotations

import csv
import io
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from python_calamine import CalamineWorkbook
from sqlalchemy import select

from services.matching import reports
from services.matching.models import MatchEvent, NeedRM
from tests.matching.conftest import CENSHAN, COUNTY, TOWNSHIP, VILLAGE_A, VILLAGE_B, VILLAGE_C, Platform, problem

D = reports.today()


def day(offset: int) -> str:
    return (D + timedelta(days=offset)).isoformat()


@dataclass
class Fixture:
    organisations: dict[str, str]
    needs: dict[str, str]
    matches: dict[str, str]


async def _match(platform: Platform, need: str, offer: str, quantity: int, *, approve: bool = True) -> str:
    body = {"need_id": need, "offer_id": offer, "quantity": str(quantity)}
    response = await platform.matching.post("/api/matches", json=body, headers=platform.admin)
    assert response.status_code == 201, response.text
    match_id: str = response.json()["id"]
    if approve:
        approved = await platform.matching.post(f"/api/matches/{match_id}/approve", headers=platform.admin)
        assert approved.status_code == 200 and approved.json()["status"] == "approved", approved.text
    return match_id


async def _deliver(platform: Platform, match_id: str, organisation: str, quantity: int, on: str) -> None:
    response = await platform.matching.post(f"/api/matches/{match_id}/deliveries", json={"quantity": str(quantity), "delivered_on": on},
                                            headers=platform.tokens.member(organisation))
    assert response.status_code == 201, response.text


async def _receive(platform: Platform, match_id: str, village: str, quantity: int, rating: int) -> None:
    body = {"quantity": str(quantity), "satisfaction": rating}
    response = await platform.matching.post(f"/api/matches/{match_id}/receipt", json=body, headers=platform.tokens.officer(village))
    assert response.status_code == 200, response.text


async def build(platform: Platform) -> Fixture:
    org = {
        "A": await platform.organisation(name="惠州市慈善总会"),
        "B": await platform.organisation(name="惠城区义工联合会"),
        "C": await platform.organisation(name="南宁市爱心基金会", region_codes=["4501"]),
    }
    desks_a = (await platform.offer(org["A"], quantity=20))["id"]
    funds_a = (await platform.offer(org["A"], title="村道硬化资金", categories=["infrastructure"], kind="funds",
                                    unit="CNY", quantity=100000))["id"]
    desks_b = (await platform.offer(org["B"], quantity=20))["id"]
    desks_c = (await platform.offer(org["C"], quantity=5, region_codes=["450123"]))["id"]
    need = {
        "n1": (await platform.need(VILLAGE_A, quantity=10, beneficiaries=120))["id"],
        "n2": (await platform.need(VILLAGE_B, quantity=10, beneficiaries=80))["id"],
        "n3": (await platform.need(VILLAGE_C, title="村道硬化", category="infrastructure", kind="funds", unit="CNY",
                                   quantity=20000, beneficiaries=300, beneficiary_groups=["general"]))["id"],
        "n4": (await platform.need(CENSHAN, quantity=5, beneficiaries=50))["id"],
        "n5": (await platform.need(VILLAGE_A, quantity=2, beneficiaries=10))["id"],
    }
    await platform.sync()
    m = {
        "m1": await _match(platform, need["n1"], desks_a, 4),
        "m2": await _match(platform, need["n2"], desks_b, 6),
        "m3": await _match(platform, need["n3"], funds_a, 20000),
        "m4": await _match(platform, need["n2"], desks_b, 2),
        "m5": await _match(platform, need["n1"], desks_b, 3, approve=False),
        "m6": await _match(platform, need["n4"], desks_c, 5),
    }
    cancelled = await platform.matching.post(f"/api/matches/{m['m4']}/cancel", json={"reason": "村里另有安排"}, headers=platform.admin)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled", cancelled.text
    rejected = await platform.matching.post(f"/api/matches/{m['m5']}/reject", json={"reason": "重复"}, headers=platform.admin)
    assert rejected.status_code == 200 and rejected.json()["status"] == "rejected", rejected.text

    await _deliver(platform, m["m1"], org["A"], 1, day(-11))
    await _deliver(platform, m["m1"], org["A"], 2, day(-10))
    await _deliver(platform, m["m1"], org["A"], 1, day(-5))
    await _deliver(platform, m["m2"], org["B"], 3, day(-4))
    await _deliver(platform, m["m2"], org["B"], 3, day(0))
    await _deliver(platform, m["m3"], org["A"], 20000, day(-5))
    await _deliver(platform, m["m6"], org["C"], 5, day(-5))
    await _receive(platform, m["m1"], VILLAGE_A, 4, 5)
    await _receive(platform, m["m2"], VILLAGE_B, 6, 3)
    await _receive(platform, m["m3"], VILLAGE_C, 20000, 4)
    await _receive(platform, m["m6"], CENSHAN, 5, 2)
    await platform.sync()  # needs learnt of the deliveries: n3 and n4 are fulfilled now

    # Needs posted earlier than today: the read model's posting times, as the needs feed would have carried them.
    async with platform.matching_app.state.db.transaction() as session:
        approved = dict((await session.execute(
            select(MatchEvent.match_id, MatchEvent.created_at).where(MatchEvent.action == "approved")
        )).tuples().all())
        rows = {str(row.id): row for row in (await session.scalars(select(NeedRM))).all()}
        for name, match, days in (("n1", "m1", 10), ("n2", "m2", 4), ("n3", "m3", 1)):
            rows[need[name]].posted_at = approved[uuid.UUID(m[match])] - timedelta(days=days)
        rows[need["n5"]].posted_at = reports.day_start(D - timedelta(days=10)) - timedelta(microseconds=1)
    return Fixture(org, need, m)


async def _summary(platform: Platform, headers: dict[str, str] | None = None, **params: Any) -> Any:
    return await platform.matching.get("/api/reports/summary", params=params, headers=headers or platform.admin)


async def test_the_summary_of_a_period_adds_up_by_hand(platform: Platform) -> None:
    f = await build(platform)
    response = await _summary(platform, region=COUNTY, **{"from": day(-10), "to": day(0)})
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["region"] == COUNTY and report["date_from"] == day(-10) and report["date_to"] == day(0)
    # Posted D-10 .. D in the county: n1 (D-10, the first day counts), n2, n3; n5 was posted on D-11; n4 is Nanning's.
    # Still open: n1 (4 of 10 delivered), n2 (6 of 10); n3 is fulfilled, today.
    assert report["needs"] == {"posted": 3, "open": 2, "fulfilled": 1}
    totals = report["totals"]
    # Committed: m1 4 sets × 500 = 2000 + m2 6 × 500 = 3000 + m3 20000 CNY = 25000; m4 (cancelled), m5 (rejected) not.
    assert totals["value_committed"] == "25000.00" and totals["matches_approved"] == 3
    # Delivered D-10..D: m1 2 + 1 sets = 1500 (its D-11 delivery is outside), m2 6 sets = 3000, m3 20000 → 24500,
    # in 5 deliveries; m1 (D-5), m2 (D) and m3 (D-5) completed within the period.
    assert totals["value_delivered"] == "24500.00" and totals["deliveries"] == 5 and totals["matches_delivered"] == 3
    # Beneficiaries of the needs delivered to: n1 120 + n2 80 + n3 300, each need once although n1 had two deliveries.
    assert totals["beneficiaries_reached"] == 500
    # Receipts: m1 5, m2 3, m3 4 → 3 receipts, (5 + 3 + 4) / 3 = 4.00.
    assert totals["receipts_confirmed"] == 3 and totals["satisfaction_avg"] == "4.00"
    # Waits: posted 10, 4 and 1 days before approval → (10 + 4 + 1) / 3 = 5.0; receipts a few seconds later → 5.0.
    assert totals["avg_days_to_approval"] == "5.0" and totals["avg_days_to_receipt"] == "5.0"

    def values(rows: list[dict[str, Any]]) -> list[tuple[str, str, str, str]]:
        return [(row["key"], row["name"], row["value_committed"], row["value_delivered"]) for row in rows]

    # Most delivered first. Education: committed 2000 + 3000, delivered 1500 + 3000; infrastructure 20000 / 20000.
    assert values(report["by_category"]) == [("infrastructure", "基础设施", "20000.00", "20000.00"),
                                            ("education", "教育", "5000.00", "4500.00")]
    assert values(report["by_kind"]) == [("funds", "资金", "20000.00", "20000.00"), ("goods", "物资", "5000.00", "4500.00")]
    assert values(report["by_county"]) == [(COUNTY, COUNTY, "25000.00", "24500.00")]
    # A: m1 2000 + m3 20000 committed, 1500 + 20000 delivered; B: m2 3000 / 3000.
    assert values(report["by_organisation"]) == [(f.organisations["A"], "惠州市慈善总会", "22000.00", "21500.00"),
                                                (f.organisations["B"], "惠城区义工联合会", "3000.00", "3000.00")]
    assert report["unit_values_cny"]["set"] == "500.0" and report["unit_values_cny"]["CNY"] == "1.0"


async def test_participation_scores_follow_the_formula(platform: Platform) -> None:
    f = await build(platform)
    report = (await _summary(platform, region=COUNTY, **{"from": day(-10), "to": day(0)})).json()
    # Largest delivered value 21500 (A), most receipts 2 (A).
    # A: D = 21500/21500 = 1, R = 2/2 = 1, S = ((5 + 4)/2 − 1)/4 = 0.875 → 100 × (0.5 + 0.3 + 0.175) = 97.5
    # B: D = 3000/21500 = 0.13953…, R = 1/2 = 0.5, S = (3 − 1)/4 = 0.5 → 100 × (0.069767… + 0.15 + 0.1) = 31.98 → 32.0
    rows = [(row["organisation_id"], row["value_delivered"], row["receipts_confirmed"], row["satisfaction_avg"],
             row["delivered_component"], row["receipts_component"], row["satisfaction_component"], row["score"])
            for row in report["participation"]]
    assert rows == [
        (f.organisations["A"], "21500.00", 2, "4.50", "1.0000", "1.0000", "0.8750", "97.5"),
        (f.organisations["B"], "3000.00", 1, "3.00", "0.1395", "0.5000", "0.5000", "32.0"),
    ]
    formula = report["participation_formula"]
    assert "0.5 × D + 0.3 × R + 0.2 × S" in formula["zh"] and "0.5 × D + 0.3 × R + 0.2 × S" in formula["en"]
    assert formula["text"] == formula["zh"] and formula["weights"] == {"delivered": "0.5", "receipts": "0.3", "satisfaction": "0.2"}
    english = (await _summary(platform, platform.admin | {"Accept-Language": "en"}, region=COUNTY,
                              **{"from": day(-10), "to": day(0)})).json()
    assert english["participation_formula"]["text"] == formula["en"]
    assert english["by_category"][0]["name"] == "Infrastructure"


async def test_period_boundaries(platform: Platform) -> None:
    f = await build(platform)
    earlier = (await _summary(platform, region=COUNTY, **{"from": day(-10), "to": day(-5)})).json()
    # Posted D-10..D-5: n1 only (n5 a microsecond before D-10 began); nothing was approved or confirmed then.
    assert earlier["needs"] == {"posted": 1, "open": 1, "fulfilled": 0}
    totals = earlier["totals"]
    assert totals["value_committed"] == "0.00" and totals["matches_approved"] == 0
    # Deliveries on D-10 and D-5 count (both ends are included): m1 2 + 1 sets = 1500, m3 20000 → 21500, 3 deliveries;
    # m1 and m3 completed on D-5; beneficiaries n1 120 + n3 300.
    assert (totals["value_delivered"], totals["deliveries"], totals["matches_delivered"]) == ("21500.00", 3, 2)
    assert totals["beneficiaries_reached"] == 420
    assert totals["receipts_confirmed"] == 0 and totals["satisfaction_avg"] is None
    assert totals["avg_days_to_approval"] is None and totals["avg_days_to_receipt"] is None
    # Only A took part: D = 1, R = 0 (no receipts anywhere, so 0), S = 0 → 50.0.
    assert [(row["organisation_id"], row["score"]) for row in earlier["participation"]] == [(f.organisations["A"], "50.0")]

    before = (await _summary(platform, region=COUNTY, **{"from": day(-30), "to": day(-11)})).json()
    # n5, posted on D-11; m1's first set, 500, delivered on D-11.
    assert before["needs"] == {"posted": 1, "open": 1, "fulfilled": 0}
    assert before["totals"]["value_delivered"] == "500.00" and before["totals"]["beneficiaries_reached"] == 120

    later = (await _summary(platform, region=COUNTY, **{"from": day(1), "to": day(1)})).json()
    assert later["needs"] == {"posted": 0, "open": 0, "fulfilled": 0}
    assert later["totals"]["value_committed"] == "0.00" and later["totals"]["value_delivered"] == "0.00"
    assert later["participation"] == [] and later["by_category"] == []

    bad = problem(await _summary(platform, region=COUNTY, **{"from": day(0), "to": day(-1)}), 422)
    assert bad["errors"][0]["field"] == "from"


async def test_region_scoping(platform: Platform) -> None:
    f = await build(platform)
    period = {"from": day(-10), "to": day(0)}
    tokens = platform.tokens
    # Nanning's coordinator: their own figures by default, 403 for Huizhou's county.
    problem(await _summary(platform, tokens.coordinator("450123"), region=COUNTY, **period), 403)
    own = (await _summary(platform, tokens.coordinator("450123"), **period)).json()
    assert own["region"] == "450123"
    # m6: 5 sets × 500 = 2500 committed and delivered; n4 posted today, fulfilled; 50 beneficiaries; one receipt rated 2.
    assert own["needs"] == {"posted": 1, "open": 0, "fulfilled": 1}
    assert (own["totals"]["value_committed"], own["totals"]["value_delivered"]) == ("2500.00", "2500.00")
    assert own["totals"]["beneficiaries_reached"] == 50 and own["totals"]["satisfaction_avg"] == "2.00"
    # C alone: D = 1, R = 1, S = (2 − 1)/4 = 0.25 → 100 × (0.5 + 0.3 + 0.05) = 85.0
    assert [(row["organisation_id"], row["score"]) for row in own["participation"]] == [(f.organisations["C"], "85.0")]

    # Huizhou's county coordinator may narrow to a township: villages A and B → m1 1500 + m2 3000 delivered.
    township = (await _summary(platform, tokens.coordinator(COUNTY), region=TOWNSHIP, **period)).json()
    assert township["totals"]["value_delivered"] == "4500.00" and township["totals"]["value_committed"] == "5000.00"
    problem(await _summary(platform, tokens.coordinator(TOWNSHIP), region=COUNTY, **period), 403)

    # The admin sees everything: county + Nanning → committed 25000 + 2500, delivered 24500 + 2500, 3 + 1 receipts
    # rated 5, 3, 4, 2 → 14 / 4 = 3.50; needs posted n1, n2, n3, n4, fulfilled n3 and n4.
    everything = (await _summary(platform, **period)).json()
    assert everything["region"] == ""
    assert (everything["totals"]["value_committed"], everything["totals"]["value_delivered"]) == ("27500.00", "27000.00")
    assert everything["totals"]["satisfaction_avg"] == "3.50"
    assert everything["needs"] == {"posted": 4, "open": 2, "fulfilled": 2}

    for stranger in (tokens.officer(VILLAGE_A), tokens.member(f.organisations["A"])):
        problem(await _summary(platform, stranger, **period), 403)
        problem(await platform.matching.get("/api/reports/years", headers=stranger), 403)


async def test_years(platform: Platform) -> None:
    f = await build(platform)
    year = D.year
    response = await platform.matching.get("/api/reports/years", params={"region": COUNTY, "from_year": year - 1, "to_year": year},
                                           headers=platform.admin)
    assert response.status_code == 200, response.text
    report = response.json()
    assert [row["year"] for row in report["years"]] == [year - 1, year]
    last, this = report["years"]
    # Every approval is of today: m1 2000 + m2 3000 + m3 20000 = 25000 this year, by A and B.
    assert (this["value_committed"], this["matches_approved"]) == ("25000.00", 3)
    assert (last["value_committed"], last["matches_approved"]) == ("0.00", 0)
    # All deliveries of the county, whichever year D-11 .. D fall in: 4 sets + 6 sets = 5000, 20000 CNY → 25000,
    # three matches completed; needs posted n1, n2, n3, n5 (the fixture's county needs).
    both = report["years"]
    assert sum(Decimal(row["value_delivered"]) for row in both) == Decimal("25000.00")
    assert sum(row["matches_delivered"] for row in both) == 3 and sum(row["needs_posted"] for row in both) == 4
    if (D - timedelta(days=11)).year == year:  # the fixture's dates all fall in this year (from 12 January on)
        # People helped: n1 120 + n2 80 + n3 300; organisations A and B.
        assert (this["value_delivered"], this["beneficiaries_reached"], this["organisations"]) == ("25000.00", 500, 2)
        assert (last["value_delivered"], last["beneficiaries_reached"], last["organisations"], last["needs_posted"]) == (
            "0.00", 0, 0, 0)
    else:
        assert this["organisations"] == 2  # A and B, approved today
    problem(await platform.matching.get("/api/reports/years", params={"from_year": 2001, "to_year": 2040},
                                        headers=platform.admin), 422)
    problem(await platform.matching.get("/api/reports/years", params={"from_year": 2020, "to_year": 2019},
                                        headers=platform.admin), 422)
    assert f.matches


# --- CSV and XLSX hold what the JSON says -------------------------------------------------------------

def _json_cells(report: dict[str, Any], locale: str) -> dict[tuple[str, str, str], str]:
    """The JSON report as (table, key, metric) → value text, in the tables' layout."""
    cells: dict[tuple[str, str, str], str] = {}

    def add(table: str, key: str, row: dict[str, Any]) -> None:
        for metric, _ in reports.SUMMARY_METRICS[table]:
            value = row[metric]
            cells[(table, key, metric)] = "" if value is None else str(value)

    add("needs", report["region"], report["needs"])
    add("totals", report["region"], report["totals"])
    for table in ("by_category", "by_kind", "by_county", "by_organisation"):
        for row in report[table]:
            add(table, row["key"], row)
    for row in report["participation"]:
        add("participation", row["organisation_id"], row)
    cells[("formula", "", "formula")] = report["participation_formula"]["text"]
    return cells


@pytest.mark.parametrize("language", ["zh", "en"])
async def test_csv_and_xlsx_hold_the_same_figures_as_json(platform: Platform, language: str) -> None:
    await build(platform)
    params = {"region": COUNTY, "from": day(-10), "to": day(0)}
    headers = platform.admin | {"Accept-Language": language}
    report = (await _summary(platform, headers, **params)).json()
    expected = _json_cells(report, language)

    response = await _summary(platform, headers, **params, format="csv")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    assert 'filename="report-441302-' in response.headers["content-disposition"]
    text = response.content.decode("utf-8-sig")
    lines = list(csv.reader(io.StringIO(text)))
    assert lines[0] == [t.in_locale(language) for t in reports.LONG_HEADER]  # type: ignore[arg-type]
    assert {(table, key, metric): value for table, _, key, _, metric, _, value in lines[1:]} == expected
    assert len(lines) - 1 == len(expected)
    # The figures a person reads: the table and metric in their language.
    totals = next(line for line in lines if line[0] == "totals" and line[4] == "value_delivered")
    assert totals[1] == ("总计" if language == "zh" else "Totals") and totals[6] == "24500.00"

    response = await _summary(platform, headers, **params, format="xlsx")
    assert response.status_code == 200 and response.headers["content-type"].startswith(
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
    workbook = CalamineWorkbook.from_filelike(io.BytesIO(response.content))
    titles = [reports.SUMMARY_TITLES[code].in_locale(language) for code in reports.SUMMARY_METRICS]  # type: ignore[arg-type]
    assert workbook.sheet_names == titles
    found: dict[tuple[str, str, str], str] = {}
    for code, title in zip(reports.SUMMARY_METRICS, titles, strict=True):
        rows = workbook.get_sheet_by_name(title).to_python()
        metrics = reports.SUMMARY_METRICS[code]
        assert rows[0] == [reports.KEY.in_locale(language), reports.NAME.in_locale(language),  # type: ignore[arg-type]
                           *(label.in_locale(language) for _, label in metrics)]  # type: ignore[arg-type]
        for row in rows[1:]:
            for (metric, _), cell in zip(metrics, row[2:], strict=True):
                found[(code, str(row[0]), metric)] = cell
    assert found.keys() == expected.keys()
    for key, value in expected.items():
        cell = found[key]
        if isinstance(cell, float | int) and not isinstance(cell, bool):
            assert Decimal(str(cell)) == Decimal(value), key  # numbers Excel can sum, equal to the JSON's decimals
        else:
            assert (cell or "") == value, key


async def test_years_as_csv_and_xlsx(platform: Platform) -> None:
    await build(platform)
    params = {"region": COUNTY, "from_year": D.year - 1, "to_year": D.year}
    report = (await platform.matching.get("/api/reports/years", params=params, headers=platform.admin)).json()
    expected = {(str(row["year"]), metric): str(row[metric]) for row in report["years"] for metric, _ in reports.YEAR_METRICS}

    csv_text = (await platform.matching.get("/api/reports/years", params={**params, "format": "csv"},
                                            headers=platform.admin)).content.decode("utf-8-sig")
    lines = list(csv.reader(io.StringIO(csv_text)))[1:]
    assert {(key, metric): value for table, _, key, _, metric, _, value in lines if table == "years"} == expected
    assert len(lines) == len(expected)

    content = (await platform.matching.get("/api/reports/years", params={**params, "format": "xlsx"},
                                           headers=platform.admin | {"Accept-Language": "en"})).content
    workbook = CalamineWorkbook.from_filelike(io.BytesIO(content))
    assert workbook.sheet_names == ["Year by year"]
    rows = workbook.get_sheet_by_name("Year by year").to_python()
    assert rows[0][:3] == ["Key", "Name", "Value committed (CNY)"]
    found = {(str(int(float(row[0]))) if not isinstance(row[0], str) else row[0], metric): Decimal(str(cell))
             for row in rows[1:] for (metric, _), cell in zip(reports.YEAR_METRICS, row[2:], strict=True)}
    assert found == {key: Decimal(value) for key, value in expected.items()}


def test_the_formula_by_itself() -> None:
    """Ties and empties: nobody delivered nor confirmed anything → every score 0, ordered by name."""
    first, second = uuid.UUID(int=1), uuid.UUID(int=2)
    rows = reports.participation({
        second: reports._Organisation(name="乙", delivered=Decimal("0")),
        first: reports._Organisation(name="甲", delivered=Decimal("0")),
    })
    assert [(row.name, row.score) for row in rows] == [("乙", Decimal("0.0")), ("甲", Decimal("0.0"))]  # 乙 U+4E59 < 甲
    assert reports.value_of("set", Decimal("3")) == Decimal("1500.00")
    assert reports.value_of("CNY", Decimal("0.01")) == Decimal("0.01")
    assert reports.day_start(date(2026, 1, 1)) == datetime.fromisoformat("2025-12-31T16:00:00+00:00")
