"""Exports of matches and deliveries: the list's filters and authorisation, streamed in batches, CSV and XLSX.

The fixture is the reports' (tests/matching/test_reports.py `build`): five matches in Huicheng (m1–m5: two
approved, received; one funds match; one cancelled; one rejected) and one in Nanning (m6)."""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from typing import Any

import pytest
from python_calamine import CalamineWorkbook

from services.common.identity import Principal, Role
from services.matching import service
from services.matching.schemas import DeliveryFilters, MatchFilters
from tests.matching.conftest import COUNTY, VILLAGE_A, Platform, problem
from tests.matching.test_reports import build, day


def _rows(response: Any, table_format: str) -> list[dict[str, Any]]:
    """The sheet as dicts keyed by header, every cell as text."""
    assert response.status_code == 200, response.text
    if table_format == "csv":
        assert response.headers["content-type"].startswith("text/csv")
        lines = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    else:
        assert response.headers["content-type"].startswith("application/vnd.openxmlformats")
        workbook = CalamineWorkbook.from_filelike(io.BytesIO(response.content))
        lines = [[_text(cell) for cell in row] for row in workbook.get_sheet_by_index(0).to_python()]
    header, *body = lines
    return [dict(zip(header, row, strict=True)) for row in body]


def _text(cell: Any) -> str:
    """An XLSX number as the CSV spells an amount (two decimals); the XLSX holds numbers Excel can sum."""
    if isinstance(cell, float | int) and not isinstance(cell, bool):
        return str(Decimal(str(cell)).quantize(Decimal("0.01")))
    return "" if cell is None else str(cell)


async def _export(platform: Platform, path: str, headers: dict[str, str] | None = None, **params: Any) -> Any:
    return await platform.matching.get(f"/api/matches{path}", params=params, headers=headers or platform.admin)


@pytest.mark.parametrize("table_format", ["csv", "xlsx"])
async def test_matches_export_follows_the_list(platform: Platform, table_format: str) -> None:
    f = await build(platform)
    m = f.matches
    rows = _rows(await _export(platform, "/export", format=table_format, region=COUNTY), table_format)
    # The county's five matches (m6 is Nanning's), newest first as the list shows them.
    listed = (await platform.matching.get("/api/matches", params={"region": COUNTY}, headers=platform.admin)).json()["items"]
    assert [row["对接编号"] for row in rows] == [item["id"] for item in listed]
    assert {row["对接编号"] for row in rows} == {m["m1"], m["m2"], m["m3"], m["m4"], m["m5"]}
    by_id = {row["对接编号"]: row for row in rows}
    m1 = by_id[m["m1"]]
    assert (m1["状态"], m1["类别"], m1["资源类型"], m1["组织"], m1["单位"]) == ("已确认收货", "教育", "物资", "惠州市慈善总会", "套")
    assert (m1["数量"], m1["已交付"], m1["确认收到"], m1["满意度"].split(".")[0]) == ("4.00", "4.00", "4.00", "5")
    assert by_id[m["m3"]]["数量"] == "20000.00" and by_id[m["m3"]]["单位"] == "元"
    assert (by_id[m["m4"]]["状态"], by_id[m["m5"]]["状态"]) == ("已取消", "已驳回")

    cancelled = _rows(await _export(platform, "/export", format=table_format, status="cancelled"), table_format)
    assert [row["对接编号"] for row in cancelled] == [m["m4"]]
    of_need = _rows(await _export(platform, "/export", format=table_format, need_id=f.needs["n1"]), table_format)
    assert {row["对接编号"] for row in of_need} == {m["m1"], m["m5"]}


async def test_matches_export_is_authorised_as_the_list(platform: Platform) -> None:
    f = await build(platform)
    m, tokens = f.matches, platform.tokens

    async def seen(headers: dict[str, str], **params: Any) -> set[str]:
        return {row["Match ID"] for row in _rows(await _export(platform, "/export", headers | {"Accept-Language": "en"},
                                                               format="csv", **params), "csv")}

    assert await seen(tokens.officer(VILLAGE_A)) == {m["m1"], m["m5"]}
    assert await seen(tokens.member(f.organisations["B"])) == {m["m2"], m["m4"], m["m5"]}
    assert await seen(tokens.coordinator("450123")) == {m["m6"]}
    assert await seen(tokens.coordinator("450123"), region=COUNTY) == set()  # filters narrow, never widen
    assert await seen(platform.admin) == set(m.values())
    assert (await platform.matching.get("/api/matches/export")).status_code == 401
    problem(await _export(platform, "/export", format="pdf"), 422)


