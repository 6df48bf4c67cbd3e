"""The organisation member's pages in a real browser: publish an offer through the form, browse a county's open
needs through the region picker, see the needs an offer fits best with the rules' reasons, pledge one, and record
a delivery once the coordinator has approved it, with the API's refusals shown next to the fields."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import httpx
from playwright.sync_api import Locator, Page, expect

from tests.browser.conftest import PHONE, Login, screenshot, sign_in
from tests.e2e.conftest import Platform

HUICHENG = "441302"
DONGSHENG_VILLAGE = "441302110201"


def _unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:6]}"


def _token(web: Platform, login: Login) -> str:
    response = httpx.post(f"{web.url}/auth/token", data={"username": login.username, "password": login.password})
    response.raise_for_status()
    token: str = response.json()["access_token"]
    return token


def _api(web: Platform, token: str, method: str, path: str, json: Any = None) -> Any:
    response = httpx.request(method, f"{web.url}{path}", json=json, headers={"Authorization": f"Bearer {token}"},
                             timeout=30)
    assert response.status_code < 300, response.text
    return response.json()


def _fund_need(web: Platform, logins: dict[str, Login], title: str) -> dict[str, Any]:
    """A need of 东胜村 that a fund for infrastructure fits: posted by the village's officer, through the API."""
    return _api(web, _token(web, logins["officer"]), "POST", "/api/needs", {
        "title": title, "category": "infrastructure", "kind": "funds", "quantity": "50000", "unit": "CNY",
        "beneficiaries": 300, "urgency": 5, "needed_by": (date.today() + timedelta(days=120)).isoformat(),
        "village_code": DONGSHENG_VILLAGE,
    })


def _fund_offer(web: Platform, logins: dict[str, Login], title: str) -> dict[str, Any]:
    """A fund of the member's organisation for Guangdong and Guangxi, published through the API."""
    token = _token(web, logins["org_member"])
    me = _api(web, token, "GET", "/auth/me")
    return _api(web, token, "POST", "/api/offers", {
        "organisation_id": me["organisation_id"], "title": title, "categories": ["infrastructure", "education"],
        "kind": "funds", "quantity": "300000", "unit": "CNY", "region_codes": ["44", "45"],
        "available_from": date.today().isoformat(), "available_until": (date.today() + timedelta(days=365)).isoformat(),
    })


def _choose_region(picker: Locator, *names: str) -> None:
    """Province → city → county: each choice loads the next level's options (select_option waits for them)."""
    for level, name in zip(("2", "4", "6", "9"), names, strict=False):
        picker.locator(f"select[data-level='{level}']").select_option(label=name)


def _scores(page: Page) -> list[int]:
    return [int(text) for text in page.locator(".best-fits .fit-score").all_inner_texts()]


