"""A coordinator's pages in a browser: a match run and its unmatched needs, the approval queue (score explained,
reject with a reason, approve, an approval refused inline), verifying an organisation, recording a pairing
after a validation error, and noting a follow-up visit.

The demo platform is shared by the whole browser suite: every need, offer and organisation used here is made
through the API with a unique title, and rows are found by those titles, never by counts.
"""

from __future__ import annotations

import re
import time
import uuid
from datetime import date, timedelta
from typing import Any

import httpx
from playwright.sync_api import Page, expect

from services.offers.schemas import credit_code_check_character
from tests.browser.conftest import PHONE, Login, screenshot, sign_in
from tests.e2e.conftest import Platform

VILLAGE = "441302110201"  # the demo officer's village, inside the demo coordinator's region 441302
REGION = "441302"


class Api:
    """The public API as curl would use it, signed in as one demo user."""

    def __init__(self, web: Platform, login: Login) -> None:
        self.client = httpx.Client(base_url=web.url, timeout=30, headers={"accept-language": "zh-CN"})
        answer = self.client.post("/auth/token", data={"username": login.username, "password": login.password})
        answer.raise_for_status()
        self.client.headers["authorization"] = f"Bearer {answer.json()['access_token']}"

    def get(self, path: str, **params: Any) -> Any:
        answer = self.client.get(path, params=params)
        assert answer.status_code == 200, answer.text
        return answer.json()

    def post(self, path: str, body: Any = None, *, expect_status: tuple[int, ...] = (200, 201)) -> Any:
        answer = self.client.post(path, json=body)
        assert answer.status_code in expect_status, answer.text
        return answer.json()

    def me(self) -> dict[str, Any]:
        result: dict[str, Any] = self.get("/auth/me")
        return result


def unique(prefix: str) -> str:
    return f"{prefix} {uuid.uuid4().hex[:6]}"


def post_need(officer: Api, title: str, *, category: str, kind: str, unit: str, quantity: int) -> dict[str, Any]:
    result: dict[str, Any] = officer.post("/api/needs", {
        "title": title, "description": "browser test", "category": category, "kind": kind, "unit": unit,
        "quantity": quantity, "beneficiaries": 120, "urgency": 4, "village_code": VILLAGE,
        "needed_by": (date.today() + timedelta(days=60)).isoformat(),
    })
    return result


def post_offer(member: Api, title: str, *, quantity: int) -> dict[str, Any]:
    organisation_id = member.me()["organisation_id"]
    result: dict[str, Any] = member.post("/api/offers", {
        "organisation_id": organisation_id, "title": title, "description": "browser test", "categories": ["health"],
        "kind": "service", "quantity": quantity, "unit": "session", "region_codes": [REGION],
        "available_from": date.today().isoformat(), "available_until": (date.today() + timedelta(days=200)).isoformat(),
    })
    return result


def propose_when_synced(coordinator: Api, body: dict[str, Any]) -> dict[str, Any]:
    """Matching learns of new needs and offers from the services' change feeds: a moment after they are posted."""
    deadline = time.monotonic() + 30
    while True:
        answer = coordinator.client.post("/api/matches", json=body)
        if answer.status_code != 404 or time.monotonic() > deadline:
            assert answer.status_code == 201, answer.text
            result: dict[str, Any] = answer.json()
            return result
        time.sleep(0.3)


def proposal(page: Page, title: str) -> Any:
    return page.locator("[data-match-id]", has_text=title)


