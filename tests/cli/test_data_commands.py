"""`duijie import|export|match-run` against a real platform (`duijie up` on free ports), through its gateway."""

from __future__ import annotations

import csv
import json
import re
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import Result
from typer.testing import CliRunner

from duijie_cli.client import EXIT_AUTH
from duijie_cli.demo_data import credit_code
from duijie_cli.main import app
from tests.e2e.conftest import Admin, Platform, sign_in

pytestmark = pytest.mark.e2e

TOWNSHIP = "441302112"  # a township of 惠城区 that only the match-run and export tests use
IMPORT_VILLAGE = "441302113201"
BAD_VILLAGE = "441302113202"


def run(platform: Platform, admin: Admin, *args: str, password: str | None = None, lang: str = "en") -> Result:
    """`duijie …` in process, signed in as the admin through the environment, as a user would set it up."""
    env = {"DUIJIE_URL": platform.url, "DUIJIE_USER": admin.username, "DUIJIE_PASSWORD": password or admin.password,
           "DUIJIE_TOKEN": None, "COLUMNS": "200", "NO_COLOR": "1", "LANG": None, "LC_ALL": None, "LC_MESSAGES": None}
    return CliRunner().invoke(app, [*args, "--lang", lang], env=env, catch_exceptions=False)


@pytest.fixture(scope="module")
def admin_headers(platform: Platform, admin: Admin) -> dict[str, str]:
    with platform.client() as client:
        return sign_in(client, admin.username, admin.password)


