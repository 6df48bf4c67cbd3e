"""`duijie report` against a small HTTP stand-in of the gateway (the reports endpoints are not built yet):
it signs in, asks with the right query and language, and renders whatever the report holds as tables,
CSV (a section per table) or XLSX (a sheet per table)."""

from __future__ import annotations

import csv
import io
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from openpyxl import load_workbook
from typer.testing import CliRunner

from duijie_cli.main import app

SUMMARY = {
    "region": "441302", "from": "2025-01-01", "to": "2025-12-31",
    "totals": {"needs": 14, "needs_fulfilled": 3, "offers": 13, "matches": 4, "delivered_cny": "1450000.00"},
    "by_category": [{"category": "education", "label": "教育", "needs": 5, "matches": 2},
                    {"category": "infrastructure", "label": "基础设施", "needs": 2, "matches": 1}],
    "by_county": [{"region_code": "441302", "name": "惠城区", "needs": 9, "villages_reached": 3}],
    "by_organisation": [{"organisation_id": "5f0c", "name": "惠州市公民伙伴社工服务中心", "matches": 2,
                         "participation_score": 0.8125, "grade": "4A"}],
}
YEARS = {"region": "441302", "years": [{"year": 2024, "needs": 10, "matches": 3}, {"year": 2025, "needs": 14, "matches": 4}]}


@dataclass
class Gateway:
    url: str
    requests: list[tuple[str, dict[str, list[str]], str]] = field(default_factory=list)
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)  # path → (media type, body) for ?format=csv|xlsx


@pytest.fixture
def gateway() -> Iterator[Gateway]:
    seen: list[tuple[str, dict[str, list[str]], str]] = []
    files: dict[str, tuple[str, bytes]] = {}

    class Handler(BaseHTTPRequestHandler):
        def _send(self, status: int, body: Any, content_type: str = "application/json") -> None:
            data = json.dumps(body, ensure_ascii=False).encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            form = parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode())
            if self.path == "/auth/token" and form == {"username": ["coord"], "password": ["right"]}:
                self._send(200, {"access_token": "t0ken", "token_type": "bearer"})
            else:
                self._send(401, {"title": "Authentication required", "status": 401, "detail": "Wrong username or password."},
                           "application/problem+json")

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            seen.append((url.path, parse_qs(url.query), self.headers.get("Accept-Language", "")))
            if self.headers.get("Authorization") != "Bearer t0ken":
                self._send(401, {"title": "Authentication required", "status": 401}, "application/problem+json")
            elif url.path in files and "format" in parse_qs(url.query):
                media_type, body = files[url.path]
                self.send_response(200)
                self.send_header("Content-Type", media_type)
                self.send_header("Content-Disposition", 'attachment; filename="report-years-441302-2024-2025.csv"')
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            elif url.path == "/api/reports/summary":
                self._send(200, SUMMARY)
            elif url.path == "/api/reports/years":
                self._send(200, YEARS)
            else:
                self._send(404, {"title": "Not found", "status": 404, "detail": "Not found"}, "application/problem+json")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Gateway(f"http://127.0.0.1:{server.server_address[1]}", seen, files)
    finally:
        server.shutdown()
        server.server_close()


def report(gateway: Gateway, *args: str) -> Any:
    env = {"DUIJIE_URL": gateway.url, "DUIJIE_USER": "coord", "DUIJIE_PASSWORD": "right", "DUIJIE_TOKEN": None,
           "COLUMNS": "200", "NO_COLOR": "1", "LANG": None, "LC_ALL": None, "LC_MESSAGES": None}
    return CliRunner().invoke(app, ["report", *args], env=env, catch_exceptions=False)


def test_the_summary_prints_every_part_as_a_table_in_the_asked_language(gateway: Gateway) -> None:
    result = report(gateway, "441302", "--from", "2025-01-01", "--to", "2025-12-31", "--lang", "en")

    assert result.exit_code == 0, result.output
    assert gateway.requests == [("/api/reports/summary", {"region": ["441302"], "from": ["2025-01-01"], "to": ["2025-12-31"]}, "en")]
    for title in ("Report", "Totals", "By category", "By county", "By organisation"):
        assert f"\n{title}" in result.output or result.output.startswith(title), (title, result.output)
    assert "participation_score" in result.output and "0.8125" in result.output
    assert "惠州市公民伙伴社工服务中心" in result.output and "1450000.00" in result.output


def test_a_platform_answering_json_gets_its_csv_and_xlsx_laid_out_a_table_per_part(gateway: Gateway, tmp_path: Path) -> None:
    years = report(gateway, "441302", "--years", "2024-2025", "--lang", "zh", "--format", "csv", "--out", str(tmp_path / "y.csv"))
    assert years.exit_code == 0, years.output
    assert gateway.requests[-1] == ("/api/reports/years", {"region": ["441302"], "from_year": ["2024"], "to_year": ["2025"],
                                                           "format": ["csv"]}, "zh-CN, zh;q=0.9")
    rows = list(csv.reader(io.StringIO((tmp_path / "y.csv").read_text(encoding="utf-8-sig"))))
    assert rows[rows.index(["按年份"]) + 1:] == [["year", "needs", "matches"], ["2024", "10", "3"], ["2025", "14", "4"]]

    summary = report(gateway, "441302", "--from", "2025-01-01", "--to", "2025-12-31", "--lang", "en", "--format", "xlsx",
                     "--out", str(tmp_path / "s.xlsx"))
    assert summary.exit_code == 0, summary.output
    workbook = load_workbook(tmp_path / "s.xlsx", read_only=True)
    assert workbook.sheetnames == ["Report", "Totals", "By category", "By county", "By organisation"]
    organisations = list(workbook["By organisation"].values)
    assert organisations[0] == ("organisation_id", "name", "matches", "participation_score", "grade")
    assert organisations[1][3] == 0.8125


def test_a_spreadsheet_made_by_the_platform_is_saved_as_it_comes(gateway: Gateway, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    made = "\ufeff年份,交付价值\r\n2024,100.00\r\n".encode()
    gateway.files["/api/reports/years"] = ("text/csv; charset=utf-8", made)
    monkeypatch.chdir(tmp_path)

    result = report(gateway, "441302", "--years", "2024-2025", "--format", "csv", "--lang", "en")

    assert result.exit_code == 0, result.output
    assert (tmp_path / "report-years-441302-2024-2025.csv").read_bytes() == made
    again = report(gateway, "441302", "--years", "2024-2025", "--format", "csv", "--lang", "en")
    assert again.exit_code == 1 and "exists and was left alone" in again.output


def test_bad_dates_and_a_wrong_password_are_refused_before_or_at_sign_in(gateway: Gateway) -> None:
    bad = report(gateway, "441302", "--from", "2025-02-30", "--to", "2025-12-31", "--lang", "en")
    assert bad.exit_code == 2 and "'2025-02-30' is not a date" in bad.output
    env = {"DUIJIE_URL": gateway.url, "DUIJIE_TOKEN": None, "NO_COLOR": "1", "COLUMNS": "200"}
    refused = CliRunner().invoke(app, ["report", "441302", "--years", "2025", "--user", "coord", "--lang", "en"],
                                 input="wrong\n", env=env)
    assert refused.exit_code == 3, refused.output
    assert "sign-in failed: Wrong username or password." in refused.output
    assert gateway.requests == []
