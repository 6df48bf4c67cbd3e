"""A bureau imports its needs-project sheet, fixes the rows it gets back, and exports what it sees."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import date, timedelta
from typing import Any

import pytest
from openpyxl import Workbook, load_workbook

from services.common.spreadsheets import MAX_UPLOAD_BYTES
from tests.needs.conftest import CENSHAN_VILLAGE, LUZHOU_VILLAGE, NeedsService, post_need

FUTURE = (date.today() + timedelta(days=120)).isoformat()
ZH_HEADER = ["项目名称", "类别", "帮扶方式", "数量或金额", "单位", "受益人数", "受益群体", "需求截止日期", "村代码"]
EN_HEADER = ["Title", "Category", "Kind", "Quantity", "Unit", "Beneficiaries", "Beneficiary groups", "Needed by", "Village code"]
GUARD_RAILS = ["村道防护栏", "基础设施", "资金", "145万元", "元", "3200", "全体村民", FUTURE, LUZHOU_VILLAGE]
TRAINING = ["残疾村民技能培训", "人才", "培训", "45", "人", "45", "残疾人", FUTURE, LUZHOU_VILLAGE]


def csv_bytes(rows: list[list[Any]], encoding: str = "utf-8") -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    return buffer.getvalue().encode(encoding)


def xlsx_bytes(rows: list[list[Any]]) -> bytes:
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


async def upload(needs: NeedsService, data: bytes, *, dry_run: bool = False, headers: dict[str, str] | None = None,
                 name: str = "needs.csv") -> Any:
    return await needs.client.post(
        "/api/needs/import", params={"dry_run": str(dry_run).lower()}, files={"file": (name, data)},
        headers=headers or needs.tokens.officer(LUZHOU_VILLAGE),
    )


async def all_needs(needs: NeedsService) -> list[dict[str, Any]]:
    response = await needs.client.get("/api/needs?limit=200", headers=needs.tokens.admin())
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def feed_length(needs: NeedsService) -> int:
    response = await needs.client.get("/internal/changes?limit=2000", headers=needs.tokens.service())
    return len(response.json()["items"])


async def test_an_officer_imports_a_chinese_sheet_with_amounts_in_wan(needs: NeedsService) -> None:
    response = await upload(needs, csv_bytes([ZH_HEADER, GUARD_RAILS, TRAINING]))

    assert response.status_code == 201, response.text
    report = response.json()
    assert (report["rows"], report["created"], report["errors"]) == (2, 2, [])
    stored = {need["title"]: need for need in await all_needs(needs)}
    assert stored["村道防护栏"]["quantity"] == "1450000.00"
    assert (stored["村道防护栏"]["category"], stored["村道防护栏"]["unit"]) == ("infrastructure", "CNY")
    assert stored["残疾村民技能培训"]["beneficiary_groups"] == ["disabled"]
    assert await feed_length(needs) == 2


async def test_gb18030_csv_and_english_headers_read_the_same(needs: NeedsService) -> None:
    rows = [EN_HEADER, ["Village office repairs", "governance", "funds", "1,200,000", "CNY", "900", "general", FUTURE,
                        CENSHAN_VILLAGE]]
    chinese = [ZH_HEADER, ["岑山村小学维修", "教育", "资金", "35万", "元", "210", "学生、留守儿童", "2027年6月30日", CENSHAN_VILLAGE]]
    officer = needs.tokens.officer(CENSHAN_VILLAGE)

    english = await upload(needs, csv_bytes(rows), headers=officer)
    gbk = await upload(needs, csv_bytes(chinese, "gb18030"), headers=officer)

    assert english.status_code == gbk.status_code == 201, (english.text, gbk.text)
    stored = {need["title"]: need for need in await all_needs(needs)}
    assert stored["Village office repairs"]["quantity"] == "1200000.00"
    assert stored["岑山村小学维修"]["quantity"] == "350000.00"
    assert stored["岑山村小学维修"]["needed_by"] == "2027-06-30"
    assert stored["岑山村小学维修"]["beneficiary_groups"] == ["students", "left_behind_children"]


async def test_xlsx_with_numbers_and_dates_in_cells(needs: NeedsService) -> None:
    row = ["村道防护栏", "基础设施", "资金", 1450000, "元", 3200, "全体村民", date.today() + timedelta(days=30),
           int(LUZHOU_VILLAGE)]
    response = await upload(needs, xlsx_bytes([ZH_HEADER, row]), name="needs.xlsx")

    assert response.status_code == 201, response.text
    [need] = await all_needs(needs)
    assert (need["quantity"], need["village_code"]) == ("1450000.00", LUZHOU_VILLAGE)


BAD_ROWS = [
    (["坏区划", "教育", "资金", "100", "元", "1", "学生", FUTURE, "44130210"], "村代码"),
    (["坏单位", "教育", "资金", "100", "册", "1", "学生", FUTURE, LUZHOU_VILLAGE], "单位"),
    (["负数", "教育", "资金", "-100", "元", "1", "学生", FUTURE, LUZHOU_VILLAGE], "数量或金额"),
    (["过去日期", "教育", "资金", "100", "元", "1", "学生", "2020-01-01", LUZHOU_VILLAGE], "需求截止日期"),
    (["坏日期", "教育", "资金", "100", "元", "1", "学生", "明年春天", LUZHOU_VILLAGE], "需求截止日期"),
    (["坏类别", "扶贫", "资金", "100", "元", "1", "学生", FUTURE, LUZHOU_VILLAGE], "类别"),
    (["别村", "教育", "资金", "100", "元", "1", "学生", FUTURE, CENSHAN_VILLAGE], "村代码"),
]


async def test_a_dry_run_lists_every_bad_row_and_writes_nothing(needs: NeedsService) -> None:
    data = csv_bytes([ZH_HEADER, GUARD_RAILS, *(row for row, _ in BAD_ROWS)])

    response = await upload(needs, data, dry_run=True)

    assert response.status_code == 200, response.text
    report = response.json()
    assert (report["dry_run"], report["rows"], report["created"]) == (True, 1 + len(BAD_ROWS), 0)
    located = {(error["row"], error["column"]) for error in report["errors"]}
    assert located == {(row_number, column) for row_number, (_, column) in enumerate(BAD_ROWS, start=3)}
    assert all(error["message"] for error in report["errors"])
    assert await all_needs(needs) == []


async def test_a_real_run_with_one_bad_row_imports_nothing(needs: NeedsService) -> None:
    data = csv_bytes([ZH_HEADER, GUARD_RAILS, TRAINING, BAD_ROWS[2][0]])

    response = await upload(needs, data, headers={**needs.tokens.officer(LUZHOU_VILLAGE), "Accept-Language": "en"})

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["error_count"] == 1
    assert problem["errors"] == [{"row": 4, "column": "Quantity", "message": problem["errors"][0]["message"]}]
    assert "nothing was imported" in problem["detail"]
    assert await all_needs(needs) == []
    assert await feed_length(needs) == 0


@pytest.mark.parametrize(
    ("data", "status", "expected"),
    [
        (b"", 422, "空"),
        (csv_bytes([ZH_HEADER]), 422, "没有数据行"),
        (b"\x00\xff\xfe binary \x81\x00" * 10, 422, "无法读取"),
        (b"PK\x03\x04 not really a workbook", 422, "无法读取"),
    ],
)
async def test_unreadable_files_get_a_clear_message(needs: NeedsService, data: bytes, status: int, expected: str) -> None:
    response = await upload(needs, data)
    assert response.status_code == status, response.text
    assert expected in response.json()["detail"]


async def test_a_missing_required_column_is_reported_on_the_header_row(needs: NeedsService) -> None:
    header = [name for name in ZH_HEADER if name != "项目名称"]
    response = await upload(needs, csv_bytes([header, GUARD_RAILS[1:]]))
    assert response.status_code == 422
    assert response.json()["errors"][0]["row"] == 1
    assert response.json()["errors"][0]["column"] == "项目名称"


async def test_a_file_over_the_limit_is_refused_before_it_is_read(needs: NeedsService) -> None:
    data = csv_bytes([ZH_HEADER]) + b"x" * (MAX_UPLOAD_BYTES + 10)
    response = await upload(needs, data)
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert await all_needs(needs) == []


async def test_organisation_members_cannot_import_needs(needs: NeedsService) -> None:
    response = await upload(needs, csv_bytes([ZH_HEADER, GUARD_RAILS]), headers=needs.tokens.member(uuid.uuid4()))
    assert response.status_code == 403
    assert await all_needs(needs) == []


@pytest.mark.parametrize("table_format", ["csv", "xlsx"])
async def test_the_template_speaks_the_callers_language_and_imports_as_is(needs: NeedsService, table_format: str) -> None:
    english = await needs.client.get(f"/api/needs/import/template?format={table_format}", headers={"Accept-Language": "en"})
    chinese = await needs.client.get(f"/api/needs/import/template?format={table_format}")

    assert english.status_code == chinese.status_code == 200
    assert f"needs-template.{table_format}" in chinese.headers["content-disposition"]
    rows = read_table(chinese.content, table_format)
    assert rows[0][0] == "项目名称*" and read_table(english.content, table_format)[0][0] == "Title*"
    report = await upload(needs, chinese.content, dry_run=True, name=f"t.{table_format}",
                          headers=needs.tokens.coordinator("441302"))
    assert report.status_code == 200 and report.json()["errors"] == [], report.text


def read_table(data: bytes, table_format: str) -> list[list[Any]]:
    if table_format == "csv":
        return list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    workbook = load_workbook(io.BytesIO(data), read_only=True)
    return [list(row) for row in workbook.worksheets[0].iter_rows(values_only=True)]


COMPARED = ["title", "description", "category", "kind", "quantity", "unit", "beneficiaries", "beneficiary_groups",
            "urgency", "needed_by", "village_code", "lat", "lon", "skills", "channel", "requester"]


@pytest.mark.parametrize("table_format", ["csv", "xlsx"])
async def test_export_then_import_gives_the_same_records(needs: NeedsService, table_format: str) -> None:
    await post_need(needs)
    await post_need(needs, title="村道防护栏", category="infrastructure", kind="funds", quantity="1450000.50", unit="CNY",
                    beneficiary_groups=["general", "elderly"], skills=[], lat=None, lon=None, channel="visit",
                    requester={"name": "李四", "phone": "13800000000"}, description="临水路段, \"波形护栏\"\n约2公里")
    before = await all_needs(needs)

    exported = await needs.client.get(f"/api/needs/export?format={table_format}", headers=needs.tokens.officer(LUZHOU_VILLAGE))
    assert exported.status_code == 200
    response = await upload(needs, exported.content, name=f"export.{table_format}")

    assert response.status_code == 201, response.text
    assert response.json()["ignored_columns"] == []
    after = await all_needs(needs)
    originals = sorted(tuple(str(need[key]) for key in COMPARED) for need in before)
    copies = sorted(tuple(str(need[key]) for key in COMPARED) for need in after if need["id"] not in {n["id"] for n in before})
    assert copies == originals


async def test_export_follows_the_list_filters(needs: NeedsService) -> None:
    await post_need(needs)
    await post_need(needs, title="村道防护栏", category="infrastructure", kind="funds", quantity="1000", unit="CNY")

    exported = await needs.client.get("/api/needs/export?format=csv&category=infrastructure",
                                      headers={**needs.tokens.admin(), "Accept-Language": "en"})

    rows = read_table(exported.content, "csv")
    assert rows[0][0] == "Title"
    assert [row[0] for row in rows[1:]] == ["村道防护栏"]
    assert rows[1][2] == "Infrastructure"
