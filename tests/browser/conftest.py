"""Headless Chromium (Debian's package, not a downloaded browser) against `duijie up --demo`, driven by Playwright.

One platform for the whole browser suite, on SQLite (the pages call the same API on either database;
the API's own suites cover PostgreSQL). Each test gets a fresh browser context: its own cookies.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Route, sync_playwright

from tests.e2e.conftest import Platform, free_base_port, platform_env

CHROMIUM = os.environ.get("DUIJIE_CHROMIUM", "/usr/bin/chromium")
# As root, in a closed network: no sandbox, and none of Chromium's calls home.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 860}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Marked `browser`, and run last: while Playwright's sync API runs, its event loop is the thread's,
    and no other test could start one (asyncio.run) until it stops."""
    here = Path(__file__).parent
    in_browser = [item for item in items if here in Path(str(item.fspath)).parents]
    for item in in_browser:
        item.add_marker(pytest.mark.browser)
    items[:] = [item for item in items if item not in in_browser] + in_browser


@dataclass(frozen=True)
class Login:
    role: str
    username: str
    password: str
    scope: str


@pytest.fixture(scope="package")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        pytest.fail(f"Chromium is not installed at {CHROMIUM}: apt-get install -y chromium (.ci/run does this)")
    tmp = tmp_path_factory.mktemp(f"browser-{uuid.uuid4().hex[:6]}")
    running = Platform(port=free_base_port(), data_dir=tmp / "data", output=tmp / "duijie-up.log",
                       env=platform_env(None), args=["--demo"])
    try:
        running.start()
        yield running
        assert running.stop() == 0, running.text()
    finally:
        if running.process is not None and running.process.poll() is None:
            running.process.kill()


@pytest.fixture(scope="package")
def logins(web: Platform) -> dict[str, Login]:
    raw = json.loads((web.data_dir / "demo-logins.json").read_text(encoding="utf-8"))
    return {role: Login(role, entry["username"], entry["password"], entry["scope"]) for role, entry in raw.items()}


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    with sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def new_page(browser: Browser, web: Platform) -> Iterator[Callable[..., Page]]:
    """`new_page(locale="zh", viewport=DESKTOP)`: a page in a context of its own, refusing any request off this host."""
    opened: list[tuple[BrowserContext, list[str]]] = []

    def open_page(locale: str = "zh-CN", viewport: dict[str, int] | None = None) -> Page:
        context = browser.new_context(base_url=web.url, locale=locale, viewport=viewport or DESKTOP)
        context.set_default_timeout(15_000)
        outside: list[str] = []

        def only_this_host(route: Route) -> None:
            if route.request.url.startswith(web.url):
                route.continue_()
            else:
                outside.append(route.request.url)
                route.abort()

        context.route("**/*", only_this_host)
        opened.append((context, outside))
        return context.new_page()

    yield open_page
    for context, outside in opened:
        # Every asset is served by the gateway: a page that reached for a CDN fails here.
        assert outside == [], outside
        context.close()


def sign_in(page: Page, login: Login) -> None:
    page.goto("/login")
    page.fill("#username", login.username)
    page.fill("#password", login.password)
    page.click("button[type=submit].primary")
    page.wait_for_load_state("networkidle")


def screenshot(page: Page, name: str) -> None:
    """Saved under docs/screenshots/ for README.md (full page, as a reader would scroll it)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
