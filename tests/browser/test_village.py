"""The village officer's pages in a real browser: post a need, see the API's messages next to the fields,
read it all in English, and confirm the receipt of a delivery with a rating."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import httpx
from playwright.sync_api import Page, expect

from tests.browser.conftest import PHONE, Login, screenshot, sign_in
from tests.e2e.conftest import Platform

NEED_URL = re.compile(r"/village/needs/[0-9a-f-]{36}$")


def _unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:6]}"


def _fill_need(page: Page, *, title: str, quantity: str, needed_by: str) -> None:
    form = page.locator("#need-form")
    form.locator("#title").fill(title)
    form.locator("#description").fill("村小学图书室缺少课外读物。")
    form.locator("#category").select_option("education")
    form.locator("#kind").select_option("goods")
    # htmx swaps in the units of the kind chosen: books are among the goods' units, person-days are not.
    expect(form.locator("#unit option[value=person_day]")).to_have_count(0)
    form.locator("#unit").select_option("book")
    form.locator("#quantity").fill(quantity)
    form.locator("#beneficiaries").fill("120")
    form.locator("input[name=beneficiary_groups][value=students]").check()
    form.locator("#urgency").select_option("4")
    form.locator("#needed_by").fill(needed_by)


def test_officer_posts_a_need_and_finds_it_in_the_list(new_page: Callable[..., Page], logins: dict[str, Login]) -> None:
    page = new_page()
    sign_in(page, logins["officer"])
    page.goto("/village/needs")
    expect(page.locator("h1")).to_have_text("本村需求")
    page.get_by_role("link", name="发布需求").first.click()
    expect(page).to_have_url(re.compile("/village/needs/new$"))
    expect(page.locator("#village-name")).to_contain_text(logins["officer"].scope)

    title = _unique("东胜村小学课外读物")
    _fill_need(page, title=title, quantity="500", needed_by=(date.today() + timedelta(days=200)).isoformat())
    page.locator("#need-form button[value=open]").click()

    expect(page).to_have_url(NEED_URL)
    expect(page.locator("h1")).to_contain_text(title)
    expect(page.locator("h1 .badge")).to_have_text("征集中")
    expect(page.locator(".kpis")).to_contain_text("500 册")
    expect(page.locator("ol.history li")).to_have_count(1)

    page.goto("/village/needs")
    row = page.locator("tr", has_text=title)
    expect(row).to_have_count(1)
    expect(row.locator("td[data-label=数量]")).to_have_text("500 册")
    expect(row.locator(".badge")).to_have_text("征集中")
    screenshot(page, "village-needs")

    # The officer edits it (PATCH with If-Match behind the form); the history keeps the change.
    row.get_by_role("link", name=title).click()
    page.locator("#edit-title").click()
    page.locator("#need-form #quantity").fill("600")
    page.locator("#need-form button.primary").click()
    expect(page.locator(".alert.ok")).to_have_text("修改已保存。")
    expect(page.locator(".kpis")).to_contain_text("600 册")
    expect(page.locator("ol.history .changes").first).to_contain_text("500 册 → 600 册")
    screenshot(page, "village-need")


def test_a_bad_value_comes_back_next_to_its_field(new_page: Callable[..., Page], logins: dict[str, Login]) -> None:
    page = new_page()
    sign_in(page, logins["officer"])
    page.goto("/village/needs/new")
    title = _unique("数量为零的需求")
    _fill_need(page, title=title, quantity="0", needed_by=(date.today() + timedelta(days=30)).isoformat())
    page.locator("#need-form button[value=open]").click()

    quantity = page.locator("#quantity")
    expect(quantity).to_have_attribute("aria-invalid", "true")
    expect(quantity).to_have_attribute("aria-describedby", "quantity-error")
    expect(page.locator("#quantity-error")).to_have_text("必须大于 0")
    expect(page).to_have_url(re.compile("/village/needs/new$"))  # swapped in place by htmx
    # What was typed is kept, and the other fields are not marked.
    expect(page.locator("#title")).to_have_value(title)
    expect(page.locator("#unit")).to_have_value("book")
    expect(page.locator("input[name=beneficiary_groups][value=students]")).to_be_checked()
    expect(page.locator("[aria-invalid=true]")).to_have_count(1)
    screenshot(page, "village-need-form")

    # Corrected, it goes through; nothing was posted by the refused attempt.
    quantity.fill("20")
    page.locator("#need-form button[value=open]").click()
    expect(page).to_have_url(NEED_URL)
    page.goto("/village/needs")
    expect(page.locator("tr", has_text=title)).to_have_count(1)


def test_the_form_speaks_english(new_page: Callable[..., Page], logins: dict[str, Login], web: Platform) -> None:
    page = new_page(locale="en")
    sign_in(page, logins["officer"])
    # The officer's own setting is Chinese: choose English for this browser only (the language switch would
    # change the shared demo user's setting for every other test).
    page.context.add_cookies([{"name": "duijie_lang", "value": "en", "url": web.url}])
    page.goto("/village/needs/new")
    expect(page.locator("h1")).to_have_text("Post a need")
    expect(page.locator("label[for=quantity]")).to_contain_text("Quantity")
    expect(page.locator("label[for=needed_by]")).to_contain_text("Needed by")
    _fill_need(page, title=_unique("Books "), quantity="0", needed_by=(date.today() + timedelta(days=30)).isoformat())
    page.locator("#need-form button[value=open]").click()
    expect(page.locator("#quantity-error")).to_have_text("Must be greater than 0")
    expect(page.locator("#quantity")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#need-form .alert.error")).to_contain_text("Invalid input")


def test_needs_read_on_a_phone(new_page: Callable[..., Page], logins: dict[str, Login]) -> None:
    page = new_page(viewport=PHONE)
    sign_in(page, logins["officer"])
    page.goto("/village/needs")
    expect(page.locator("table.needs tbody tr").first).to_be_visible()
    # Each cell says what it is (the table turns into cards), and nothing runs off the screen.
    expect(page.locator("table.needs tbody tr").first.locator("td[data-label=状态]")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    screenshot(page, "village-needs-phone")


# --- a delivered match, confirmed and rated --------------------------------------------------------

def _token(client: httpx.Client, login: Login) -> dict[str, str]:
    answer = client.post("/auth/token", data={"username": login.username, "password": login.password})
    answer.raise_for_status()
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def _delivered_match(web: Platform, logins: dict[str, Login]) -> dict[str, Any]:
    """Through the API, as the others would do it: the officer's need, a coordinator's proposal of the member's
    offer, its approval, and the organisation's delivery of all of it."""
    with httpx.Client(base_url=web.url, timeout=30) as client:
        officer, coordinator, member = (_token(client, logins[role]) for role in ("officer", "coordinator", "org_member"))
        organisation = client.get("/auth/me", headers=member).json()["organisation_id"]
        offers = client.get("/api/offers", headers=member, params={"organisation_id": organisation, "limit": 200}).json()
        offer = next(item for item in offers["items"] if item["kind"] == "training" and float(item["available"]) >= 2)
        need = client.post("/api/needs", headers=officer, json={
            "title": _unique("东胜村残疾人养殖技能培训"), "category": offer["categories"][0], "kind": "training",
            "quantity": 2, "unit": "trainee", "needed_by": (date.today() + timedelta(days=120)).isoformat(),
            "village_code": logins["officer"].scope, "beneficiary_groups": offer["beneficiary_groups"],
            "skills": offer["skills"][:1],
        })
        assert need.status_code == 201, need.text
        deadline = time.monotonic() + 20
        while True:  # matching learns of the new need from the needs service's change feed
            proposal = client.post("/api/matches", headers=coordinator,
                                   json={"need_id": need.json()["id"], "offer_id": offer["id"], "quantity": 2})
            if proposal.status_code == 201 or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert proposal.status_code == 201, proposal.text
        match = proposal.json()
        approved = client.post(f"/api/matches/{match['id']}/approve", headers=coordinator)
        assert approved.status_code == 200, approved.text
        for quantity, note in ((1, "第一期"), (1, "第二期")):
            delivery = client.post(f"/api/matches/{match['id']}/deliveries", headers=member,
                                   json={"quantity": quantity, "delivered_on": date.today().isoformat(), "note": note})
            assert delivery.status_code == 201, delivery.text
        assert delivery.json()["status"] == "delivered"
        return {"match": match, "need": need.json(), "offer": offer}


