"""The platform's main task end to end, each role in its own browser, only through the pages:
an officer posts a need → an organisation member finds it and pledges an offer → the coordinator approves
→ the member records the delivery → the officer confirms receipt and rates it."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import date, timedelta

from playwright.sync_api import Page, expect

from tests.browser.conftest import Login, screenshot, sign_in

TRAINING_OFFER = "残疾人种养技能培训"  # the demo's offer of 惠州市公民伙伴社工服务中心 (gongmin), 60 trainees in 441302


def post_a_training_need(officer: Page, title: str) -> str:
    officer.goto("/village/needs/new")
    form = officer.locator("#need-form")
    form.locator("#title").fill(title)
    form.locator("#description").fill("村里12名残疾村民希望学习种植、养殖实用技术。")
    form.locator("#category").select_option("talent")
    form.locator("#kind").select_option("training")
    expect(form.locator("#unit option[value=trainee]")).to_have_count(1)  # the units of the kind chosen
    form.locator("#unit").select_option("trainee")
    form.locator("#quantity").fill("12")
    form.locator("#beneficiaries").fill("12")
    form.locator("input[name=beneficiary_groups][value=disabled]").check()
    form.locator("#needed_by").fill((date.today() + timedelta(days=90)).isoformat())
    form.locator("button[value=open]").click()
    expect(officer).to_have_url(re.compile(r"/village/needs/[0-9a-f-]{36}$"))
    return officer.url.rsplit("/", 1)[1]


def pledge_the_need(member: Page, need_id: str, village_code: str) -> str:
    member.goto(f"/org/needs?region={village_code}&kind=training")
    card = member.locator(f"[data-need-id='{need_id}']").first
    expect(card).to_be_visible()
    pledge = card.locator(".pledge-form")
    offer_id = pledge.locator("select[name=offer_id] option", has_text=TRAINING_OFFER).first.get_attribute("value")
    assert offer_id
    pledge.locator("select[name=offer_id]").select_option(offer_id)
    pledge.locator("input[name=quantity]").fill("12")
    pledge.locator("button[type=submit]").click()
    pledged = pledge.locator(".alert.ok.pledged")
    expect(pledged).to_be_visible()
    match_id = pledged.get_attribute("data-match-id")
    assert match_id
    return match_id


def test_need_to_receipt_through_the_pages(new_page: Callable[..., Page], logins: dict[str, Login]) -> None:
    officer, member, coordinator = new_page(), new_page(), new_page()
    sign_in(officer, logins["officer"])
    sign_in(member, logins["org_member"])
    sign_in(coordinator, logins["coordinator"])
    title = f"残疾村民种养技能培训{uuid.uuid4().hex[:4]}"

    need_id = post_a_training_need(officer, title)
    expect(officer.locator("h1")).to_contain_text(title)

    match_id = pledge_the_need(member, need_id, logins["officer"].scope)

    coordinator.goto("/coord/approvals")
    proposal = coordinator.locator(f"[data-match-id='{match_id}']")
    expect(proposal).to_contain_text(title)
    expect(proposal).to_contain_text(TRAINING_OFFER)
    screenshot(coordinator, "walkthrough-approval")
    proposal.locator("button.approve").click()
    expect(coordinator.locator(f"[data-match-id='{match_id}']")).to_have_attribute("data-status", "approved")

    member.goto("/org/matches")
    row = member.locator(f"[data-match-id='{match_id}']")
    expect(row).to_have_attribute("data-status", "approved")
    delivery = row.locator(".delivery-form")
    delivery.locator("input[name=quantity]").fill("12")
    delivery.locator("button[type=submit]").click()
    expect(member).to_have_url(re.compile(f"delivered={match_id}"))
    expect(member.locator(f"[data-match-id='{match_id}']")).to_have_attribute("data-status", "delivered")

    officer.goto("/village/matches")
    receipt = officer.locator(f"#receipt-{match_id}")
    receipt.locator("input[name=rating]").fill("5")
    receipt.locator("textarea[name=comment]").fill("培训很实用，学员都学会了。")
    receipt.locator("button[type=submit]").click()
    expect(officer).to_have_url(re.compile(f"received={match_id}"))
    card = officer.locator(f"[data-match-id='{match_id}']")
    expect(card).to_have_attribute("data-status", "received")
    expect(card).to_contain_text("5")

    officer.goto(f"/village/needs/{need_id}")
    expect(officer.locator("h1 .badge")).to_have_text("已完成")
