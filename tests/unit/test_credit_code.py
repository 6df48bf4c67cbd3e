"""The unified social credit code (统一社会信用代码, GB 32100-2015): 18 characters, the last a check character."""

from __future__ import annotations

import pytest
from pydantic import TypeAdapter
from pydantic_core import PydanticCustomError

from services.offers.schemas import CreditCode, check_credit_code, credit_code_check_character

# Worked by hand, so the test does not just repeat the code under test:
#   9 1 3 5 0 1 0 0 M 0 0 0 1 0 0 Y 4   (M = 21, Y = 30 in 0-9 A-H J-N P-R T U W-Y)
#   × 1 3 9 27 19 26 16 17 20 29 25 13 8 24 10 30 28
#   = 9+3+27+135+0+26+0+0+420+0+0+0+8+0+0+900+112 = 1640;  1640 mod 31 = 28;  31 - 28 = 3  →  "3"
HAND_CHECKED = "91350100M000100Y43"

VALID = [
    HAND_CHECKED,
    "91440300708461136T",
    "53100000500021676K",  # 53: a foundation registered with civil affairs
    "000000000000000000",  # sum 0: (31 - 0) mod 31 = 0, not 31
    "10000000000000000Y",  # sum 1: 30 maps to the charset's last character, Y
]

credit_code = TypeAdapter(CreditCode)


@pytest.mark.parametrize("code", VALID)
def test_valid_codes_pass(code: str) -> None:
    assert check_credit_code(code) == code
    assert credit_code_check_character(code[:17]) == code[17]


def test_codes_are_read_in_capitals_without_surrounding_spaces() -> None:
    assert credit_code.validate_python("  91350100m000100y43 ") == HAND_CHECKED


@pytest.mark.parametrize(
    ("code", "english"),
    [
        ("91350100M000100Y44", "The check character of the credit code is wrong; check the code"),
        ("91350100M000100Y4A", "The check character of the credit code is wrong; check the code"),
        ("91350100I000100Y43", "A unified social credit code cannot contain 'I' (digits and capitals except I, O, Z, S, V)"),
        ("9135010O0000100Y43", "A unified social credit code cannot contain 'O' (digits and capitals except I, O, Z, S, V)"),
        ("91350100M000100Y4Z", "A unified social credit code cannot contain 'Z' (digits and capitals except I, O, Z, S, V)"),
        ("91350100S000100Y43", "A unified social credit code cannot contain 'S' (digits and capitals except I, O, Z, S, V)"),
        ("91350100V000100Y43", "A unified social credit code cannot contain 'V' (digits and capitals except I, O, Z, S, V)"),
        ("91350100-00100Y43", "A unified social credit code has 18 characters, not 17"),
        ("91350100M000100Y4", "A unified social credit code has 18 characters, not 17"),
        ("91350100M000100Y430", "A unified social credit code has 18 characters, not 19"),
        ("", "A unified social credit code has 18 characters, not 0"),
    ],
)
def test_invalid_codes_are_refused_with_the_reason(code: str, english: str) -> None:
    with pytest.raises(PydanticCustomError) as raised:
        check_credit_code(code)
    assert raised.value.context is not None
    assert raised.value.context["en"] == english


def test_every_single_character_typo_is_caught() -> None:
    """A mod-31 check over distinct weights catches any one wrong character."""
    charset = "0123456789ABCDEFGHJKLMNPQRTUWXY"
    for position in range(17):
        for replacement in charset:
            if replacement == HAND_CHECKED[position]:
                continue
            typo = HAND_CHECKED[:position] + replacement + HAND_CHECKED[position + 1:]
            with pytest.raises(PydanticCustomError):
                check_credit_code(typo)


def test_the_reason_is_given_in_chinese_too() -> None:
    with pytest.raises(PydanticCustomError) as raised:
        check_credit_code("91350100M000100Y44")
    assert raised.value.context is not None
    assert raised.value.context["zh"] == "统一社会信用代码校验位不正确，请核对"
