"""The platform's shared words (API.md): categories, kinds and their units, groups, region codes.

These are the contract's vocabulary, not any one service's rules, so every service validates
against the same lists.
"""

from __future__ import annotations

import re
from decimal import Decimal
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, PlainSerializer

from services.common.errors import bilingual_error
from services.common.messages import Text


class Category(StrEnum):
    INDUSTRY = "industry"
    TALENT = "talent"
    CULTURE = "culture"
    ENVIRONMENT = "environment"
    INFRASTRUCTURE = "infrastructure"
    EDUCATION = "education"
    HEALTH = "health"
    ELDERLY_CHILDREN = "elderly_children"
    DISASTER = "disaster"
    GOVERNANCE = "governance"
    OTHER = "other"


class Kind(StrEnum):
    FUNDS = "funds"
    GOODS = "goods"
    SERVICE = "service"
    TRAINING = "training"
    EXPERTISE = "expertise"


class BeneficiaryGroup(StrEnum):
    ELDERLY = "elderly"
    CHILDREN = "children"
    LEFT_BEHIND_CHILDREN = "left_behind_children"
    STUDENTS = "students"
    DISABLED = "disabled"
    LOW_INCOME = "low_income"
    LANDLESS_FARMERS = "landless_farmers"
    WOMEN = "women"
    GENERAL = "general"


UNITS_BY_KIND: dict[Kind, tuple[str, ...]] = {
    Kind.FUNDS: ("CNY",),
    Kind.GOODS: ("item", "set", "kg", "book", "box"),
    Kind.SERVICE: ("person_day", "session"),
    Kind.TRAINING: ("trainee",),
    Kind.EXPERTISE: ("person_day",),
}

# How finely each unit may be divided: yuan to the fen, half person-days, whole books.
UNIT_DECIMALS: dict[str, int] = {
    "CNY": 2, "kg": 2, "person_day": 1, "item": 0, "set": 0, "book": 0, "box": 0, "session": 0, "trainee": 0,
}

# Kinds whose need names skills that the offer must bring (a "talent bank").
SKILLED_KINDS = frozenset({Kind.SERVICE, Kind.TRAINING, Kind.EXPERTISE})

MAX_QUANTITY = Decimal("1000000000000")  # 10^12: above any real project, below NUMERIC(18,2)'s reach
CENT = Decimal("0.01")

def amount_text(value: Decimal) -> str:
    """One spelling of an amount, however it was computed or read back: '45.00'."""
    return str(Decimal(value).quantize(CENT))


# Amounts leave the API as strings with exactly two decimals: "45.00", never a float.
AmountOut = Annotated[Decimal, PlainSerializer(lambda value: str(value.quantize(CENT)), return_type=str)]

_REGION = re.compile(r"^\d+$")
REGION_LEVEL_LENGTHS = (2, 4, 6, 9, 12)


def _check_region_digits(value: str, lengths: tuple[int, ...]) -> str:
    if not _REGION.match(value) or len(value) not in lengths:
        raise bilingual_error(
            Text(
                "区划代码须为 {lengths} 位数字（省 2、市 4、县 6、乡镇 9、村 12）",
                "A division code has {lengths} digits (province 2, city 4, county 6, township 9, village 12)",
            ),
            lengths="/".join(str(n) for n in lengths),
        )
    if value[:2] == "00":
        raise bilingual_error(Text("区划代码的省级部分无效", "The province part of the code is not valid"))
    return value


def check_village_code(value: str) -> str:
    return _check_region_digits(value, (12,))


def check_region_prefix(value: str) -> str:
    return _check_region_digits(value, REGION_LEVEL_LENGTHS)


VillageCode = Annotated[str, AfterValidator(check_village_code)]
RegionPrefix = Annotated[str, AfterValidator(check_region_prefix)]


def check_unit(kind: Kind, unit: str) -> None:
    allowed = UNITS_BY_KIND[kind]
    if unit not in allowed:
        raise bilingual_error(
            Text("“{kind}”类的单位只能是：{allowed}", "For kind '{kind}' the unit must be one of: {allowed}"),
            kind=kind.value, allowed=", ".join(allowed),
        )


