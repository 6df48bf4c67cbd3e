"""Spreadsheets in and out: XLSX and CSV (UTF-8 or GB18030, as Chinese Excel saves them).

A service declares its columns once (`Column`); this module turns an uploaded file into rows of
API-shaped values with row-level errors, and rows back into streamed CSV or XLSX.
"""

from __future__ import annotations

import csv
import gc
import io
import re
import tempfile
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

import anyio
from fastapi import UploadFile
from fastapi.responses import Response, StreamingResponse
from openpyxl import Workbook
from pydantic_core import PydanticCustomError
from python_calamine import CalamineError, CalamineWorkbook, PasswordError, XmlError, ZipError

from services.common.errors import AppError, ValidationFailed, bilingual_error
from services.common.messages import Locale, Text, current_locale
from services.common.vocabulary import LABEL_SYNONYMS

MAX_UPLOAD_BYTES = 40 * 1024 * 1024
MAX_ROWS = 200_000
CSV_MEDIA_TYPE = "text/csv; charset=utf-8"
XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

Cell = str | int | float | Decimal | date | datetime | time | timedelta | bool | None


class FileTooLarge(AppError):
    status = 413
    code = "file-too-large"
    title = Text("文件过大", "File too large")


class TableFormat(StrEnum):
    CSV = "csv"
    XLSX = "xlsx"


# --- columns: one header in each language, and how a cell becomes an API value ----------------

@dataclass(frozen=True)
class Column:
    field: str
    zh: str
    en: str
    parse: Callable[[Cell], Any] = lambda cell: as_text(cell)
    required: bool = False
    example: str | Callable[[], str] = ""  # a callable for values that age, such as a deadline
    aliases: tuple[str, ...] = ()

    def header(self, locale: Locale) -> str:
        return self.zh if locale == "zh" else self.en

    def names(self) -> Iterator[str]:
        yield from (self.zh, self.en, self.field, *self.aliases)


@dataclass
class RowError:
    row: int
    column: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"row": self.row, "column": self.column, "message": self.message}


@dataclass
class ParsedSheet:
    """Rows as API-shaped dicts keyed by field, numbered as the spreadsheet numbers them."""

    rows: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)


def normalise_header(name: object) -> str:
    """'标题*', ' Title (必填) ' and 'title' all read as the same column."""
    text = re.sub(r"[（(][^）)]*[）)]", "", str(name or ""))
    return re.sub(r"[\s*＊:：]", "", text).lower()


# --- cell parsers: each raises a bilingual error a person can act on --------------------------

def as_text(cell: Cell) -> str:
    if isinstance(cell, str):  # by far the commonest cell: first
        return cell.strip()
    if isinstance(cell, float) and cell.is_integer():
        return str(int(cell))  # Excel stores 441302101001 as a number
    if isinstance(cell, datetime | date):
        return cell.isoformat()
    return "" if cell is None else str(cell).strip()


_AMOUNT = re.compile(r"^([0-9][0-9,，]*(?:\.[0-9]+)?)\s*(万|亿)?\s*[^\d]{0,6}$")
_MULTIPLIERS = {None: Decimal(1), "万": Decimal(10_000), "亿": Decimal(100_000_000)}


def as_amount(cell: Cell) -> Decimal:
    """'145万元', '1,450,000', '¥5000', 1450000.0 → an exact Decimal."""
    if isinstance(cell, bool):
        raise _bad_amount(cell)
    if isinstance(cell, int | Decimal):
        return Decimal(cell)
    if isinstance(cell, float):
        return Decimal(repr(cell))
    text = as_text(cell).replace("￥", "").replace("¥", "").replace("RMB", "").strip()
    negative = text.startswith(("-", "－"))
    match = _AMOUNT.match(text.lstrip("-－").strip())
    if not match:
        raise _bad_amount(cell)
    try:
        value = Decimal(match.group(1).replace(",", "").replace("，", "")) * _MULTIPLIERS[match.group(2)]
    except InvalidOperation as exc:
        raise _bad_amount(cell) from exc
    return -value if negative else value