def test_member_publishes_an_offer_through_the_form(new_page: Callable[..., Page], logins: dict[str, Login]) -> None:
    page = new_page()
    sign_in(page, logins["org_member"])
    expect(page).to_have_url(re.compile("/org/offers$"))
    expect(page.locator(".org-profile")).to_contain_text("52441302MJL7033115")
    expect(page.locator(".org-profile")).to_contain_text("4A")
    expect(page.locator(".org-profile .badge.verified")).to_have_text("已认证")
    expect(page.locator(".org-profile")).to_contain_text("惠城区")

    page.get_by_role("link", name="发布供给").click()
    expect(page).to_have_url(re.compile("/org/offers/new$"))
    form = page.locator("#offer-form")
    title = _unique("乡村小学图书捐赠")
    form.locator("#title").fill("书")  # too short
    form.locator("#description").fill("出版社捐赠少儿读物。")
    form.locator("#kind").select_option("goods")
    # htmx swaps in the units of the kind chosen: books are among the goods' units, yuan are not.
    expect(form.locator("#unit option[value=CNY]")).to_have_count(0)
    form.locator("#unit").select_option("book")
    form.locator("#quantity").fill("500")
    _choose_region(form.locator(".region-picker").first, "广东省", "惠州市", "惠城区")
    form.locator("#available_until").fill((date.today() + timedelta(days=200)).isoformat())
    form.get_by_role("button", name="发布").click()

    # A one-character title and no category: the API's own messages, next to their fields, the form kept as typed.
    form = page.locator("#offer-form")
    expect(form.locator("#title-error")).to_contain_text("2")
    expect(form.locator("#title")).to_have_attribute("aria-invalid", "true")
    expect(form.locator("#categories-error")).to_be_visible()
    expect(form.locator("#quantity")).to_have_value("500")
    expect(form.locator("#unit")).to_have_value("book")
    expect(form.locator(".region-picker").first.locator("input[type=hidden]")).to_have_value(HUICHENG)
    expect(form.locator(".region-picker").first.locator("select[data-level='6']")).to_have_value(HUICHENG)

    form.locator("#title").fill(title)
    form.locator("input[name=categories][value=education]").check()
    form.locator("input[name=categories][value=culture]").check()
    form.get_by_role("button", name="发布").click()

    expect(page).to_have_url(re.compile(r"/org/offers\?published="))
    expect(page.locator(".alert.ok")).to_be_visible()
    row = page.locator("tr[data-offer-id]", has_text=title)
    expect(row.locator(".capacity")).to_have_text("500 册")
    expect(row).to_contain_text("教育")
    expect(row.locator(".badge")).to_have_text("可认捐")
    screenshot(page, "org-offers")


def test_member_browses_a_countys_needs_and_sees_them_ranked_for_an_offer(
    new_page: Callable[..., Page], logins: dict[str, Login], web: Platform,
) -> None:
    need = _fund_need(web, logins, _unique("东胜村临水路段护栏"))
    offer = _fund_offer(web, logins, _unique("乡村道路安全基金"))
    page = new_page()
    sign_in(page, logins["org_member"])
    page.goto("/org/needs")
    filters = page.locator("form.need-filters")
    _choose_region(filters.locator(".region-picker"), "广东省", "惠州市", "惠城区")
    filters.get_by_role("button", name="查看需求").click()

    expect(page).to_have_url(re.compile(f"region={HUICHENG}"))
    cards = page.locator("[data-need-id]")
    expect(cards.first).to_be_visible()
    places = page.locator("[data-need-id] .org-place").all_inner_texts()
    assert places and all(f"({HUICHENG}" in place for place in places), places
    expect(page.locator(f"[data-need-id='{need['id']}']")).to_be_visible()
    # The picker keeps the county chosen.
    expect(filters.locator(".region-picker select[data-level='6']")).to_have_value(HUICHENG)

    # For my offer: the needs it fits best come first, each with its score and the rules' reasons.
    filters.locator("#offer_id").select_option(offer["id"])
    filters.get_by_role("button", name="查看需求").click()
    best = page.locator(".best-fits")
    expect(best.locator("h2")).to_contain_text(offer["title"])
    ranked = best.locator("[data-need-id]")
    expect(ranked.first).to_be_visible()
    assert all(f"({HUICHENG}" in place for place in best.locator(".org-place").all_inner_texts())
    mine = best.locator(f"[data-need-id='{need['id']}']")
    expect(mine.locator(".reasons li[data-rule=urgency]")).to_contain_text("紧急程度 5/5")
    expect(mine.locator(".reasons li[data-rule=coverage]")).to_contain_text("100%")
    # The pledge form offers this offer, with what the pair could cover now.
    expect(mine.locator(".pledge-form select[name=offer_id]")).to_have_value(offer["id"])
    expect(mine.locator(".pledge-form input[name=quantity]")).to_have_value("50000")
    # A need shown among the best is not listed again below.
    expect(page.locator(f"[data-need-id='{need['id']}']")).to_have_count(1)
    scores = _scores(page)
    assert scores == sorted(scores, reverse=True), scores
    screenshot(page, "org-browse-needs")

    # Everywhere the offer serves (Guangdong and Guangxi): several needs, best first.
    page.goto(f"/org/needs?offer_id={offer['id']}")
    scores = _scores(page)
    assert len(scores) >= 2 and scores == sorted(scores, reverse=True), scores
    expect(page.locator(".best-fits .reasons").first.locator("li")).not_to_have_count(0)