def check_quantity(unit: str, quantity: Decimal) -> None:
    decimals = UNIT_DECIMALS.get(unit, 2)
    exponent = quantity.normalize().as_tuple().exponent
    if isinstance(exponent, int) and -exponent > decimals:
        if decimals == 0:
            raise bilingual_error(Text("“{unit}”须为整数", "A quantity in '{unit}' must be a whole number"), unit=unit)
        raise bilingual_error(
            Text("“{unit}”最多 {n} 位小数", "A quantity in '{unit}' has at most {n} decimal places"),
            unit=unit, n=decimals,
        )


# --- the same words as people write them: Chinese first, English too --------------------------
# Spreadsheets from bureaus and the web pages speak in these labels, never in the API's codes.

CATEGORY_LABELS: dict[Category, Text] = {
    Category.INDUSTRY: Text("产业", "Industry"),
    Category.TALENT: Text("人才", "Talent"),
    Category.CULTURE: Text("文化", "Culture"),
    Category.ENVIRONMENT: Text("生态", "Environment"),
    Category.INFRASTRUCTURE: Text("基础设施", "Infrastructure"),
    Category.EDUCATION: Text("教育", "Education"),
    Category.HEALTH: Text("医疗卫生", "Health"),
    Category.ELDERLY_CHILDREN: Text("一老一小", "Elderly and children"),
    Category.DISASTER: Text("防灾救灾", "Disaster relief"),
    Category.GOVERNANCE: Text("基层治理", "Governance"),
    Category.OTHER: Text("其他", "Other"),
}

KIND_LABELS: dict[Kind, Text] = {
    Kind.FUNDS: Text("资金", "Funds"),
    Kind.GOODS: Text("物资", "Goods"),
    Kind.SERVICE: Text("服务", "Service"),
    Kind.TRAINING: Text("培训", "Training"),
    Kind.EXPERTISE: Text("智力支持", "Expertise"),
}

UNIT_LABELS: dict[str, Text] = {
    "CNY": Text("元", "CNY"),
    "item": Text("件", "item"),
    "set": Text("套", "set"),
    "kg": Text("公斤", "kg"),
    "book": Text("册", "book"),
    "box": Text("箱", "box"),
    "person_day": Text("人天", "person-day"),
    "session": Text("场", "session"),
    "trainee": Text("人", "trainee"),
}

GROUP_LABELS: dict[BeneficiaryGroup, Text] = {
    BeneficiaryGroup.ELDERLY: Text("老年人", "Elderly"),
    BeneficiaryGroup.CHILDREN: Text("儿童", "Children"),
    BeneficiaryGroup.LEFT_BEHIND_CHILDREN: Text("留守儿童", "Left-behind children"),
    BeneficiaryGroup.STUDENTS: Text("学生", "Students"),
    BeneficiaryGroup.DISABLED: Text("残疾人", "Disabled people"),
    BeneficiaryGroup.LOW_INCOME: Text("低收入人口", "Low-income people"),
    BeneficiaryGroup.LANDLESS_FARMERS: Text("失地农民", "Landless farmers"),
    BeneficiaryGroup.WOMEN: Text("妇女", "Women"),
    BeneficiaryGroup.GENERAL: Text("全体村民", "All villagers"),
}

# Other ways the same words are written in bureaus' spreadsheets.
LABEL_SYNONYMS: dict[str, str] = {
    "元": "CNY", "人民币": "CNY", "个": "item", "千克": "kg", "本": "book", "人日": "person_day",
    "次": "session", "人次": "trainee", "老人": "elderly", "残疾": "disabled", "低收入": "low_income",
    "卫生": "health", "医疗": "health", "健康": "health", "环境": "environment", "生态环境": "environment",
    "治理": "governance", "救灾": "disaster", "防灾减灾": "disaster", "养老托幼": "elderly_children",
    "专业支持": "expertise", "智力": "expertise", "专家": "expertise",
}