def test_match_run_then_approval_queue(new_page: Any, web: Platform, logins: dict[str, Login]) -> None:
    officer, member = Api(web, logins["officer"]), Api(web, logins["org_member"])
    offer = post_offer(member, unique("巡回义诊"), quantity=4)
    approve_title, reject_title, fail_title = unique("村卫生室义诊"), unique("老人体检"), unique("妇幼健康讲座")
    for title in (approve_title, reject_title, fail_title):
        post_need(officer, title, category="health", kind="service", unit="session", quantity=1)
    lonely_title = unique("防汛沙袋")
    post_need(officer, lonely_title, category="disaster", kind="goods", unit="box", quantity=300)

    page = new_page()
    sign_in(page, logins["coordinator"])

    # Start a run for the region and watch it finish: the progress bar, then the needs it left unmatched and why.
    page.goto("/coord/runs")
    expect(page.locator(".region-picker input[type=hidden][name=region_code]")).to_have_value(REGION)
    page.get_by_role("button", name="开始运行").click()
    page.wait_for_url(re.compile(r"/coord/runs/[0-9a-f-]{36}$"))
    status = page.locator("#run-status")
    expect(status).to_have_attribute("data-run-status", "finished", timeout=30_000)
    expect(status.locator("[role=progressbar]")).to_have_attribute("aria-valuenow", "100")
    lonely = status.locator("table.unmatched tr", has_text=lonely_title)
    expect(lonely).to_be_visible()
    expect(lonely.locator(".unmatched-reason")).not_to_be_empty()
    screenshot(page, "coord-run")

    # The run's proposals: each with its score and the rule-by-rule explanation, in Chinese.
    page.get_by_role("link", name=re.compile("查看")).click()
    page.wait_for_url(re.compile(r"/coord/approvals\?"))
    to_approve = proposal(page, approve_title)
    expect(to_approve).to_have_count(1)
    expect(to_approve.locator(".score b")).to_have_text(re.compile(r"^\d+(\.\d)?$"))
    explanation = to_approve.locator("table.explanation tbody tr")
    expect(explanation).to_have_count(8)
    expect(to_approve.locator("table.explanation")).to_contain_text("紧急程度 4/5")
    expect(to_approve.locator("table.explanation")).to_contain_text("距离")
    expect(to_approve).to_contain_text(offer["title"])
    screenshot(page, "coord-approvals")

    # Reject one with a reason: the row says so, with the reason.
    to_reject = proposal(page, reject_title)
    to_reject.locator(".reject-form textarea[name=reason]").fill("该村卫生院已安排体检")
    to_reject.locator(".reject-form button").click()
    expect(to_reject).to_have_attribute("data-status", "rejected")
    expect(to_reject).to_contain_text("该村卫生院已安排体检")

    # Approve one: it becomes approved in place, and after a reload it has left the queue for the decided list.
    approved_id = to_approve.get_attribute("data-match-id")
    to_approve.locator("button.approve").click()
    expect(page.locator(f'[data-match-id="{approved_id}"]')).to_have_attribute("data-status", "approved")
    page.reload()
    expect(page.locator(f'[data-match-id="{approved_id}"]')).to_have_count(0)
    expect(page.locator(f'tr[data-recent-id="{approved_id}"] .badge')).to_have_text("已批准")

    # The offer is withdrawn meanwhile: approving the last proposal fails, and the reason shows beside it.
    member.post(f"/api/offers/{offer['id']}/withdraw", {"reason": "医疗队临时调往外地"})
    to_fail = proposal(page, fail_title)
    to_fail.locator("button.approve").click()
    expect(to_fail).to_have_attribute("data-status", "failed")
    expect(to_fail.locator("[role=alert]")).to_be_visible()
    expect(to_fail.locator("button.approve")).to_have_count(0)

    phone = new_page(viewport=PHONE)
    sign_in(phone, logins["coordinator"])
    phone.goto("/coord/runs")
    expect(phone.locator("table.runs")).to_be_visible()
    screenshot(phone, "coord-runs-phone")


def valid_credit_code() -> str:
    body = "51" + REGION + uuid.uuid4().hex[:9].upper().translate(str.maketrans("IOSVZ", "12345"))
    return body + credit_code_check_character(body)