def _bad_amount(cell: Cell) -> PydanticCustomError:
    return bilingual_error(
        Text("“{value}”不是数量，请写成 45、1,450,000 或 145万元", "'{value}' is not an amount: write 45, 1,450,000 or 145万元"),
        value=as_text(cell),
    )


def as_integer(cell: Cell) -> int:
    amount = as_amount(cell)
    if amount != amount.to_integral_value():
        raise bilingual_error(Text("“{value}”须为整数", "'{value}' must be a whole number"), value=as_text(cell))
    return int(amount)


_DATE = re.compile(r"^(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?$")


def as_date(cell: Cell) -> date:
    """A date cell, or '2026-12-31', '2026/12/31', '2026年12月31日'."""
    if isinstance(cell, datetime):
        return cell.date()
    if isinstance(cell, date):
        return cell
    match = _DATE.match(as_text(cell))
    try:
        if match:
            return date(*(int(part) for part in match.groups()))
    except ValueError:
        pass
    raise bilingual_error(
        Text("“{value}”不是日期，请写成 2026-12-31", "'{value}' is not a date: write 2026-12-31"), value=as_text(cell)
    )


_SEPARATORS = re.compile(r"[、,，;；/|\n]+")


def as_list(cell: Cell) -> list[str]:
    return [part.strip() for part in _SEPARATORS.split(as_text(cell)) if part.strip()]


def choice(labels: Mapping[Any, Text]) -> Callable[[Cell], str]:
    """A code, or its Chinese or English label, or a common synonym → the code."""
    lookup = {normalise_header(code): str(code) for code in labels}
    for code, label in labels.items():
        lookup[normalise_header(label.zh)] = str(code)
        lookup[normalise_header(label.en)] = str(code)
    lookup.update({normalise_header(word): code for word, code in LABEL_SYNONYMS.items() if code in lookup.values()})
    lookup.update({label.zh: str(code) for code, label in labels.items()})  # the common case, without normalising

    def parse(cell: Cell) -> str:
        text = as_text(cell)
        code = lookup.get(text) or lookup.get(normalise_header(text))
        if code is None:
            raise bilingual_error(
                Text("“{value}”不在可选项中：{allowed}", "'{value}' is not one of: {allowed}"),
                value=as_text(cell), allowed="、".join(label.render() for label in labels.values()),
            )
        return code

    return parse


def choices(labels: Mapping[Any, Text]) -> Callable[[Cell], list[str]]:
    one = choice(labels)
    return lambda cell: [one(part) for part in as_list(cell)]


# --- reading ------------------------------------------------------------------------------------

