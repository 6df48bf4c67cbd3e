"""The report page: totals by category, region and organisation for a period, with SVG charts and CSV downloads.

Coordinators (their own region by default, or a part of it) and admins (everywhere by default). Every figure
comes from `GET /api/reports/summary` and `GET /api/reports/years`; the downloads are the same reports in
CSV or XLSX, fetched with the user's token and handed on with the API's own file name (the browser has a
session cookie, not a bearer token, so it cannot ask the API itself). The charts are drawn from the same
answers (charts.py): nothing is counted here.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from gateway.web import charts, i18n, regions
from gateway.web.api import ApiProblem, PublicApi
from gateway.web.forms import GOVERNORS, require_role, split_problem
from gateway.web.i18n import N_
from gateway.web.pages import public_api
from gateway.web.render import render
from gateway.web.session import PageContext, SignedIn

router = APIRouter(include_in_schema=False)

FORMATS = ("csv", "xlsx")
# The API's refusals of a period or a region are shown next to the form's fields.
PERIOD_FIELDS = frozenset({"region", "from", "to"})
YEARS_FIELDS = frozenset({"region", "from_year", "to_year"})
# A period or region the API refuses (422; 403 for a region outside a coordinator's) is shown above the form again.
REFUSALS_SHOWN = frozenset({403, 422})
PASSED_HEADERS = ("content-type", "content-disposition")

COMMITTED = N_("Value committed")
DELIVERED = N_("Value delivered")


def _governor(page: PageContext) -> None:
    require_role(page, GOVERNORS, N_("Reports are for coordinators and admins."))


def _region(value: str) -> str | None:
    value = value.strip()
    return value if value else None


def _series() -> list[charts.Series]:
    return [charts.Series(i18n.gettext(COMMITTED), "committed"),
            charts.Series(i18n.gettext(DELIVERED), "delivered", pattern="stripes")]


def county_name(code: str) -> str:
    return regions.name_of(code) or code


def value_chart(chart_id: str, title: str, rows: list[dict[str, Any]], label: Any) -> Any:
    """Committed and delivered value, one row per item of a report's table."""
    drawn = [charts.Row(label(row), (Decimal(row["value_committed"]), Decimal(row["value_delivered"]))) for row in rows]
    description = "; ".join(
        i18n.gettext("%(name)s: committed %(committed)s, delivered %(delivered)s") % {
            "name": row.label, "committed": i18n.money(row.values[0]), "delivered": i18n.money(row.values[1])}
        for row in drawn
    ) or i18n.gettext("Nothing committed or delivered in this period.")
    return charts.bar_chart(chart_id, title, description, _series(), drawn, value_text=i18n.money,
                            empty_text=i18n.gettext("Nothing committed or delivered in this period."))


def _organisations(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The organisation table: value by organisation beside its participation score, the best score first."""
    values = {row["key"]: row for row in report["by_organisation"]}
    rows: list[dict[str, Any]] = []
    for entry in report["participation"]:
        value = values.pop(str(entry["organisation_id"]), None)
        rows.append({**entry, "value_committed": value["value_committed"] if value else None})
    rows.extend({"organisation_id": key, "name": row["name"], "value_committed": row["value_committed"],
                 "value_delivered": row["value_delivered"], "score": None} for key, row in values.items())
    return rows


def _query(**params: Any) -> dict[str, Any]:
    return {name: value for name, value in params.items() if value not in (None, "")}


@router.get("/reports", response_class=HTMLResponse)
async def report_page(request: Request, page: SignedIn, region: str = "") -> Response:
    """`?region=&from=&to=` (`from` is a Python keyword: the dates are read from the query string)."""
    _governor(page)
    date_from = request.query_params.get("from", "").strip()
    date_to = request.query_params.get("to", "").strip()
    params = _query(region=_region(region), **{"from": date_from, "to": date_to})
    form = {"region": region.strip(), "from": date_from, "to": date_to}
    try:
        report = await public_api(request).get("/api/reports/summary", token=page.token, params=params)
    except ApiProblem as problem:
        if problem.status not in REFUSALS_SHOWN:
            raise
        errors, others = split_problem(problem, PERIOD_FIELDS)
        return render(request, page, "reports/summary.html", status_code=problem.status, report=None, form=form, errors=errors,
                      other_errors=others, problem=problem, download={})
    form = {"region": report["region"], "from": report["date_from"], "to": report["date_to"]}
    download = _query(region=report["region"], **{"from": report["date_from"], "to": report["date_to"]})
    return render(
        request, page, "reports/summary.html", report=report, form=form, errors={}, other_errors=[], problem=None,
        download=download, organisations=_organisations(report), county_name=county_name,
        category_chart=value_chart("chart-category", i18n.gettext("Value committed and delivered by category"),
                                   report["by_category"], lambda row: row["name"]),
        county_chart=value_chart("chart-county", i18n.gettext("Value committed and delivered by county"),
                                 report["by_county"], lambda row: county_name(row["key"])),
    )


@router.get("/reports/years", response_class=HTMLResponse)
async def years_page(request: Request, page: SignedIn, region: str = "", from_year: str = "", to_year: str = "") -> Response:
    _governor(page)
    params = _query(region=_region(region), from_year=from_year.strip(), to_year=to_year.strip())
    form = {"region": region.strip(), "from_year": from_year, "to_year": to_year}
    try:
        report = await public_api(request).get("/api/reports/years", token=page.token, params=params)
    except ApiProblem as problem:
        if problem.status not in REFUSALS_SHOWN:
            raise
        errors, others = split_problem(problem, YEARS_FIELDS)
        return render(request, page, "reports/years.html", status_code=problem.status, report=None, form=form, errors=errors,
                      other_errors=others, problem=problem, download={})
    form = {"region": report["region"], "from_year": report["from_year"], "to_year": report["to_year"]}
    download = _query(report="years", region=report["region"], from_year=report["from_year"], to_year=report["to_year"])
    chart = value_chart("chart-years", i18n.gettext("Value committed and delivered year by year"), report["years"],
                        lambda row: str(row["year"]))
    return render(request, page, "reports/years.html", report=report, form=form, errors={}, other_errors=[],
                  problem=None, download=download, chart=chart)


async def _fetch_file(api: PublicApi, page: PageContext, path: str, params: dict[str, Any]) -> Response:
    answer = await api.request("GET", path, token=page.token, params=params)
    if answer.status_code >= 400:
        raise ApiProblem.from_response(answer)
    headers = {name: answer.headers[name] for name in PASSED_HEADERS if name in answer.headers}
    headers["Cache-Control"] = "no-store"
    return Response(answer.content, status_code=200, headers=headers)


@router.get("/reports/download")
async def download(
    request: Request, page: SignedIn, format: str = "csv", report: str = "summary", region: str = "",
    from_year: str = "", to_year: str = "",
) -> Response:
    """The summary (`?format=csv|xlsx&region=&from=&to=`) or the years (`&report=years&from_year=&to_year=`) as a file."""
    _governor(page)
    if format not in FORMATS:
        raise ApiProblem(422, title=i18n.gettext("Unknown file format"),
                         detail=i18n.gettext("Choose CSV or XLSX."))
    api = public_api(request)
    if report == "years":
        return await _fetch_file(api, page, "/api/reports/years", _query(
            format=format, region=_region(region), from_year=from_year, to_year=to_year))
    return await _fetch_file(api, page, "/api/reports/summary", _query(
        format=format, region=_region(region), **{"from": request.query_params.get("from", ""),
                                                  "to": request.query_params.get("to", "")}))
