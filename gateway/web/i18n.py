"""The pages' two languages: Babel message catalogues, and dates, money and numbers as each locale writes them.

Message ids are English; the Chinese catalogue translates them. There is one catalogue per part of
the site (`locales/zh/LC_MESSAGES/<part>.po`), merged at start, so the parts can grow separately.
The .po files are compiled in memory when first used: no compiled .mo file can go stale.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from functools import cache
from pathlib import Path

from babel import dates, numbers
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

from services.common.messages import DEFAULT_LOCALE, Locale, Text, current_locale

LOCALES_DIR = Path(__file__).parent / "locales"
BABEL_LOCALE: dict[Locale, str] = {"zh": "zh_Hans_CN", "en": "en_GB"}
LANGUAGE_TAG: dict[Locale, str] = {"zh": "zh-CN", "en": "en"}
TEN_THOUSAND = Decimal(10_000)


def parse_locale(value: str | None) -> Locale | None:
    """'zh', 'zh-CN', 'en', 'en-GB' → our locale; anything else → None."""
    if not value:
        return None
    tag = value.strip().lower()
    if tag.startswith("zh"):
        return "zh"
    if tag.startswith("en"):
        return "en"
    return None


@cache
def translations(locale: Locale) -> NullTranslations:
    if locale == "en":
        return NullTranslations()  # the message ids are the English text
    merged: Translations | None = None
    for po_path in sorted((LOCALES_DIR / locale / "LC_MESSAGES").glob("*.po")):
        with po_path.open("rb") as po_file:
            catalog = read_po(po_file, locale=BABEL_LOCALE[locale])
        compiled = io.BytesIO()
        write_mo(compiled, catalog)  # fuzzy entries are left out, as msgfmt does
        compiled.seek(0)
        part = Translations(compiled, domain="messages")
        merged = part if merged is None else merged.merge(part)
    return merged or NullTranslations()


def gettext(message: str) -> str:
    return translations(current_locale.get()).gettext(message)


def ngettext(singular: str, plural: str, count: int) -> str:
    return translations(current_locale.get()).ngettext(singular, plural, count)


def N_(message: str) -> str:
    """Marks a string for the catalogue where it is defined; it is translated where it is shown."""
    return message


def text(message: Text) -> str:
    """A message of the API's vocabulary (categories, units…), which carries both languages itself."""
    return message.in_locale(current_locale.get())


def _babel_locale() -> str:
    return BABEL_LOCALE.get(current_locale.get(), BABEL_LOCALE[DEFAULT_LOCALE])


def number(value: Decimal | int | float | str | None, *, places: int | None = None) -> str:
    if value is None or value == "":
        return "—"
    amount = Decimal(str(value))
    if places is not None:
        return numbers.format_decimal(amount, format=f"#,##0.{'0' * places}" if places else "#,##0", locale=_babel_locale())
    return numbers.format_decimal(amount, locale=_babel_locale())


def money(value: Decimal | int | float | str | None) -> str:
    """Chinese in 元 and, from ten thousand up, 万元 as the bureaus write it; English in CNY.

    万元 only when it is exact to two places (a multiple of 100 元): a page never rounds a yuan away.
    """
    if value is None or value == "":
        return "—"
    amount = Decimal(str(value))
    if current_locale.get() == "zh":
        if abs(amount) >= TEN_THOUSAND and amount % 100 == 0:
            wan = (amount / TEN_THOUSAND).quantize(Decimal("0.01")).normalize()
            return f"{numbers.format_decimal(wan, format='#,##0.##', locale='zh_Hans_CN')} 万元"
        return f"{numbers.format_decimal(amount, format='#,##0.00', locale='zh_Hans_CN')} 元"
    return numbers.format_currency(amount, "CNY", format="¤#,##0.00", locale="en_GB", currency_digits=False)


def quantity(value: Decimal | int | float | str | None, unit: str, unit_label: Callable[[str], str]) -> str:
    """An amount in its unit: money as money, anything else as '45 名学员' / '45 trainees'."""
    if unit == "CNY":
        return money(value)
    return f"{number(value)} {unit_label(unit)}"


def _as_date(value: date | datetime | str) -> date | datetime:
    if isinstance(value, str):
        return datetime.fromisoformat(value.replace("Z", "+00:00")) if "T" in value else date.fromisoformat(value)
    return value


def format_date(value: date | datetime | str | None) -> str:
    if not value:
        return "—"
    moment = _as_date(value)
    day = moment.date() if isinstance(moment, datetime) else moment
    return dates.format_date(day, format="medium", locale=_babel_locale())


def format_datetime(value: datetime | str | None) -> str:
    if not value:
        return "—"
    moment = _as_date(value)
    if not isinstance(moment, datetime):
        return format_date(moment)
    return dates.format_datetime(moment, format="short", tzinfo=dates.get_timezone("Asia/Shanghai"), locale=_babel_locale())