@contextmanager
def cyclic_gc_paused() -> Iterator[None]:
    """For the synchronous parse and check of a large file. It makes millions of acyclic objects, and the
    cyclic collector rescanning them again and again took ~40 % of a 100k-row import. Nothing else runs on
    the event loop meanwhile, so no other request is affected; reference counting still frees memory."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def check_size(size: int) -> None:
    if size > MAX_UPLOAD_BYTES:
        raise FileTooLarge(
            Text("文件超过 {limit} MB，请拆分后分批导入。", "The file is over {limit} MB; split it and import the parts."),
            limit=MAX_UPLOAD_BYTES // (1024 * 1024),
        )


def _unreadable() -> ValidationFailed:
    return ValidationFailed(
        Text("无法读取文件：请上传 XLSX，或 UTF-8 / GB18030 编码的 CSV。",
             "The file cannot be read: upload XLSX, or CSV in UTF-8 or GB18030.")
    )


def _csv_rows(data: bytes) -> Iterator[list[Cell]]:
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        yield from csv.reader(io.StringIO(text, newline=""))
        return
    raise _unreadable()


def _xlsx_rows(data: bytes) -> Iterator[list[Cell]]:
    # calamine (Rust) reads a 100k-row sheet in about a second; openpyxl takes some forty.
    try:
        workbook = CalamineWorkbook.from_filelike(io.BytesIO(data))
        rows = workbook.get_sheet_by_index(0).to_python(skip_empty_area=False)
    except (CalamineError, PasswordError, XmlError, ZipError, IndexError, ValueError) as exc:
        raise _unreadable() from exc
    for row in rows:
        cells: list[Cell] = list(row)
        yield cells


def table_rows(data: bytes) -> Iterator[list[Cell]]:
    """Every row of the first sheet, header included; the format is told by the bytes, not the name."""
    check_size(len(data))
    if not data.strip(b"\xef\xbb\xbf \r\n\t"):
        raise ValidationFailed(Text("文件是空的：第一行应为表头。", "The file is empty: its first row should be the headers."))
    return _xlsx_rows(data) if data[:4] == b"PK\x03\x04" else _csv_rows(data)


def parse_sheet(data: bytes, columns: Sequence[Column], *, export_only: Iterable[str] = ()) -> ParsedSheet:
    """Map headers to columns, then parse each cell; every problem becomes a RowError."""
    rows = table_rows(data)
    sheet = ParsedSheet()
    header = next(rows, None)
    if header is None:
        raise ValidationFailed(Text("文件是空的：第一行应为表头。", "The file is empty: its first row should be the headers."))
    positions = _map_headers(header, columns, export_only, sheet)
    if sheet.errors:
        return sheet
    parsed: dict[int, dict[tuple[type, Cell], Any]] = {index: {} for index in positions}
    for number, cells in enumerate(rows, start=2):
        if number - 1 > MAX_ROWS:
            raise ValidationFailed(
                Text("一次最多导入 {n} 行，请拆分文件。", "At most {n} rows per file; split the file."), n=MAX_ROWS
            )
        cells = [_blank_is_none(cell) for cell in cells]
        if all(cell is None for cell in cells):
            continue
        sheet.rows.append((number, _parse_row(number, cells, positions, sheet.errors, parsed)))
    if not sheet.rows and not sheet.errors:
        raise ValidationFailed(Text("文件只有表头，没有数据行。", "The file has headers but no rows."))
    return sheet


def _map_headers(
    header: list[Cell], columns: Sequence[Column], export_only: Iterable[str], sheet: ParsedSheet
) -> dict[int, Column]:
    by_name = {normalise_header(name): column for column in columns for name in column.names()}
    skipped = {normalise_header(name) for name in export_only} | {"序号", "no", "#"}
    positions: dict[int, Column] = {}
    for index, name in enumerate(header):
        key = normalise_header(name)
        if key in by_name:
            positions[index] = by_name[key]
        elif key and key not in skipped:
            sheet.ignored_columns.append(as_text(name))
    locale = current_locale.get()
    present = {column.field for column in positions.values()}
    for column in columns:
        if column.required and column.field not in present:
            sheet.errors.append(RowError(1, column.header(locale), Text("缺少此列", "This column is missing").render()))
    return positions


def _blank_is_none(cell: Cell) -> Cell:
    """Cells stripped once, an empty one as None: 100k rows × 20 columns are checked many times."""
    if isinstance(cell, str):
        return cell.strip() or None
    return cell


# Cells repeat down a column (categories, units, dates, villages): each distinct cell is parsed once, up to
# this many per column. Lists are not remembered (each row gets its own), nor errors (each row reports its own).
MAX_REMEMBERED_CELLS = 20_000


def _parse_row(
    number: int, cells: list[Cell], positions: dict[int, Column], errors: list[RowError],
    parsed: dict[int, dict[tuple[type, Cell], Any]],
) -> dict[str, Any]:
    values: dict[str, Any] = {}
    locale = current_locale.get()
    for index, column in positions.items():
        cell = cells[index] if index < len(cells) else None
        if cell is None:
            continue
        remembered = parsed[index]
        key = (type(cell), cell)  # by type too: True == 1 == 1.0, but only 1 is an amount
        if key in remembered:
            values[column.field] = remembered[key]
            continue
        try:
            value = column.parse(cell)
        except PydanticCustomError as error:
            context = error.context or {}
            errors.append(RowError(number, column.header(locale), str(context.get(locale, error.message()))))
            continue
        values[column.field] = value
        if not isinstance(value, list) and len(remembered) < MAX_REMEMBERED_CELLS:
            remembered[key] = value
    return values


def column_of(field_path: str, columns: Sequence[Column]) -> str:
    """The header, in the caller's language, of the column an API field came from."""
    head = field_path.split(".")[0]
    for column in columns:
        if column.field == head:
            return column.header(current_locale.get())
    return Text("整行", "row").render()


