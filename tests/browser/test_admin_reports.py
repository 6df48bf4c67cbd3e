"""The admin's and the report pages in a real browser: an admin creates a village officer through the form (a bad
village code refused next to its field, then accepted, and the officer in the list); the rule set's weights with a
preview that reorders a sample need's offers when a weight changes, a refused weight shown inline, and a publish;
the coordinator's report with tiles, tables and SVG charts, whose CSV download has the same totals as the page."""

from __future__ import annotations

import csv
import io
import re
import time
import uuid
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import httpx
from playwright.sync_api import Page, expect

from tests.browser.conftest import PHONE, Login, screenshot, sign_in
from tests.e2e.conftest import Platform

HUICHENG = "441302"
DONGSHENG_VILLAGE = "441302110201"
BEIJING = timezone(timedelta(hours=8))


def _unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:6]}"


class Api:
    """The public API as one of the demo's people, for setting the scene (what the pages show is tested in the browser)."""

    def __init__(self, web: Platform, login: Login) -> None:
        answer = httpx.post(f"{web.url}/auth/token", data={"username": login.username, "password": login.password})
        answer.raise_for_status()
        self.client = httpx.Client(base_url=web.url, timeout=30,
                                   headers={"Authorization": f"Bearer {answer.json()['access_token']}"})

    def call(self, method: str, path: str, json: Any = None, *, settle: bool = False) -> Any:
        """`settle`: a 404 may only mean that matching has not yet read the new need or offer from its feed."""
        deadline = time.monotonic() + 15
        while True:
            answer = self.client.request(method, path, json=json)
            if not (settle and answer.status_code == 404 and time.monotonic() < deadline):
                break
            time.sleep(0.2)
        assert answer.status_code < 300, answer.text
        return answer.json()


def _need(officer: Api, title: str, quantity: str) -> dict[str, Any]:
    return officer.call("POST", "/api/needs", {
        "title": title, "category": "infrastructure", "kind": "funds", "quantity": quantity, "unit": "CNY",
        "beneficiaries": 260, "urgency": 4, "needed_by": (date.today() + timedelta(days=120)).isoformat(),
        "village_code": DONGSHENG_VILLAGE,
    })


def _offer(member: Api, title: str, quantity: str, regions: list[str]) -> dict[str, Any]:
    me = member.call("GET", "/auth/me")
    return member.call("POST", "/api/offers", {
        "organisation_id": me["organisation_id"], "title": title, "categories": ["infrastructure"], "kind": "funds",
        "quantity": quantity, "unit": "CNY", "region_codes": regions, "available_from": date.today().isoformat(),
        "available_until": (date.today() + timedelta(days=365)).isoformat(),
    })


def _offer_order(page: Page, table: str) -> list[str]:
    return [str(row.get_attribute("data-offer-id")) for row in page.locator(f"table.{table} tbody tr").all()]