def test_member_pledges_a_need_and_records_the_delivery_once_approved(
    new_page: Callable[..., Page], logins: dict[str, Login], web: Platform,
) -> None:
    need = _fund_need(web, logins, _unique("东胜村村道护栏二期"))
    offer = _fund_offer(web, logins, _unique("护栏配套资金"))
    page = new_page()
    sign_in(page, logins["org_member"])
    page.goto(f"/org/needs?offer_id={offer['id']}&region={HUICHENG}")
    card = page.locator(f".best-fits [data-need-id='{need['id']}']")
    pledge = card.locator(".pledge-form")

    # More than the need still needs: the API refuses, and says why, inside the card (htmx).
    pledge.locator("input[name=quantity]").fill("60000")
    pledge.get_by_role("button", name="认捐").click()
    expect(pledge.locator(".alert.error")).to_be_visible()
    expect(pledge.locator("input[name=quantity]")).to_have_value("60000")

    pledge.locator("input[name=quantity]").fill("20000")
    pledge.locator("input[name=note]").fill("首批资金")
    pledge.get_by_role("button", name="认捐").click()
    done = pledge.locator(".alert.ok.pledged")
    expect(done).to_contain_text("2 万元")
    match_id = done.get_attribute("data-match-id")
    assert match_id

    done.get_by_role("link").click()
    expect(page).to_have_url(re.compile("/org/matches"))
    row = page.locator(f"[data-match-id='{match_id}']")
    expect(row.locator(".badge")).to_have_text("待审核")
    expect(row).to_contain_text(need["title"])
    expect(row).to_contain_text(offer["title"])
    expect(row.locator(".match-quantity")).to_have_text("2 万元")
    expect(row.locator(".delivery-form")).to_have_count(0)  # nothing to deliver before approval
    expect(row.locator(".cancel-pledge")).to_have_count(1)  # the pledge can still be withdrawn

    # The coordinator approves it (their own pages are another colleague's): now it can be delivered.
    _api(web, _token(web, logins["coordinator"]), "POST", f"/api/matches/{match_id}/approve")
    page.reload()
    row = page.locator(f"[data-match-id='{match_id}']")
    expect(row.locator(".badge")).to_have_text("已批准")
    delivery = row.locator(".delivery-form")
    expect(delivery.locator("input[name=quantity]")).to_have_value("20000")

    delivery.locator("input[name=quantity]").fill("25000")
    delivery.get_by_role("button", name="登记这次交付").click()
    expect(delivery.locator(".alert.error")).to_be_visible()  # beyond what was approved: the API's 409
    expect(delivery.locator("input[name=quantity]")).to_have_value("25000")

    delivery.locator("input[name=quantity]").fill("5000")
    delivery.locator("input[name=note]").fill("第一笔已拨付")
    delivery.get_by_role("button", name="登记这次交付").click()
    expect(page).to_have_url(re.compile(f"delivered={match_id}"))
    row = page.locator(f"[data-match-id='{match_id}']")
    expect(row.locator(".match-delivered")).to_contain_text("5,000.00 元")
    expect(row.locator(".badge")).to_have_text("已批准")  # partly delivered: still approved
    expect(row.locator(".delivery-form input[name=quantity]")).to_have_value("15000")
    screenshot(page, "org-matches")

    phone = new_page(viewport=PHONE)
    sign_in(phone, logins["org_member"])
    phone.goto(f"/org/needs?offer_id={offer['id']}&region={HUICHENG}")
    expect(phone.locator(".best-fits [data-need-id]").first).to_be_visible()
    assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    screenshot(phone, "org-browse-needs-phone")
