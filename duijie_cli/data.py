"""Data commands that talk to a running platform through its gateway, as any client would.

    duijie import needs|organisations|offers FILE [--dry-run]
    duijie import template needs|organisations|offers [--format xlsx|csv] [--out FILE]
    duijie export needs|offers|organisations|matches|deliveries [--format xlsx|csv] [--out FILE] [--filter k=v …]
    duijie match-run REGION [--wait/--no-wait]
    duijie report REGION --from DATE --to DATE [--format table|json|csv|xlsx] [--out FILE]
    duijie report REGION --years 2021-2025

Every command takes --url/--user/--password/--token/--lang (see duijie_cli.client).
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, BinaryIO

import httpx
import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    SpinnerColumn,
    Task,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)
from rich.text import Text

from duijie_cli.client import (
    DEFAULT_URL,
    EXIT_FAILED,
    Api,
    ApiError,
    Connection,
    LangOption,
    PasswordOption,
    TokenOption,
    Ui,
    UrlOption,
    UserOption,
    cell,
    connect,
    detect_lang,
    pairs_table,
    print_problem,
    problem_of,
    raise_for_problem,
    records_table,
)

CHUNK = 64 * 1024
XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

import_app = typer.Typer(help="Import a spreadsheet / 导入表格: needs, organisations, offers; or get a template.",
                         no_args_is_help=True)


class TableFormat(StrEnum):
    xlsx = "xlsx"
    csv = "csv"


class ImportKind(StrEnum):
    needs = "needs"
    organisations = "organisations"
    offers = "offers"


class ExportKind(StrEnum):
    needs = "needs"
    offers = "offers"
    organisations = "organisations"
    matches = "matches"
    deliveries = "deliveries"


EXPORT_PATHS = {
    ExportKind.needs: "/api/needs/export",
    ExportKind.offers: "/api/offers/export",
    ExportKind.organisations: "/api/organisations/export",
    ExportKind.matches: "/api/matches/export",
    ExportKind.deliveries: "/api/matches/deliveries/export",
}


class ReportFormat(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"
    xlsx = "xlsx"


def _connection(url: str, user: str | None, password: str | None, token: str | None, lang: Any) -> Connection:
    return Connection(url=url, user=user, password=password, token=token, lang=detect_lang(lang))


class _Bytes(DownloadColumn):
    """Bytes done (of the total), blank on a task that only waits."""

    def render(self, task: Task) -> Text:
        return Text("") if task.fields.get("waiting") else super().render(task)


class _Speed(TransferSpeedColumn):
    def render(self, task: Task) -> Text:
        return Text("") if task.fields.get("waiting") else super().render(task)


def _transfer_progress(ui: Ui) -> Progress:
    return Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), _Bytes(), _Speed(),
                    TimeElapsedColumn(), console=ui.err)


# --- import ------------------------------------------------------------------------------------------------

def _quoted(filename: str) -> str:
    """A filename as browsers put it in a multipart header (UTF-8, quotes and line breaks escaped)."""
    return filename.replace("\\", "\\\\").replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


def _media_type(path: Path) -> str:
    return {".csv": "text/csv", ".xlsx": XLSX_MEDIA_TYPE}.get(path.suffix.lower(), "application/octet-stream")


def multipart_body(path: Path, boundary: str, advance: Callable[[int], None], done: Callable[[], None] = lambda: None,
                   field_name: str = "file") -> tuple[int, Iterator[bytes]]:
    """The multipart/form-data body of one file, as a generator that reads it in chunks (never whole)."""
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field_name}\"; filename=\"{_quoted(path.name)}\"\r\n"
            f"Content-Type: {_media_type(path)}\r\n\r\n").encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    size = path.stat().st_size

    def body() -> Iterator[bytes]:
        yield head
        with path.open("rb") as stream:
            while chunk := stream.read(CHUNK):
                advance(len(chunk))
                yield chunk
        yield tail
        done()

    return len(head) + size + len(tail), body()


def upload(api: Api, path: str, file: Path, *, params: Mapping[str, str]) -> httpx.Response:
    """POST the file as multipart `file` with an upload bar, then a spinner while the server checks it."""
    ui = api.ui
    boundary = uuid.uuid4().hex
    with _transfer_progress(ui) as progress:
        sending = progress.add_task(ui("上传", "uploading") + f" {file.name}", total=file.stat().st_size)

        def done() -> None:
            progress.add_task(ui("服务器正在逐行检查…", "the server is checking every row…"), total=None, waiting=True)

        length, body = multipart_body(file, boundary, lambda n: progress.advance(sending, n), done)
        headers = {"Content-Type": f"multipart/form-data; boundary={boundary}", "Content-Length": str(length)}
        return api.http.post(path, content=body, headers=headers, params=params)


_REPORT_LABELS = {
    "dry_run": ("试运行（未写入）", "dry run (nothing written)"),
    "rows": ("行数", "rows"),
    "created": ("新建", "created"),
    "updated": ("更新", "updated"),
    "skipped": ("跳过", "skipped"),
    "duplicate_count": ("疑似重复", "possible duplicates"),
    "error_count": ("错误", "errors"),
    "ignored_columns": ("未识别的列（已忽略）", "columns ignored"),
}
_LIST_TITLES = {
    "errors": ("逐行错误", "Row errors"),
    "possible_duplicates": ("疑似重复（提醒，不是错误）", "Possible duplicates (warnings, not errors)"),
}


def show_import_report(ui: Ui, report: Mapping[str, Any]) -> None:
    """Counts as a small table, then every list of rows (errors, duplicate warnings, …) as its own table."""
    pairs: list[tuple[str, Any]] = []
    for key, value in report.items():
        if key in ("ids", *_LIST_TITLES) or (isinstance(value, list) and value and isinstance(value[0], dict)) \
                or isinstance(value, dict):
            continue
        if key == "ignored_columns" and not value:
            continue
        pairs.append((ui(*_REPORT_LABELS[key]) if key in _REPORT_LABELS else key, value))
    if isinstance(report.get("errors"), list) and "error_count" not in report:
        pairs.append((ui(*_REPORT_LABELS["error_count"]), len(report["errors"])))
    ui.out.print(pairs_table(pairs, title=ui("导入结果", "Import report")))
    for key, value in report.items():
        if isinstance(value, list) and value and isinstance(value[0], dict):
            title = ui(*_LIST_TITLES[key]) if key in _LIST_TITLES else key
            console = ui.err if key == "errors" else ui.out
            console.print(records_table(value, title=title, columns=_ordered(value, ("row", "column", "message"))))
    for listed, counted, zh, en in (("errors", "error_count", "错误", "errors"),
                                    ("possible_duplicates", "duplicate_count", "疑似重复", "possible duplicates")):
        shown, total = len(report.get(listed) or []), report.get(counted)
        if isinstance(total, int) and total > shown:
            ui.out.print(ui(f"（{zh}仅列出前 {shown} 条，共 {total} 条）", f"(the first {shown} of {total} {en} shown)"))


def _ordered(rows: Sequence[Mapping[str, Any]], first: Sequence[str]) -> list[str]:
    keys = list(dict.fromkeys(key for row in rows for key in row))
    return [key for key in first if key in keys] + [key for key in keys if key not in first]


def _import(kind: ImportKind, file: Path, dry_run: bool, connection: Connection) -> None:
    ui = Ui(connection.lang)
    if not file.is_file():
        raise ui.fail(ui(f"找不到文件 {file}", f"no such file: {file}"))
    with connect(connection) as api:
        response = upload(api, f"/api/{kind.value}/import", file, params={"dry_run": "true"} if dry_run else {})
        if response.status_code == 422:
            problem = problem_of(response)
            if isinstance(problem.get("errors"), list) and problem["errors"] and "row" in problem["errors"][0]:
                print_problem(api.ui, ApiError(response, problem))
                raise ui.fail(ui(f"{file.name} 有错误，没有导入任何一行。", f"{file.name} has errors; nothing was imported."))
        report = raise_for_problem(response).json()
    show_import_report(ui, report)
    if report.get("errors") or report.get("error_count"):
        raise ui.fail(ui(f"试运行发现错误：请修改 {file.name} 后再导入。",
                         f"the dry run found errors: correct {file.name} before importing."))
    if report.get("dry_run"):
        ui.ok(ui("试运行通过，未写入任何数据；去掉 --dry-run 即可导入。",
                 "dry run passed; nothing was written. Run without --dry-run to import."))
    else:
        ui.ok(ui(f"已导入 {report.get('created', 0)} 条", f"imported {report.get('created', 0)} records"))


FileArgument = Annotated[Path, typer.Argument(help="XLSX or CSV (UTF-8 or GB18030) / XLSX 或 CSV 文件.", show_default=False)]
DryRunOption = Annotated[bool, typer.Option("--dry-run", help="Check every row, write nothing / 只检查，不写入.")]


@import_app.command("needs")
def import_needs(file: FileArgument, dry_run: DryRunOption = False, url: UrlOption = DEFAULT_URL, user: UserOption = None,
                 password: PasswordOption = None, token: TokenOption = None, lang: LangOption = None) -> None:
    """导入需求 / Import needs (POST /api/needs/import): all rows or none."""
    _import(ImportKind.needs, file, dry_run, _connection(url, user, password, token, lang))


@import_app.command("organisations")
def import_organisations(file: FileArgument, dry_run: DryRunOption = False, url: UrlOption = DEFAULT_URL,
                         user: UserOption = None, password: PasswordOption = None, token: TokenOption = None,
                         lang: LangOption = None) -> None:
    """导入社会组织 / Import organisations (POST /api/organisations/import)."""
    _import(ImportKind.organisations, file, dry_run, _connection(url, user, password, token, lang))


@import_app.command("offers")
def import_offers(file: FileArgument, dry_run: DryRunOption = False, url: UrlOption = DEFAULT_URL, user: UserOption = None,
                  password: PasswordOption = None, token: TokenOption = None, lang: LangOption = None) -> None:
    """导入供给 / Import offers (POST /api/offers/import)."""
    _import(ImportKind.offers, file, dry_run, _connection(url, user, password, token, lang))


FormatOption = Annotated[TableFormat | None, typer.Option("--format", "-f", case_sensitive=False, show_default=False,
                                                          help="xlsx or csv (default: from --out's suffix, else xlsx).")]


def _table_format(format: TableFormat | None, out: Path | None) -> TableFormat:
    if format is not None:
        return format
    suffix = out.suffix.lower().lstrip(".") if out is not None else ""
    return TableFormat(suffix) if suffix in TableFormat.__members__ else TableFormat.xlsx
OutOption = Annotated[Path | None, typer.Option("--out", "-o", show_default=False,
                                                help="File to write ('-': standard output); default: the server's file name.")]


@import_app.command("template")
def import_template(kind: Annotated[ImportKind, typer.Argument(case_sensitive=False, help="needs, organisations or offers.")],
                    format: FormatOption = None, out: OutOption = None, url: UrlOption = DEFAULT_URL,
                    user: UserOption = None, password: PasswordOption = None, token: TokenOption = None,
                    lang: LangOption = None) -> None:
    """下载导入模板 / Download the import template (headers in your language, one example row)."""
    connection = _connection(url, user, password, token, lang)
    format = _table_format(format, out)
    with connect(connection) as api:
        saved = download(api, f"/api/{kind.value}/import/template", params=[("format", format.value)], out=out,
                         fallback=f"{kind.value}-template.{format.value}", label=f"{kind.value}-template.{format.value}")
    _report_saved(Ui(connection.lang), saved)


# --- export ------------------------------------------------------------------------------------------------

@dataclass
class Saved:
    path: Path | None  # None: written to standard output
    size: int
    media_type: str = ""


_FILENAME = re.compile(r"filename\*?=(?:UTF-8'')?\"?([^\";]+)\"?", re.IGNORECASE)


def _server_filename(response: httpx.Response) -> str | None:
    match = _FILENAME.search(response.headers.get("content-disposition", ""))
    return Path(match.group(1)).name if match else None  # never a path the server chose


def download(api: Api, path: str, *, params: Sequence[tuple[str, str]], out: Path | None, fallback: str, label: str) -> Saved:
    """Stream a GET to a file with a byte bar; written beside the target first, renamed into place when complete."""
    ui = api.ui
    with api.http.stream("GET", path, params=list(params)) as response:
        if not response.is_success:
            response.read()
            raise ApiError(response, problem_of(response))
        total = int(response.headers["content-length"]) if response.headers.get("content-length", "").isdigit() else None
        target = None if out == Path("-") else out or Path(_server_filename(response) or fallback)
        if out is None and target is not None and target.exists():
            raise ui.fail(ui(f"{target} 已存在，未覆盖；请用 --out 指定文件（给出同名即覆盖）。",
                             f"{target} exists and was left alone; name the file with --out (naming it overwrites it)."))
        media_type = response.headers.get("content-type", "")
        size = 0
        partial = None if target is None else target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.part")
        sink: BinaryIO = sys.stdout.buffer if partial is None else partial.open("wb")
        try:
            with _transfer_progress(ui) as progress:
                task = progress.add_task(f"{ui('下载', 'downloading')} {label}", total=total)
                for chunk in response.iter_bytes(CHUNK):
                    sink.write(chunk)
                    size += len(chunk)
                    progress.advance(task, len(chunk))
                progress.update(task, total=size, completed=size)
            sink.flush()
        except BaseException:
            if partial is not None:
                sink.close()
                partial.unlink(missing_ok=True)
            raise
        if partial is not None and target is not None:
            sink.close()
            os.replace(partial, target)
    return Saved(target, size, media_type)


def _csv_rows(path: Path) -> int:
    with path.open(encoding="utf-8-sig", errors="replace", newline="") as stream:
        return max(sum(1 for _ in csv.reader(stream)) - 1, 0)


def _report_saved(ui: Ui, saved: Saved) -> None:
    if saved.path is None:
        return
    zh, en = f"{saved.size:,} 字节", f"{saved.size:,} bytes"
    if saved.media_type.startswith("text/csv"):
        rows = _csv_rows(saved.path)
        zh, en = f"{zh}，{rows:,} 行数据", f"{en}, {rows:,} data rows"
    ui.ok(ui(f"已保存 {saved.path}（{zh}）", f"saved {saved.path} ({en})"))


def _filters(values: Sequence[str], ui: Ui) -> list[tuple[str, str]]:
    pairs = []
    for value in values:
        key, sep, item = value.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(ui(f"“{value}”应写成 键=值，例如 status=open", f"'{value}' should be key=value, e.g. status=open"),
                                     param_hint="--filter")
        pairs.append((key.strip(), item.strip()))
    return pairs


def export(
    kind: Annotated[ExportKind, typer.Argument(case_sensitive=False, help="needs, offers, organisations, matches or deliveries.")],
    format: FormatOption = None,
    out: OutOption = None,
    filter: Annotated[list[str] | None, typer.Option(
        "--filter", help="key=value, repeatable, passed as query parameters (e.g. region=441302 status=open).")] = None,
    url: UrlOption = DEFAULT_URL, user: UserOption = None, password: PasswordOption = None, token: TokenOption = None,
    lang: LangOption = None,
) -> None:
    """导出为表格 / Export to XLSX or CSV, streamed to a file with a progress bar."""
    connection = _connection(url, user, password, token, lang)
    ui = Ui(connection.lang)
    format = _table_format(format, out)
    params = [("format", format.value), *_filters(filter or [], ui)]
    with connect(connection) as api:
        saved = download(api, EXPORT_PATHS[kind], params=params, out=out, fallback=f"{kind.value}.{format.value}",
                         label=kind.value)
    _report_saved(ui, saved)


# --- match runs ----------------------------------------------------------------------------------------

_STAGES = {
    "queued": ("排队中", "queued"), "running": ("运行中", "running"), "loading": ("读取数据", "loading"), "scoring": ("评分", "scoring"),
    "allocating": ("分配数量", "allocating"), "writing": ("写入结果", "writing"), "finished": ("完成", "finished"),
    "failed": ("失败", "failed"),
}
_RUN_LABELS = {
    "id": ("运行编号", "run"), "status": ("状态", "status"), "region_code": ("地区", "region"),
    "ruleset_version": ("规则版本", "rule set version"), "proposals": ("提议匹配", "proposals"),
    "objective": ("目标值", "objective"), "error": ("错误", "error"), "started_at": ("开始", "started"),
    "finished_at": ("结束", "finished"),
}
_COUNT_LABELS = {
    "needs": ("需求", "needs"), "offers_considered": ("参与的供给", "offers considered"),
    "candidate_pairs": ("候选配对", "candidate pairs"), "proposals": ("提议匹配", "proposals"),
    "unmatched": ("未匹配需求", "unmatched needs"), "needs_reached": ("得到提议的需求", "needs reached"),
    "superseded": ("取代的旧提议", "earlier proposals superseded"), "components": ("连通分量", "components"),
    "villages_with_open_needs": ("有开放需求的村", "villages with open needs"),
    "villages_reached": ("得到提议的村", "villages reached"),
    "villages_reached_share": ("覆盖比例", "share of villages reached"), "gini": ("基尼系数", "Gini"),
}
FINAL_STATUSES = ("finished", "failed")


def _stage(ui: Ui, run: Mapping[str, Any]) -> str:
    stage = str(run.get("stage") or run.get("status") or "")
    return ui(*_STAGES[stage]) if stage in _STAGES else stage


def show_run(ui: Ui, run: Mapping[str, Any]) -> None:
    pairs: list[tuple[str, Any]] = []
    for key in ("id", "status", "region_code", "ruleset_version", "proposals", "objective", "started_at", "finished_at", "error"):
        if run.get(key) is not None:
            value = ui(*_STAGES[run[key]]) if key == "status" and run[key] in _STAGES else run[key]
            pairs.append((ui(*_RUN_LABELS[key]), value))
    for group in ("counts", "equity"):
        for key, value in (run.get(group) or {}).items():
            if group == "counts" and key == "proposals":
                continue
            pairs.append((ui(*_COUNT_LABELS[key]) if key in _COUNT_LABELS else key, value))
    total = (run.get("timings") or {}).get("total")
    if total is not None:
        pairs.append((ui("用时", "time taken"), f"{total:.2f} s"))
    ui.out.print(pairs_table(pairs, title=ui("匹配运行", "Match run")))


def show_unmatched(ui: Ui, page: Mapping[str, Any], run_id: str) -> None:
    items = page.get("items") or []
    if not items:
        return
    rows = [{ui("需求", "need"): item.get("need_id"), ui("村代码", "village"): item.get("village_code"),
             ui("代码", "code"): item.get("rejection") or item.get("code"), ui("原因", "reason"): item.get("reason")}
            for item in items]
    ui.out.print(records_table(rows, title=ui(f"未匹配的需求（前 {len(items)} 条）", f"Needs left unmatched (first {len(items)})")))
    if page.get("next_cursor"):
        ui.out.print(ui(f"更多：GET /api/match-runs/{run_id}/unmatched?cursor=…", f"more: GET /api/match-runs/{run_id}/unmatched?cursor=…"))


def wait_for_run(api: Api, run: dict[str, Any], *, timeout: float, interval: float) -> dict[str, Any]:
    ui = api.ui
    deadline = time.monotonic() + timeout
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn(),
                  console=ui.err) as progress:
        task = progress.add_task(_stage(ui, run), total=1.0)
        progress.update(task, completed=float(run.get("progress") or 0))
        while run.get("status") not in FINAL_STATUSES:
            if time.monotonic() > deadline:
                raise ui.fail(ui(f"等待超过 {timeout:g} 秒，运行仍在服务器上进行：GET /api/match-runs/{run['id']}",
                                 f"gave up waiting after {timeout:g} s; the run goes on on the server: GET /api/match-runs/{run['id']}"))
            time.sleep(interval)
            run = api.get(f"/api/match-runs/{run['id']}")
            progress.update(task, completed=float(run.get("progress") or 0), description=_stage(ui, run))
    return run


def match_run(
    region: Annotated[str, typer.Argument(help="Region code: 2, 4, 6, 9 or 12 digits / 地区代码.", show_default=False)],
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Follow the run to its end / 等待运行结束.")] = True,
    timeout: Annotated[float, typer.Option(help="Seconds to wait at most / 最长等待秒数.")] = 900.0,
    interval: Annotated[float, typer.Option(help="Seconds between polls / 轮询间隔.", hidden=True)] = 0.5,
    url: UrlOption = DEFAULT_URL, user: UserOption = None, password: PasswordOption = None, token: TokenOption = None,
    lang: LangOption = None,
) -> None:
    """在一个地区运行匹配 / Run matching over a region, follow its progress, print its results."""
    connection = _connection(url, user, password, token, lang)
    ui = Ui(connection.lang)
    with connect(connection) as api:
        run = api.post("/api/match-runs", json={"region_code": region}).json()
        ui.ok(ui(f"已提交匹配运行 {run['id']}（地区 {run.get('region_code', region)}）",
                 f"match run {run['id']} queued (region {run.get('region_code', region)})"))
        if not wait:
            show_run(ui, run)
            return
        try:
            run = wait_for_run(api, run, timeout=timeout, interval=interval)
        except KeyboardInterrupt:
            ui.warn(ui(f"不再等待；运行仍在服务器上进行：GET /api/match-runs/{run['id']}",
                       f"stopped waiting; the run goes on on the server: GET /api/match-runs/{run['id']}"))
            raise typer.Exit(130) from None
        show_run(ui, run)
        if run.get("status") == "failed":
            raise ui.fail(ui(f"匹配运行失败：{run.get('error') or ''}", f"the match run failed: {run.get('error') or ''}"))
        unmatched = api.get(f"/api/match-runs/{run['id']}/unmatched", params={"limit": 50})
    show_unmatched(ui, unmatched, str(run["id"]))
    ui.ok(ui(f"完成：{run.get('proposals', 0)} 条提议匹配，待协调员审核", f"finished: {run.get('proposals', 0)} proposals await review"))


# --- reports -------------------------------------------------------------------------------------------

_SECTION_TITLES = {
    "report": ("报告", "Report"), "totals": ("合计", "Totals"), "by_category": ("按类别", "By category"),
    "by_county": ("按县区", "By county"), "by_region": ("按地区", "By region"),
    "by_organisation": ("按社会组织", "By organisation"), "by_organization": ("按社会组织", "By organisation"),
    "by_year": ("按年份", "By year"), "years": ("按年份", "By year"), "by_kind": ("按帮扶方式", "By kind"),
    "by_village": ("按村", "By village"), "by_month": ("按月份", "By month"), "needs": ("需求", "Needs"),
    "participation": ("组织参与度", "Participation"), "participation_formula": ("参与度公式", "Participation formula"),
    "weights": ("权重", "Weights"), "unit_values_cny": ("单位折算（元）", "Unit values (CNY)"),
}


@dataclass
class Section:
    """One table of a report: key/value pairs, or records with columns."""

    key: str
    columns: list[str]
    rows: list[list[Any]] = field(default_factory=list)
    pairs: bool = False


def _scalar(value: Any) -> bool:
    if isinstance(value, list):
        return bool(value) and all(not isinstance(item, dict | list) for item in value)
    return not isinstance(value, dict)


def _one_language(document: dict[str, Any]) -> dict[str, Any]:
    """Drops `x_zh`/`x_en` beside `x` (and `zh`/`en` beside `text`): the API already put `x` in the asked language."""
    def twin(name: str) -> bool:
        if name in ("zh", "en"):
            return "text" in document
        return name.endswith(("_zh", "_en")) and name[:-3] in document

    return {name: value for name, value in document.items() if not twin(name)}


def report_sections(document: Any, key: str = "report") -> list[Section]:
    """Any JSON report as tables: scalars → one key/value table; each list of objects → a table with their keys
    as columns; an object of objects (e.g. keyed by category) → a table whose first column is that key."""
    if isinstance(document, list):
        rows = [_one_language(item) if isinstance(item, dict) else {"value": item} for item in document]
        columns = list(dict.fromkeys(str(name) for row in rows for name in row))
        return [Section(key, columns, [[row.get(column) for column in columns] for row in rows])]
    if not isinstance(document, dict):
        return [Section(key, ["value"], [[document]])]
    sections: list[Section] = []
    scalars = Section(key, ["key", "value"], pairs=True)
    for name, value in _one_language(document).items():
        path = name if key == "report" else f"{key}.{name}"
        if _scalar(value):
            scalars.rows.append([name, value])
        elif isinstance(value, list):
            sections.extend(report_sections(value, path))
        elif value and all(isinstance(item, dict) for item in value.values()):
            inner = [{"key": item_key, **item} for item_key, item in value.items()]
            columns = list(dict.fromkeys(str(column) for row in inner for column in row))
            sections.append(Section(path, columns, [[row.get(column) for column in columns] for row in inner]))
        else:
            sections.extend(report_sections(value, path))
    return ([scalars] if scalars.rows else []) + sections


def _section_title(ui: Ui, key: str) -> str:
    last = key.rsplit(".", 1)[-1]
    return ui(*_SECTION_TITLES[last]) if last in _SECTION_TITLES else key


def show_report(ui: Ui, sections: Sequence[Section]) -> None:
    for section in sections:
        title = _section_title(ui, section.key)
        if section.pairs:
            ui.out.print(pairs_table([(str(k), v) for k, v in section.rows], title=title))
        elif not section.rows:
            ui.out.print(f"{title}\n  {ui('（无）', '(none)')}")
        else:
            rows = [dict(zip(section.columns, row, strict=True)) for row in section.rows]
            ui.out.print(records_table(rows, title=title, columns=section.columns))


def _plain(value: Any) -> Any:
    if isinstance(value, list):
        return "、".join(str(_plain(item)) for item in value)
    if isinstance(value, dict):
        return cell(value)
    return value


def report_csv(ui: Ui, sections: Sequence[Section]) -> bytes:
    """Every table one after another: its title, its header, its rows, a blank line (UTF-8 with BOM, for Excel)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    for index, section in enumerate(sections):
        if index:
            writer.writerow([])
        writer.writerow([_section_title(ui, section.key)])
        if not section.pairs:
            writer.writerow(section.columns)
        writer.writerows([[_plain(value) for value in row] for row in section.rows])
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