# --- writing, streamed ---------------------------------------------------------------------------

def csv_line(values: Sequence[Any]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer).writerow(["" if value is None else value for value in values])
    return buffer.getvalue()


async def stream_csv(header: Sequence[str], batches: AsyncIterator[list[Sequence[Any]]]) -> AsyncIterator[bytes]:
    """UTF-8 with a BOM, so that Excel opens Chinese text correctly."""
    yield ("\ufeff" + csv_line(header)).encode()
    async for batch in batches:
        yield "".join(csv_line(row) for row in batch).encode()


async def stream_xlsx(
    header: Sequence[str], batches: AsyncIterator[list[Sequence[Any]]], *, title: str = "Sheet1"
) -> AsyncIterator[bytes]:
    """openpyxl's write-only mode keeps rows on disk, not in memory; the file is streamed when done."""
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(title)
    sheet.append(list(header))
    async for batch in batches:
        for row in batch:
            sheet.append([_xlsx_value(value) for value in row])
    with tempfile.TemporaryFile() as spool:
        await anyio.to_thread.run_sync(workbook.save, spool)
        spool.seek(0)
        while chunk := await anyio.to_thread.run_sync(spool.read, 1 << 20):
            yield chunk


def _xlsx_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value) if value == value.quantize(Decimal("0.01")) and abs(value) < 10**13 else str(value)
    return value


def template_bytes(columns: Sequence[Column], table_format: TableFormat, locale: Locale) -> bytes:
    """An empty sheet with the headers and one example row, for people to fill in."""
    header = [column.header(locale) + ("*" if column.required else "") for column in columns]
    example = [column.example() if callable(column.example) else column.example for column in columns]
    if table_format is TableFormat.CSV:
        return ("\ufeff" + csv_line(header) + csv_line(example)).encode()
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(header)
    sheet.append(example)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


class RowsInvalid(ValidationFailed):
    """A file with bad rows: nothing was written. Lists each row's errors (the first MAX_REPORTED)."""

    MAX_REPORTED = 1000

    def __init__(self, errors: Sequence[RowError]) -> None:
        super().__init__(
            Text("文件中有 {n} 处错误，没有导入任何一行；请按行号修改后重新导入。",
                 "The file has {n} errors and nothing was imported; correct the rows listed and import again."),
            n=len(errors),
        )
        self.row_errors = list(errors)

    def problem(self, instance: str | None = None) -> dict[str, Any]:
        body = super().problem(instance)
        body["errors"] = [error.as_dict() for error in self.row_errors[: self.MAX_REPORTED]]
        body["error_count"] = len(self.row_errors)
        return body


# --- HTTP helpers for the routers ------------------------------------------------------------------

SPREADSHEET_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {XLSX_MEDIA_TYPE: {}, CSV_MEDIA_TYPE: {}}, "description": "XLSX or CSV"}
}
_MEDIA_TYPES = {TableFormat.CSV: CSV_MEDIA_TYPE, TableFormat.XLSX: XLSX_MEDIA_TYPE}


def _disposition(name: str, table_format: TableFormat) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{name}.{table_format.value}"'}


def attachment(body: bytes, table_format: TableFormat, name: str) -> Response:
    return Response(body, media_type=_MEDIA_TYPES[table_format], headers=_disposition(name, table_format))


def streamed(
    header: Sequence[str], batches: AsyncIterator[list[Sequence[Any]]], table_format: TableFormat, name: str
) -> StreamingResponse:
    body = stream_csv(header, batches) if table_format is TableFormat.CSV else stream_xlsx(header, batches, title=name)
    return StreamingResponse(body, media_type=_MEDIA_TYPES[table_format], headers=_disposition(name, table_format))


async def read_upload(upload: UploadFile) -> bytes:
    """The uploaded file, refused with 413 as soon as it passes the limit (never read whole first)."""
    data = await upload.read(MAX_UPLOAD_BYTES + 1)
    check_size(len(data))
    return data
