"""Text in both of the platform's languages, picked by the caller's Accept-Language."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from typing import Literal

Locale = Literal["zh", "en"]
DEFAULT_LOCALE: Locale = "zh"
current_locale: ContextVar[Locale] = ContextVar("current_locale", default=DEFAULT_LOCALE)


@dataclass(frozen=True, slots=True)
class Text:
    """One message in Chinese (first) and English, with `{name}` placeholders."""

    zh: str
    en: str

    def render(self, **params: object) -> str:
        """In the language of the current request."""
        template = self.in_locale(current_locale.get())
        return template.format(**params) if params else template

    def in_locale(self, locale: Locale) -> str:
        return self.zh if locale == "zh" else self.en


def locale_from_header(accept_language: str | None) -> Locale:
    """The first language of Accept-Language we speak; Chinese when none is named."""
    if not accept_language:
        return DEFAULT_LOCALE
    ranked: list[tuple[float, str]] = []
    for position, part in enumerate(accept_language.split(",")):
        tag, _, q = part.strip().partition(";q=")
        try:
            weight = float(q) if q else 1.0
        except ValueError:
            weight = 0.0
        ranked.append((-weight + position * 1e-6, tag.strip().lower()))
    for _, tag in sorted(ranked):
        if tag.startswith("zh"):
            return "zh"
        if tag.startswith("en"):
            return "en"
    return DEFAULT_LOCALE