@pytest.mark.parametrize("table_format", ["csv", "xlsx"])
async def test_deliveries_export(platform: Platform, table_format: str) -> None:
    f = await build(platform)
    m, tokens = f.matches, platform.tokens
    english = platform.admin | {"Accept-Language": "en"}
    rows = _rows(await _export(platform, "/deliveries/export", english, format=table_format, region=COUNTY,
                               **{"from": day(-10), "to": day(-5)}), table_format)
    # D-10 .. D-5 (both included): m1's 2 sets (D-10) and 1 set (D-5), m3's 20000 CNY (D-5); not m1's D-11 set,
    # nor m2's (D-4, D), nor m6 (Nanning).
    found = sorted((row["Match ID"], row["Delivered on"], row["Quantity"], row["Delivered in total"]) for row in rows)
    assert found == sorted([(m["m1"], day(-10), "2.00", "3.00"), (m["m1"], day(-5), "1.00", "4.00"),
                            (m["m3"], day(-5), "20000.00", "20000.00")])
    assert {row["Organisation"] for row in rows} == {"惠州市慈善总会"} and {row["Unit"] for row in rows} == {"set", "CNY"}

    # One line per delivery, each its own quantity: m1's add up to what it delivered, never the cumulative sum.
    everything = _rows(await _export(platform, "/deliveries/export", format=table_format), table_format)
    assert len(everything) == 7
    assert sum(Decimal(row["本次数量"]) for row in everything if row["对接编号"] == m["m1"]) == Decimal("4.00")

    of_b = _rows(await _export(platform, "/deliveries/export", format=table_format,
                               organisation_id=f.organisations["B"]), table_format)
    assert sorted((row["交付日期"], row["本次数量"]) for row in of_b) == [(day(-4), "3.00"), (day(0), "3.00")]

    # Authorisation as the list's: the village's officer sees m1's three, a member of B m2's two.
    officer = _rows(await _export(platform, "/deliveries/export", tokens.officer(VILLAGE_A), format=table_format), table_format)
    assert {row["对接编号"] for row in officer} == {m["m1"]} and len(officer) == 3
    member = _rows(await _export(platform, "/deliveries/export", tokens.member(f.organisations["B"]), format=table_format),
                   table_format)
    assert {row["对接编号"] for row in member} == {m["m2"]} and len(member) == 2
    nanning = _rows(await _export(platform, "/deliveries/export", tokens.coordinator("450123"), format=table_format),
                    table_format)
    assert [row["对接编号"] for row in nanning] == [m["m6"]]
    problem(await _export(platform, "/deliveries/export", **{"from": day(0), "to": day(-1)}), 422)


async def test_exports_read_in_keyset_batches(platform: Platform) -> None:
    """Batches of 2: every match exactly once, in the list's order; the same for deliveries."""
    f = await build(platform)
    db = platform.matching_app.state.db
    admin = Principal(subject="admin", role=Role.ADMIN)
    batches = [batch async for batch in service.export_matches(db, principal=admin, filters=MatchFilters(), locale="zh", batch=2)]
    assert [len(batch) for batch in batches] == [2, 2, 2]
    ids = [row[0] for batch in batches for row in batch]
    listed = (await platform.matching.get("/api/matches", headers=platform.admin)).json()["items"]
    assert ids == [item["id"] for item in listed] and set(ids) == set(f.matches.values())

    deliveries = [batch async for batch in service.export_deliveries(db, principal=admin, filters=DeliveryFilters(),
                                                                     locale="en", batch=3)]
    assert [len(batch) for batch in deliveries] == [3, 3, 1]
    assert len({row[0] for batch in deliveries for row in batch}) == 7
