"""Every text the pages show goes through the catalogues, and the Chinese catalogue translates all of it."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

import gateway.web
from gateway.web import i18n
from services.common.messages import current_locale

WEB_DIR = Path(gateway.web.__file__).parent
METHODS = [("templates/**.html", "jinja2.ext:babel_extract"), ("*.py", "python")]
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "N_": None}


def _message_ids() -> dict[str, str]:
    """msgid → where it is used, as Babel's extractor (pybabel extract) finds them."""
    found: dict[str, str] = {}
    for filename, lineno, message, _comments, _context in extract_from_dir(
        str(WEB_DIR), METHODS, keywords=KEYWORDS, options_map={"templates/**.html": {"extensions": "jinja2.ext.i18n"}}
    ):
        # A plural message is catalogued under its singular id (with msgid_plural beside it).
        msgid = message[0] if isinstance(message, tuple) else message
        if msgid:
            found.setdefault(msgid, f"{filename}:{lineno}")
    return found


def _chinese_entries() -> dict[str, dict[str, str]]:
    """msgid → {catalogue file: its translation}, over every zh catalogue."""
    entries: dict[str, dict[str, str]] = defaultdict(dict)
    for po_path in sorted((WEB_DIR / "locales" / "zh" / "LC_MESSAGES").glob("*.po")):
        with po_path.open("rb") as po_file:
            for message in read_po(po_file):
                if message.id and message.string and not message.fuzzy:
                    msgid = str(message.id if isinstance(message.id, str) else message.id[0])
                    entries[msgid][po_path.name] = str(message.string)
    return entries


def _chinese_catalogue() -> dict[str, str]:
    return {msgid: next(iter(by_file.values())) for msgid, by_file in _chinese_entries().items()}


def test_every_message_of_the_pages_has_a_chinese_translation() -> None:
    used = _message_ids()
    assert "Sign in" in used  # the extractor really reads the templates
    translated = _chinese_catalogue()
    missing = {msgid: where for msgid, where in used.items() if msgid not in translated}
    assert not missing, f"add these to a zh catalogue under gateway/web/locales: {missing}"


def test_no_message_is_translated_differently_in_two_catalogues() -> None:
    # The catalogues are merged at start: a second translation would silently win over the first.
    conflicting = {msgid: by_file for msgid, by_file in _chinese_entries().items() if len(set(by_file.values())) > 1}
    assert not conflicting, f"one translation per message id: {conflicting}"


def test_every_message_is_in_one_catalogue_only() -> None:
    # Shared messages live in core.po, the vocabulary's words (labels.py) in labels.po.
    repeated = {msgid: sorted(by_file) for msgid, by_file in _chinese_entries().items() if len(by_file) > 1}
    assert not repeated, f"keep each message id in one catalogue: {repeated}"


def test_the_catalogues_hold_no_message_the_pages_no_longer_use() -> None:
    used = _message_ids()
    unused = sorted(msgid for msgid in _chinese_entries() if msgid not in used)
    assert not unused, f"remove these from the zh catalogues: {unused}"


def test_the_catalogues_translate_at_run_time() -> None:
    token = current_locale.set("zh")
    try:
        assert i18n.gettext("Sign in") == "登录"
    finally:
        current_locale.reset(token)
    token = current_locale.set("en")
    try:
        assert i18n.gettext("Sign in") == "Sign in"
    finally:
        current_locale.reset(token)


def test_money_is_written_in_wan_yuan_in_chinese_and_in_cny_in_english() -> None:
    token = current_locale.set("zh")
    try:
        assert i18n.money("1450000") == "145 万元"
        assert i18n.money("1234500") == "123.45 万元"
        assert i18n.money("550000.50") == "550,000.50 元"  # 万元 would round half a yuan away
        assert i18n.money("9800") == "9,800.00 元"
        assert i18n.format_date("2026-11-23") == "2026年11月23日"
    finally:
        current_locale.reset(token)
    token = current_locale.set("en")
    try:
        assert i18n.money("1450000") == "CN¥1,450,000.00"
        assert i18n.format_date("2026-11-23") == "23 Nov 2026"
    finally:
        current_locale.reset(token)