def test_admin_creates_an_officer_through_the_form(new_page: Callable[..., Page], logins: dict[str, Login]) -> None:
    page = new_page()
    sign_in(page, logins["admin"])
    expect(page).to_have_url(re.compile("/admin/users$"))
    expect(page.locator("table.users tr[data-username='admin']")).to_have_count(1)

    username = _unique("lizhuang-officer-")
    form = page.locator("#user-form")
    form.locator("#username").fill(username)
    form.locator("#password").fill("Lizhuang-2026-pass")
    form.locator("#role").select_option("officer")
    # The role needs a village: only its field is left (htmx swapped the scope field).
    expect(form.locator("#village_code")).to_be_visible()
    expect(form.locator("#organisation_id")).to_have_count(0)
    form.locator("#village_code").fill("4413021102")  # ten digits: not a village code

    form.get_by_role("button", name="创建用户").click()
    error = page.locator("#village_code-error")
    expect(error).to_be_visible()
    expect(page.locator("#village_code")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#username")).to_have_value(username)  # what was typed is kept; the password is not
    expect(page.locator("#password")).to_have_value("")

    page.locator("#village_code").fill(DONGSHENG_VILLAGE)
    page.locator("#password").fill("Lizhuang-2026-pass")
    page.locator("#user-form").get_by_role("button", name="创建用户").click()
    expect(page).to_have_url(re.compile(f"created={username}"))
    expect(page.locator(".alert.ok.created")).to_contain_text(username)
    row = page.locator(f"table.users tr[data-username='{username}']")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("横沥镇")
    expect(row).to_contain_text(DONGSHENG_VILLAGE)
    screenshot(page, "admin-users")


def test_rule_set_preview_reorders_a_sample_when_a_weight_changes(
    new_page: Callable[..., Page], logins: dict[str, Login], web: Platform,
) -> None:
    officer, member = Api(web, logins["officer"]), Api(web, logins["org_member"])
    need = _need(officer, _unique("东胜村排水沟改造"), "50000")
    # Near but small (the county; a fifth of the need) against far but large (the province; all of it).
    near = _offer(member, _unique("惠城区排水专项"), "10000", [HUICHENG])
    far = _offer(member, _unique("广东省基础设施基金"), "300000", ["44"])

    admin = Api(web, logins["admin"])
    deadline = time.monotonic() + 15  # matching reads new needs and offers from the feeds: wait until it has both
    while not {near["id"], far["id"]} <= {item["offer_id"] for item in admin.call(
            "GET", f"/api/candidates?need_id={need['id']}&limit=50")["items"]} and time.monotonic() < deadline:
        time.sleep(0.2)

    page = new_page(locale="en")
    sign_in(page, logins["admin"])
    page.context.add_cookies([{"name": "duijie_lang", "value": "en", "url": web.url}])
    page.goto(f"/admin/rules?sample={need['id']}")
    expect(page.locator("#coverage")).to_have_value("0.15")
    expect(page.locator("#proximity")).to_have_value("0.2")
    expect(page.locator("#sample")).to_have_value(need["id"])

    current = _offer_order(page, "preview-current")
    assert current.index(far["id"]) < current.index(near["id"])  # coverage outweighs nearness today
    # Nearness alone: the county's offer comes first in the edited ranking, the province's falls behind it.
    page.locator("#coverage").fill("0")
    page.locator("#proximity").fill("1")
    page.locator("#proximity").blur()
    edited = page.locator("table.preview-edited")
    expect(edited.locator(f"tr[data-offer-id='{near['id']}']")).to_have_attribute("data-change", re.compile(r"^[1-9]"))
    order = _offer_order(page, "preview-edited")
    assert order.index(near["id"]) < order.index(far["id"])
    expect(edited.locator(f"tr[data-offer-id='{near['id']}'] .rank-change")).to_contain_text("up")
    expect(page.locator("table.preview-current tbody tr").first).to_have_attribute("data-offer-id", current[0])
    screenshot(page, "admin-rules")

    # A weight the API refuses: its message next to the field, the other edits kept.
    page.locator("#urgency").fill("-1")
    page.get_by_role("button", name="Publish as a new version").click()
    expect(page.locator("#urgency-error")).to_be_visible()
    expect(page.locator("#urgency")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#coverage")).to_have_value("0")

    # Publishing the weights in force again makes a new version with the same rules (other tests share them).
    page.goto(f"/admin/rules?sample={need['id']}")
    version = int(re.findall(r"\d+", page.locator(".ruleset-version").inner_text())[0])
    page.get_by_role("button", name="Publish as a new version").click()
    expect(page.locator(".alert.ok.published")).to_contain_text(f"Version {version + 1}")
    expect(page.locator("#coverage")).to_have_value("0.15")


def _csv_totals(body: bytes) -> dict[tuple[str, str], str]:
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    return {(row[0], row[4]): row[6] for row in rows[1:] if row[0] in ("needs", "totals")}


def test_coordinator_report_shows_tiles_tables_charts_and_its_csv_has_the_same_totals(
    new_page: Callable[..., Page], logins: dict[str, Login], web: Platform,
) -> None:
    officer, member, coordinator = (Api(web, logins[role]) for role in ("officer", "org_member", "coordinator"))
    need = _need(officer, _unique("东胜村文化广场照明"), "20000")
    offer = _offer(member, _unique("照明工程资金"), "60000", [HUICHENG])
    match = member.call("POST", "/api/matches", {"need_id": need["id"], "offer_id": offer["id"], "quantity": "8000"},
                        settle=True)
    coordinator.call("POST", f"/api/matches/{match['id']}/approve")
    today = datetime.now(BEIJING).date().isoformat()
    member.call("POST", f"/api/matches/{match['id']}/deliveries", {"quantity": "3000", "delivered_on": today})

    page = new_page()
    sign_in(page, logins["coordinator"])
    page.goto("/reports")
    expect(page.locator(".report-scope")).to_contain_text("惠城区")
    committed = page.locator(".kpi[data-kpi='value_committed']")
    delivered = page.locator(".kpi[data-kpi='value_delivered']")
    assert Decimal(str(committed.get_attribute("data-value"))) >= Decimal("8000")
    assert Decimal(str(delivered.get_attribute("data-value"))) >= Decimal("3000")
    expect(page.locator("table.by-category tr[data-key='infrastructure']")).to_contain_text("基础设施")
    expect(page.locator(f"table.by-county tr[data-key='{HUICHENG}']")).to_contain_text("惠城区")
    organisation = page.locator(f"table.by-organisation tr[data-organisation-id='{match['organisation_id']}']")
    expect(organisation.locator(".score")).to_have_text(re.compile(r"^\d+(\.\d)?$"))
    expect(page.locator(".formula-text")).to_contain_text("0.5 × D")

    chart = page.locator("svg#chart-category")
    expect(chart).to_have_attribute("role", "img")
    expect(chart.locator("title").first).to_have_text("按类别的承诺与交付价值")
    bars = chart.locator("rect.value-bar")
    expect(bars).to_have_count(2 * page.locator("table.by-category tbody tr").count())
    expect(chart.locator("text.value").first).to_contain_text("元")
    expect(page.locator("svg#chart-county rect.value-bar")).to_have_count(2)

    # The CSV of the same report: the same totals as the tiles.
    href = str(page.locator("a.download-csv").get_attribute("href"))
    answer = page.request.get(href)
    assert answer.ok, answer.text()
    assert answer.headers["content-type"].startswith("text/csv")
    assert re.search(r'attachment;.*filename.*\.csv', answer.headers["content-disposition"])
    totals = _csv_totals(answer.body())
    for kpi, key in (("value_committed", ("totals", "value_committed")), ("value_delivered", ("totals", "value_delivered")),
                     ("needs_posted", ("needs", "posted")), ("beneficiaries_reached", ("totals", "beneficiaries_reached"))):
        shown = page.locator(f".kpi[data-kpi='{kpi}']").get_attribute("data-value")
        assert Decimal(totals[key]) == Decimal(str(shown)), (kpi, totals[key], shown)
    xlsx = page.request.get(str(page.locator("a.download-xlsx").get_attribute("href")))
    assert xlsx.ok and xlsx.body()[:2] == b"PK"  # a zip: the workbook
    screenshot(page, "report")

    # A period the API refuses: its message next to the date.
    page.goto("/reports?from=2026-12-31&to=2026-01-01")
    expect(page.locator("#from-error")).to_be_visible()

    # Year by year: the table and its chart.
    page.goto("/reports/years")
    year = str(datetime.now(BEIJING).year)
    expect(page.locator(f"table.years tr[data-year='{year}']")).to_be_visible()
    expect(page.locator("svg#chart-years rect.value-bar")).to_have_count(2 * page.locator("table.years tbody tr").count())

    phone = new_page(viewport=PHONE)
    sign_in(phone, logins["coordinator"])
    phone.goto("/reports")
    expect(phone.locator("svg#chart-category")).to_be_visible()
    assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    screenshot(phone, "report-phone")
