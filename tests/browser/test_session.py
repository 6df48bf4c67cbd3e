"""Signing in and out, the language switch, and forms that did not come from the site."""

from __future__ import annotations

import httpx
from playwright.sync_api import Page, expect

from tests.browser.conftest import PHONE, Login, screenshot, sign_in
from tests.e2e.conftest import Platform


def test_a_wrong_password_is_refused_in_chinese_by_default(new_page, logins: dict[str, Login]) -> None:  # type: ignore[no-untyped-def]
    page: Page = new_page()
    page.goto("/")
    assert "/login" in page.url  # the home page sends a visitor who has not signed in to the login form
    expect(page.locator("h1")).to_have_text("登录")
    page.fill("#username", logins["officer"].username)
    page.fill("#password", "not-the-password")
    page.click("button.primary")
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("用户名或密码")
    expect(page.locator("#username")).to_have_attribute("aria-invalid", "true")
    screenshot(page, "login")


def test_signing_in_leads_to_the_role_home_and_the_switch_changes_language(new_page, logins: dict[str, Login]) -> None:  # type: ignore[no-untyped-def]
    page: Page = new_page()
    sign_in(page, logins["coordinator"])
    assert page.url.endswith("/coord/approvals")
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    expect(page.get_by_role("navigation")).to_contain_text("待审批")
    page.get_by_role("button", name="English").click()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.get_by_role("navigation")).to_contain_text("Approvals")
    # The choice is the user's setting: a new browser signing in as them gets English too.
    other: Page = new_page()
    sign_in(other, logins["coordinator"])
    expect(other.locator("html")).to_have_attribute("lang", "en")
    other.get_by_role("button", name="中文").click()
    expect(other.locator("html")).to_have_attribute("lang", "zh-CN")


def test_signing_out_ends_the_session(new_page, logins: dict[str, Login]) -> None:  # type: ignore[no-untyped-def]
    page: Page = new_page(viewport=PHONE)
    sign_in(page, logins["officer"])
    assert page.url.endswith("/village/needs")
    page.get_by_role("button", name="退出").click()
    assert "/login" in page.url
    page.goto("/village/needs")
    assert "/login" in page.url


def test_a_form_posted_from_elsewhere_is_refused_and_changes_nothing(web: Platform, logins: dict[str, Login]) -> None:
    with httpx.Client(base_url=web.url, trust_env=False, follow_redirects=False) as browser:
        assert browser.get("/login").status_code == 200  # the site sets its CSRF cookie
        login = logins["officer"]
        forged = browser.post("/login", data={"username": login.username, "password": login.password, "csrf_token": "forged"})
        assert forged.status_code == 403
        assert "duijie_session" not in browser.cookies
        assert "刷新页面" in forged.text