def report_xlsx(ui: Ui, sections: Sequence[Section]) -> bytes:
    """One sheet per table."""
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    used: set[str] = set()
    for section in sections:
        name = re.sub(r"[\[\]:*?/\\]", "_", _section_title(ui, section.key))[:28] or "sheet"
        while name in used:
            name = name[:26] + f"_{len(used)}"
        used.add(name)
        sheet = workbook.create_sheet(name)
        if not section.pairs:
            sheet.append(section.columns)
        for row in section.rows:
            sheet.append([_plain(value) for value in row])
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def _years(value: str, ui: Ui) -> tuple[int, int]:
    match = re.fullmatch(r"\s*(\d{4})\s*(?:[-–~至]\s*(\d{4}))?\s*", value)
    if not match or int(match.group(2) or match.group(1)) < int(match.group(1)):
        raise typer.BadParameter(ui(f"“{value}”应写成 2021-2025 或 2024", f"'{value}' should look like 2021-2025 or 2024"),
                                 param_hint="--years")
    return int(match.group(1)), int(match.group(2) or match.group(1))


def _date(value: str | None, name: str, ui: Ui) -> str:
    try:
        return date.fromisoformat(str(value)).isoformat()
    except ValueError:
        raise typer.BadParameter(ui(f"“{value}”不是日期，请写成 2025-01-31", f"'{value}' is not a date: write 2025-01-31"),
                                 param_hint=name) from None


