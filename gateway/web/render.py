"""Templates: one Jinja environment with the catalogues' gettext, locale-aware filters and the vocabulary's labels."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from gateway.web import i18n, labels, regions
from gateway.web.session import PageContext, remember_browser
from services.common.identity import Principal, Role
from services.common.vocabulary import CATEGORY_LABELS, GROUP_LABELS, KIND_LABELS, UNIT_LABELS, Category, Kind

TEMPLATES_DIR = Path(__file__).parent / "templates"
N_ = i18n.N_

# Each role's pages, in the order of its work. Labels are message ids, translated where shown.
NAV_LINKS: dict[Role, list[tuple[str, str]]] = {
    Role.OFFICER: [("/village/needs", N_("My village's needs")), ("/village/matches", N_("Matches and receipts"))],
    Role.ORG_MEMBER: [("/org/offers", N_("My organisation")), ("/org/needs", N_("Browse open needs")),
                      ("/org/matches", N_("Pledges and deliveries"))],
    Role.COORDINATOR: [("/coord/approvals", N_("Approvals")), ("/coord/runs", N_("Match runs")),
                       ("/coord/organisations", N_("Organisations")), ("/coord/pairings", N_("Pairings")),
                       ("/reports", N_("Reports")), ("/admin/users", N_("Users"))],
    Role.ADMIN: [("/admin/users", N_("Users")), ("/admin/rules", N_("Rule set")), ("/coord/approvals", N_("Approvals")),
                 ("/coord/runs", N_("Match runs")), ("/coord/organisations", N_("Organisations")),
                 ("/coord/pairings", N_("Pairings")), ("/reports", N_("Reports"))],
}


def nav_links(principal: Principal) -> list[tuple[str, str]]:
    return NAV_LINKS.get(principal.role, [])


def _vocabulary_label(labels: dict[Any, Any], value: str | None) -> str:
    if not value:
        return "—"
    for key, label in labels.items():
        if key == value:
            return i18n.text(label)
    return value


def category_label(value: str | None) -> str:
    return _vocabulary_label(CATEGORY_LABELS, value)


def kind_label(value: str | None) -> str:
    return _vocabulary_label(KIND_LABELS, value)


def unit_label(value: str | None) -> str:
    return _vocabulary_label(UNIT_LABELS, value)


def group_label(value: str | None) -> str:
    return _vocabulary_label(GROUP_LABELS, value)


def _quantity(value: Any, unit: str) -> str:
    return i18n.quantity(value, unit, unit_label)


def _query(**params: Any) -> str:
    return urlencode({name: value for name, value in params.items() if value not in (None, "")})


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.install_gettext_callables(i18n.gettext, i18n.ngettext, newstyle=True)  # type: ignore[attr-defined]
    env.filters.update(
        money=i18n.money, number=i18n.number, date=i18n.format_date, datetime=i18n.format_datetime,
        category=category_label, kind=kind_label, unit=unit_label, group=group_label, quantity=_quantity,
        region=regions.describe, label=labels.label,
    )
    env.globals.update(
        categories=list(Category), kinds=list(Kind), units=list(UNIT_LABELS), query=_query,
        region_path=regions.path_of, nav_links=nav_links,
        vocabularies=labels.VOCABULARIES,
    )
    return env


ENVIRONMENT = _environment()


def render(request: Request, context: PageContext, template: str, *, status_code: int = 200, **values: Any) -> HTMLResponse:
    html = ENVIRONMENT.get_template(template).render(
        page=context, principal=context.principal, request=request, path=request.url.path, **values
    )
    response = HTMLResponse(html, status_code=status_code)
    # Pages show personal data: never cached by a shared proxy, nor kept by the browser after logout.
    response.headers["Cache-Control"] = "no-store"
    remember_browser(request, response)
    return response


def redirect(request: Request, url: str) -> Response:
    """After a form: 303 for a plain POST; HX-Redirect for htmx, which would otherwise swap the page in."""
    if request.headers.get("hx-request"):
        return Response(status_code=204, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)
