"""The web pages: server-rendered Jinja2 with htmx, on the platform's public API. 网页界面。"""

from __future__ import annotations

from fastapi import APIRouter

from gateway.web import admin, coordinator, organisation, pages, reports, village

WEB_ROUTERS: list[APIRouter] = [pages.router, village.router, organisation.router, coordinator.router, admin.router, reports.router]