def needs_of(platform: Platform, headers: dict[str, str], region: str) -> list[dict[str, Any]]:
    with platform.client() as client:
        response = client.get("/api/needs", params={"region": region, "limit": 200}, headers=headers)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def poll(client: httpx.Client, path: str, headers: dict[str, str], done: Callable[[Any], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        response = client.get(path, headers=headers)
        if response.status_code == 200 and done(response.json()):
            return
        assert time.monotonic() < deadline, f"{path}: {response.status_code} {response.text[:500]}"
        time.sleep(0.3)


@pytest.fixture(scope="module")
def township(platform: Platform, admin_headers: dict[str, str]) -> dict[str, str]:
    """Two needs in a township of their own and one offer that fits the first, once matching has seen the offer."""
    needed_by = (date.today() + timedelta(days=90)).isoformat()
    headers = admin_headers
    with platform.client() as client:
        organisation = client.post("/api/organisations", headers=headers, json={
            "name": "惠州市图书公益协会（CLI 测试）", "org_type": "social_organisation",
            "credit_code": credit_code("52441302MJCL10001"), "grade": 4, "region_codes": ["441302"]})
        assert organisation.status_code == 201, organisation.text
        verified = client.post(f"/api/organisations/{organisation.json()['id']}/verify", headers=headers)
        assert verified.status_code == 200, verified.text
        books = client.post("/api/needs", headers=headers, json={
            "title": "村小学图书角", "category": "education", "kind": "goods", "quantity": 300, "unit": "book",
            "beneficiaries": 120, "beneficiary_groups": ["students"], "needed_by": needed_by, "village_code": f"{TOWNSHIP}201"})
        assert books.status_code == 201, books.text
        clinic = client.post("/api/needs", headers=headers, json={
            "title": "义诊进村", "category": "health", "kind": "service", "quantity": 4, "unit": "session",
            "beneficiaries": 800, "needed_by": needed_by, "village_code": f"{TOWNSHIP}202"})
        assert clinic.status_code == 201, clinic.text
        offer = client.post("/api/offers", headers=headers, json={
            "organisation_id": organisation.json()["id"], "title": "出版社捐赠图书", "categories": ["education"],
            "kind": "goods", "quantity": 200, "unit": "book", "region_codes": [TOWNSHIP],
            "available_from": date.today().isoformat(), "available_until": (date.today() + timedelta(days=200)).isoformat()})
        assert offer.status_code == 201, offer.text
        poll(client, f"/api/candidates?need_id={books.json()['id']}", headers,
             lambda body: any(item["offer_id"] == offer.json()["id"] for item in body["items"]))
    return {"books": books.json()["id"], "clinic": clinic.json()["id"], "offer": offer.json()["id"]}


def test_import_needs_dry_run_writes_nothing_then_the_import_creates(
    platform: Platform, admin: Admin, admin_headers: dict[str, str], tmp_path: Path
) -> None:
    sheet = tmp_path / "需求.csv"
    sheet.write_text(
        "项目名称*,类别*,帮扶方式*,数量或金额*,单位*,受益人数,需求截止日期*,村代码*\n"
        f"留守儿童课后辅导,教育,服务,20,次,35,2030-06-30,{IMPORT_VILLAGE}\n"
        f"村道防护栏,基础设施,资金,145万元,元,3200,2030/6/30,{IMPORT_VILLAGE}\n"
        f"农产品销售渠道,产业,服务,4,次,300,2030年6月30日,{IMPORT_VILLAGE}\n",
        encoding="gb18030",  # as Chinese Excel saves it
    )

    dry = run(platform, admin, "import", "needs", str(sheet), "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert re.search(r"rows\s*│\s*3\s*│", dry.output) and re.search(r"created\s*│\s*0\s*│", dry.output), dry.output
    assert "dry run passed; nothing was written" in dry.output
    assert needs_of(platform, admin_headers, IMPORT_VILLAGE) == []

    real = run(platform, admin, "import", "needs", str(sheet), lang="zh")
    assert real.exit_code == 0, real.output
    assert re.search(r"新建\s*│\s*3\s*│", real.output), real.output
    assert "已导入 3 条" in real.output
    stored = needs_of(platform, admin_headers, IMPORT_VILLAGE)
    assert sorted(need["title"] for need in stored) == ["农产品销售渠道", "村道防护栏", "留守儿童课后辅导"]
    assert {need["quantity"] for need in stored} == {"20.00", "1450000.00", "4.00"}


def test_an_import_with_bad_rows_lists_every_row_error_and_exits_1(
    platform: Platform, admin: Admin, admin_headers: dict[str, str], tmp_path: Path
) -> None:
    sheet = tmp_path / "bad.csv"
    sheet.write_text(
        "项目名称*,类别*,帮扶方式*,数量或金额*,单位*,需求截止日期*,村代码*\n"
        f"好的一行,教育,服务,20,次,2030-06-30,{BAD_VILLAGE}\n"
        f"坏的一行,教育,服务,很多,次,2030-06-30,{BAD_VILLAGE}\n"
        f"另一行,教育,服务,20,次,明年,{BAD_VILLAGE}\n",
        encoding="utf-8",
    )

    result = run(platform, admin, "import", "needs", str(sheet))

    assert result.exit_code == 1, result.output
    assert "error 422: Invalid input" in result.output
    assert re.search(r"│\s*3\s*│\s*Quantity\s*│\s*'很多' is not an amount", result.output), result.output
    assert re.search(r"│\s*4\s*│\s*Needed by\s*│\s*'明年' is not a date", result.output), result.output
    assert not re.search(r"│\s*2\s*│", result.output)  # the good row has no error
    assert "bad.csv has errors; nothing was imported." in result.output
    assert needs_of(platform, admin_headers, BAD_VILLAGE) == []


def test_export_needs_streams_the_filtered_rows_to_a_csv_file(
    platform: Platform, admin: Admin, township: dict[str, str], tmp_path: Path
) -> None:
    target = tmp_path / "导出" / "needs.csv"
    target.parent.mkdir()

    result = run(platform, admin, "export", "needs", "--out", str(target), "--filter", f"region={TOWNSHIP}", lang="zh")

    assert result.exit_code == 0, result.output
    assert f"已保存 {target}" in result.output and "2 行数据" in result.output
    with target.open(encoding="utf-8-sig", newline="") as stream:
        rows = list(csv.DictReader(stream))  # the format came from the file's suffix
    assert sorted(row["项目名称"] for row in rows) == ["义诊进村", "村小学图书角"]  # headers in the asked language
    assert {row["编号"] for row in rows} == {township["books"], township["clinic"]}
    assert not list(target.parent.glob(".*.part"))


def test_match_run_follows_the_run_and_prints_its_results(
    platform: Platform, admin: Admin, admin_headers: dict[str, str], township: dict[str, str]
) -> None:
    result = run(platform, admin, "match-run", TOWNSHIP)

    assert result.exit_code == 0, result.output
    assert re.search(r"status\s*│\s*finished\s*│", result.output), result.output
    assert re.search(r"proposals\s*│\s*1\s*│", result.output), result.output
    assert re.search(r"unmatched needs\s*│\s*1\s*│", result.output), result.output
    assert "Needs left unmatched (first 1)" in result.output
    assert re.search(rf"{township['clinic']}\s*│\s*{TOWNSHIP}202\s*│\s*\w+\s*│\s*\S", result.output), result.output
    assert "finished: 1 proposals await review" in result.output
    with platform.client() as client:
        matches = client.get("/api/matches", params={"need_id": township["books"]}, headers=admin_headers).json()["items"]
    assert [(match["offer_id"], match["status"], match["quantity"]) for match in matches] == [(township["offer"], "proposed", "200.00")]


def test_export_matches_and_the_report_see_what_the_run_proposed(
    platform: Platform, admin: Admin, township: dict[str, str], tmp_path: Path
) -> None:
    target = tmp_path / "matches.csv"
    exported = run(platform, admin, "export", "matches", "--out", str(target), "--filter", f"need_id={township['books']}")
    assert exported.exit_code == 0, exported.output
    with target.open(encoding="utf-8-sig", newline="") as stream:
        rows = list(csv.reader(stream))
    assert len(rows) == 2 and township["books"] in rows[1]  # the header, and the run's one proposal

    # Report days are Beijing's (UTC+8): a span of three days holds "today" wherever this machine's clock is.
    since, until = (date.today() - timedelta(days=1)).isoformat(), (date.today() + timedelta(days=1)).isoformat()
    report = run(platform, admin, "report", TOWNSHIP, "--from", since, "--to", until, "--format", "json")
    assert report.exit_code == 0, report.output
    summary = json.loads(report.output)
    assert summary["region"] == TOWNSHIP
    assert summary["needs"]["posted"] == 2  # the township's two needs; a proposal commits nothing yet
    assert summary["totals"]["value_committed"] == "0.00"


def test_a_wrong_password_says_so_and_exits_3(platform: Platform, admin: Admin) -> None:
    english = run(platform, admin, "export", "needs", "--out", "-", password="not-the-password")
    assert english.exit_code == EXIT_AUTH, english.output
    assert "sign-in failed: Wrong username or password." in english.output
    assert f"(user {admin.username}, gateway {platform.url})" in english.output

    chinese = run(platform, admin, "match-run", TOWNSHIP, password="not-the-password", lang="zh")
    assert chinese.exit_code == EXIT_AUTH, chinese.output
    assert "登录失败: 用户名或密码错误。" in chinese.output
    assert "not-the-password" not in english.output + chinese.output