def test_verify_an_organisation(new_page: Any, web: Platform, logins: dict[str, Login]) -> None:
    coordinator = Api(web, logins["coordinator"])
    waiting = coordinator.get("/api/organisations", region=REGION, verified="false", limit=200)["items"]
    governed = [item for item in waiting if all(code.startswith(REGION) for code in item["region_codes"])]
    if governed:
        organisation = governed[0]
    else:
        admin = Api(web, logins["admin"])
        organisation = admin.post("/api/organisations", {
            "name": unique("惠城区乡村振兴志愿者协会"), "org_type": "volunteer_team", "credit_code": valid_credit_code(),
            "region_codes": [REGION], "contact": {"name": "陈先生", "phone": "13800138000"},
        })

    page = new_page()
    sign_in(page, logins["coordinator"])
    page.goto("/coord/organisations")
    row = page.locator(f'tr[data-organisation-id="{organisation["id"]}"]')
    expect(row).to_have_attribute("data-verified", "false")
    expect(row).to_contain_text(organisation["credit_code"])
    screenshot(page, "coord-organisations")
    row.get_by_role("button", name="认证").click()
    expect(row).to_have_attribute("data-verified", "true")
    expect(row.locator(".badge.verified")).to_be_visible()
    assert coordinator.get(f"/api/organisations/{organisation['id']}")["verified"] is True


def test_record_a_pairing_after_a_validation_error(new_page: Any, web: Platform, logins: dict[str, Login]) -> None:
    coordinator = Api(web, logins["coordinator"])
    organisations = coordinator.get("/api/organisations", region=REGION, verified="true", limit=200)["items"]
    paired = {item["organisation_id"] for item in coordinator.get("/api/pairings", village_code=VILLAGE, status="active")["items"]}
    choice = next(item for item in organisations if item["id"] not in paired)

    page = new_page()
    sign_in(page, logins["coordinator"])
    page.goto("/coord/pairings")
    form = page.locator("#pairing-form")
    form.get_by_label("组织").select_option(choice["id"])
    form.get_by_label("村代码").fill("4413021102")  # ten digits: not a village
    form.get_by_label("结对开始日期").fill((date.today() - timedelta(days=30)).isoformat())
    form.get_by_role("button", name="登记结对").click()
    village = page.locator("#pairing-form #village_code")
    expect(village).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#pairing-form #village_code-error")).to_contain_text("12")
    expect(page.locator("#pairing-form #organisation_id")).to_have_value(choice["id"])  # what was typed stays

    village.fill(VILLAGE)
    page.locator("#pairing-form").get_by_role("button", name="登记结对").click()
    page.wait_for_url(re.compile(r"/coord/pairings$"))
    row = page.locator("table.pairings tr", has_text=choice["name"]).filter(has_text=VILLAGE)
    expect(row).to_have_count(1)
    expect(row.locator(".badge.active")).to_be_visible()

    # And end it again, so that the demo keeps its pairings as they were.
    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name="结束结对").click()
    expect(page.locator("table.pairings tr", has_text=choice["name"]).filter(has_text=VILLAGE).locator(".badge.ended")).to_be_visible()


def test_note_a_follow_up_visit(new_page: Any, web: Platform, logins: dict[str, Login]) -> None:
    officer, member, coordinator = Api(web, logins["officer"]), Api(web, logins["org_member"]), Api(web, logins["coordinator"])
    offer = post_offer(member, unique("健康讲座"), quantity=2)
    need = post_need(officer, unique("慢病防治讲座"), category="health", kind="service", unit="session", quantity=2)
    match = propose_when_synced(coordinator, {"need_id": need["id"], "offer_id": offer["id"], "quantity": 2})
    approved = coordinator.post(f"/api/matches/{match['id']}/approve", expect_status=(200,))
    assert approved["status"] == "approved"

    page = new_page()
    sign_in(page, logins["coordinator"])
    page.goto(f"/coord/matches/{match['id']}")
    expect(page.locator("h1")).to_contain_text(need["title"])
    form = page.locator("#follow-up-form")
    form.get_by_role("button", name="保存回访记录").click()  # no note yet: the API's message beside the field
    expect(page.locator("#follow-up-form #note")).to_have_attribute("aria-invalid", "true")
    page.locator("#follow-up-form #note").fill("走访村卫生室：第一场讲座已定在下周。")
    page.locator("#follow-up-form").get_by_role("button", name="保存回访记录").click()
    expect(page.locator(".follow-ups")).to_contain_text("第一场讲座已定在下周")
    expect(page.locator(".history")).to_contain_text("回访")

