"""How cells written by people become exact values."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import pytest
from pydantic_core import PydanticCustomError

from services.common.spreadsheets import (
    Column,
    as_amount,
    as_date,
    as_integer,
    as_list,
    as_text,
    choice,
    normalise_header,
    parse_sheet,
)
from services.common.vocabulary import UNIT_LABELS


@pytest.mark.parametrize(
    ("cell", "amount"),
    [
        ("145万元", Decimal("1450000")), ("1,450,000", Decimal("1450000")), ("1，450，000元", Decimal("1450000")),
        ("¥5000", Decimal("5000")), ("1.2亿", Decimal("120000000")), ("0.35万", Decimal("3500")),
        ("45人", Decimal("45")), (1450000.0, Decimal("1450000.0")), (12, Decimal("12")), ("-100", Decimal("-100")),
        ("1234.56", Decimal("1234.56")),
    ],
)
def test_amounts_as_bureaus_write_them(cell: object, amount: Decimal) -> None:
    assert as_amount(cell) == amount  # type: ignore[arg-type]


@pytest.mark.parametrize("cell", ["一百万", "abc", "1.2.3", "", True, "12 34"])
def test_what_is_not_an_amount_says_how_to_write_one(cell: object) -> None:
    with pytest.raises(PydanticCustomError) as raised:
        as_amount(cell)  # type: ignore[arg-type]
    assert "145万元" in str(raised.value)


def test_whole_numbers_refuse_fractions() -> None:
    assert as_integer("3,200") == 3200
    with pytest.raises(PydanticCustomError):
        as_integer("2.5")


@pytest.mark.parametrize(
    ("cell", "day"),
    [("2027-06-30", date(2027, 6, 30)), ("2027/6/30", date(2027, 6, 30)), ("2027年6月30日", date(2027, 6, 30)),
     ("2027.06.30", date(2027, 6, 30)), (datetime(2027, 6, 30, 8), date(2027, 6, 30)), (date(2027, 1, 2), date(2027, 1, 2))],
)
def test_dates_in_the_usual_spellings(cell: object, day: date) -> None:
    assert as_date(cell) == day  # type: ignore[arg-type]


@pytest.mark.parametrize("cell", ["2027-02-30", "明年", "30/06/2027"])
def test_impossible_or_ambiguous_dates_are_refused(cell: str) -> None:
    with pytest.raises(PydanticCustomError):
        as_date(cell)


def test_lists_split_on_chinese_and_latin_separators() -> None:
    assert as_list("学生、留守儿童，老年人;妇女") == ["学生", "留守儿童", "老年人", "妇女"]


def test_excel_numbers_keep_their_digits() -> None:
    assert as_text(441302104201.0) == "441302104201"


def test_choices_take_codes_labels_and_synonyms() -> None:
    unit = choice(UNIT_LABELS)
    assert [unit("元"), unit("CNY"), unit("人民币"), unit("人天"), unit("person-day")] == ["CNY"] * 3 + ["person_day"] * 2
    with pytest.raises(PydanticCustomError):
        unit("吨")


def test_headers_match_whatever_marks_people_add() -> None:
    assert normalise_header(" 项目名称* ") == normalise_header("项目名称（必填）") == "项目名称"
    assert normalise_header("Title (required)") == "title"


def test_a_cell_repeated_down_a_column_is_read_once_but_each_row_keeps_its_own_list_and_errors() -> None:
    columns = [
        Column("amount", "金额", "Amount", as_amount, required=True),
        Column("groups", "受益群体", "Groups", as_list),
    ]
    data = "金额,受益群体\n145万元,学生、老人\n145万元,学生、老人\n很多,学生\n很多,学生\n".encode()

    sheet = parse_sheet(data, columns)

    first, second = sheet.rows[0][1], sheet.rows[1][1]
    assert first["amount"] == second["amount"] == Decimal("1450000")
    assert first["groups"] == second["groups"] == ["学生", "老人"]
    assert first["groups"] is not second["groups"]  # a list changed for one row never changes another's
    assert [error.row for error in sheet.errors] == [4, 5]  # a bad cell is reported on every row it appears