def test_officer_confirms_receipt_and_rates_it(
    new_page: Callable[..., Page], logins: dict[str, Login], web: Platform
) -> None:
    setup = _delivered_match(web, logins)
    match_id = setup["match"]["id"]
    page = new_page()
    sign_in(page, logins["officer"])
    page.goto("/village/matches?status=delivered")
    card = page.locator(f"[data-match-id='{match_id}']")
    expect(card.locator("h2")).to_have_text(setup["need"]["title"])
    expect(card).to_contain_text(setup["offer"]["title"])
    expect(card.locator("table.deliveries tbody tr")).to_have_count(2)
    expect(card.locator("table.deliveries")).to_contain_text("第二期")
    screenshot(page, "village-matches")

    form = page.locator(f"#receipt-{match_id}")
    expect(form.locator("[name=quantity]")).to_have_value("2")
    form.locator("[name=rating]").fill("9")
    form.get_by_role("button").click()
    rating = page.locator(f"#receipt-{match_id} [name=rating]")
    expect(rating).to_have_attribute("aria-invalid", "true")
    expect(page.locator(f"#receipt-{match_id}-rating-error")).to_have_text("必须小于或等于 5")

    rating.fill("5")
    page.locator(f"#receipt-{match_id} [name=comment]").fill("培训很实用。")
    page.locator(f"#receipt-{match_id}").get_by_role("button").click()
    expect(page.locator(".alert.ok")).to_be_visible()
    card = page.locator(f"[data-match-id='{match_id}']")
    expect(card.locator(".badge")).to_have_text("已收货")
    expect(card.locator(".receipt-done")).to_contain_text("5 / 5")
    expect(page.locator(f"#receipt-{match_id}")).to_have_count(0)