def report(
    region: Annotated[str, typer.Argument(help="Region code (prefix) / 地区代码.", show_default=False)],
    from_: Annotated[str | None, typer.Option("--from", help="First day, YYYY-MM-DD / 开始日期.", show_default=False)] = None,
    to: Annotated[str | None, typer.Option("--to", help="Last day, YYYY-MM-DD / 结束日期.", show_default=False)] = None,
    years: Annotated[str | None, typer.Option("--years", help="Year by year instead: 2021-2025 / 逐年对比.",
                                              show_default=False)] = None,
    format: Annotated[ReportFormat, typer.Option("--format", "-f", case_sensitive=False)] = ReportFormat.table,
    out: OutOption = None,
    url: UrlOption = DEFAULT_URL, user: UserOption = None, password: PasswordOption = None, token: TokenOption = None,
    lang: LangOption = None,
) -> None:
    """统计报告 / Report of a region: totals, by category, by county, by organisation (or --years year by year)."""
    connection = _connection(url, user, password, token, lang)
    ui = Ui(connection.lang)
    if years is not None:
        if from_ or to:
            raise typer.BadParameter(ui("--years 不能与 --from/--to 同用", "--years goes without --from/--to"), param_hint="--years")
        first, last = _years(years, ui)
        path, params = "/api/reports/years", {"region": region, "from_year": str(first), "to_year": str(last)}
        stem = f"report-{region}-{first}-{last}"
    else:
        if not (from_ and to):
            raise typer.BadParameter(ui("请给出 --from 和 --to（或 --years）", "give --from and --to (or --years)"), param_hint="--from")
        start, end = _date(from_, "--from", ui), _date(to, "--to", ui)
        path, params = "/api/reports/summary", {"region": region, "from": start, "to": end}
        stem = f"report-{region}-{start}-{end}"
    if format is ReportFormat.table and out is not None:
        raise typer.BadParameter(ui("表格只显示在屏幕上；保存请用 --format csv|xlsx|json",
                                    "tables go to the screen; to save use --format csv|xlsx|json"), param_hint="--out")
    body: bytes | None = None
    with connect(connection) as api:
        if format in (ReportFormat.csv, ReportFormat.xlsx):
            # The platform lays out its own CSV/XLSX (headers in the asked language); a platform that answers
            # JSON anyway gets its report laid out here, a table per part.
            response = raise_for_problem(api.http.get(path, params={**params, "format": format.value}))
            if response.headers.get("content-type", "").startswith("application/json"):
                document = response.json()
            else:
                body, stem = response.content, Path(_server_filename(response) or stem).stem
        else:
            document = api.get(path, params=params)
    if format is ReportFormat.json:
        text = json.dumps(document, ensure_ascii=False, indent=2) + "\n"
        if out is None or out == Path("-"):
            sys.stdout.write(text)
        else:
            out.write_text(text, encoding="utf-8")
            ui.ok(ui(f"已保存 {out}", f"saved {out}"))
        return
    if format is ReportFormat.table:
        show_report(ui, report_sections(document))
        return
    if body is None:
        sections = report_sections(document)
        body = report_csv(ui, sections) if format is ReportFormat.csv else report_xlsx(ui, sections)
    target = out or Path(f"{stem}.{format.value}")
    if target == Path("-"):
        sys.stdout.buffer.write(body)
        return
    if out is None and target.exists():
        raise ui.fail(ui(f"{target} 已存在，未覆盖；请用 --out 指定文件（给出同名即覆盖）。",
                         f"{target} exists and was left alone; name the file with --out (naming it overwrites it)."))
    target.write_bytes(body)
    ui.ok(ui(f"已保存 {target}（{len(body):,} 字节）", f"saved {target} ({len(body):,} bytes)"))


def register(app: typer.Typer) -> None:
    """Adds the data commands to the `duijie` app."""
    app.add_typer(import_app, name="import")
    app.command("export")(export)
    app.command("match-run")(match_run)
    app.command("report")(report)


__all__ = ["EXIT_FAILED", "register"]
