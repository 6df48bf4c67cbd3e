"""The platform over real processes and HTTP, only through the gateway (except where a test says so)."""

from __future__ import annotations

import os
import signal
import time
import uuid
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import httpx
import pytest

from duijie_cli.demo_data import credit_code
from tests.e2e.conftest import Admin, Platform, pid_alive, sign_in
from tests.support import Tokens

COUNTY = "441302"  # 惠州市惠城区
VILLAGE = "441302110201"  # 芦洲镇东胜村
OTHER_VILLAGE = "450123104213"  # 隆安县岑山村
PROBLEM_JSON = "application/problem+json"


@dataclass
class People:
    admin: dict[str, str]
    coordinator: dict[str, str]
    officer: dict[str, str]
    member: dict[str, str]
    other_member: dict[str, str]
    organisation_id: str
    other_organisation_id: str


def _password() -> str:
    return uuid.uuid4().hex


def _create_user(client: httpx.Client, headers: dict[str, str], **body: Any) -> tuple[str, str]:
    password = _password()
    response = client.post("/auth/users", headers=headers, json={**body, "password": password})
    assert response.status_code == 201, response.text
    return body["username"], password


def _organisation(client: httpx.Client, headers: dict[str, str], name: str, body17: str) -> str:
    response = client.post("/api/organisations", headers=headers, json={
        "name": name, "org_type": "social_organisation", "credit_code": credit_code(body17), "grade": 4,
        "region_codes": [COUNTY],
    })
    assert response.status_code == 201, response.text
    organisation_id: str = response.json()["id"]
    verified = client.post(f"/api/organisations/{organisation_id}/verify", headers=headers)
    assert verified.status_code == 200, verified.text
    assert verified.json()["verified"] is True
    return organisation_id


@pytest.fixture(scope="module")
def people(platform: Platform, admin: Admin) -> People:
    """The admin creates a coordinator; the coordinator registers and verifies two organisations and creates
    an officer and a member of each (coordinators may create officers and members inside their region)."""
    with platform.client() as client:
        admin_headers = sign_in(client, admin.username, admin.password)
        coordinator = sign_in(client, *_create_user(client, admin_headers, username="e2e-coordinator",
                                                    role="coordinator", region_code=COUNTY))
        organisation_id = _organisation(client, coordinator, "惠州市公民伙伴社工服务中心（测试）", "52441302MJE2E0001")
        other_id = _organisation(client, coordinator, "惠州市商业交流合作协会（测试）", "51441302MJE2E0002")
        officer = sign_in(client, *_create_user(client, coordinator, username="e2e-officer", role="officer",
                                                village_code=VILLAGE))
        member = sign_in(client, *_create_user(client, coordinator, username="e2e-member", role="org_member",
                                               organisation_id=organisation_id))
        other_member = sign_in(client, *_create_user(client, coordinator, username="e2e-other-member",
                                                     role="org_member", organisation_id=other_id))
    return People(admin_headers, coordinator, officer, member, other_member, organisation_id, other_id)


def _need(village: str = VILLAGE, **overrides: Any) -> dict[str, Any]:
    return {
        "title": "芦洲镇残疾人种养技能培训", "category": "talent", "kind": "training", "quantity": 45, "unit": "trainee",
        "beneficiaries": 45, "beneficiary_groups": ["disabled"], "urgency": 3, "skills": ["养殖技术"],
        "needed_by": (date.today() + timedelta(days=90)).isoformat(), "village_code": village, **overrides,
    }


def _offer(organisation_id: str, **overrides: Any) -> dict[str, Any]:
    return {
        "organisation_id": organisation_id, "title": "残疾人种养技能培训", "categories": ["talent"], "kind": "training",
        "quantity": 60, "unit": "trainee", "region_codes": [COUNTY], "available_from": date.today().isoformat(),
        "available_until": (date.today() + timedelta(days=200)).isoformat(), "beneficiary_groups": ["disabled"],
        "skills": ["种植技术", "养殖技术"], **overrides,
    }


def test_each_role_signs_in_and_is_who_it_says(platform: Platform, people: People) -> None:
    with platform.client() as client:
        for headers, role in ((people.admin, "admin"), (people.coordinator, "coordinator"),
                              (people.officer, "officer"), (people.member, "org_member")):
            me = client.get("/auth/me", headers=headers)
            assert me.status_code == 200, me.text
            assert me.json()["role"] == role
        assert client.get("/auth/me", headers=people.officer).json()["village_code"] == VILLAGE
        assert client.get("/auth/me", headers=people.member).json()["organisation_id"] == people.organisation_id


def test_officer_posts_need_member_offers_and_browses_the_county(platform: Platform, people: People) -> None:
    with platform.client() as client:
        need = client.post("/api/needs", headers=people.officer, json=_need())
        assert need.status_code == 201, need.text
        assert need.headers["location"].endswith(f"/api/needs/{need.json()['id']}")
        assert need.json()["remaining"] == "45.00"

        offer = client.post("/api/offers", headers=people.member, json=_offer(people.organisation_id))
        assert offer.status_code == 201, offer.text
        assert offer.json()["available"] == "60.00"

        page = client.get("/api/needs", headers=people.member, params={"region": COUNTY, "status": "open"})
        assert page.status_code == 200, page.text
        assert need.json()["id"] in [item["id"] for item in page.json()["items"]]
        got = client.get(f"/api/needs/{need.json()['id']}", headers=people.member)
        assert got.status_code == 200 and got.headers.get("etag")


def test_officer_cannot_post_for_another_village(platform: Platform, people: People) -> None:
    with platform.client() as client:
        response = client.post("/api/needs", headers=people.officer, json=_need(OTHER_VILLAGE))
    assert response.status_code == 403, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)


def test_member_cannot_edit_another_organisations_offer(platform: Platform, people: People) -> None:
    with platform.client() as client:
        offer = client.post("/api/offers", headers=people.member, json=_offer(people.organisation_id, title="种养技能培训二期"))
        assert offer.status_code == 201, offer.text
        url = f"/api/offers/{offer.json()['id']}"
        etag = client.get(url, headers=people.other_member).headers["etag"]
        response = client.patch(url, headers={**people.other_member, "If-Match": etag}, json={"title": "改别人的供给"})
        assert response.status_code == 403, response.text
        assert response.headers["content-type"].startswith(PROBLEM_JSON)
        # and publishing for the other organisation is refused too
        foreign = client.post("/api/offers", headers=people.other_member, json=_offer(people.organisation_id))
        assert foreign.status_code == 403, foreign.text
        assert client.get(url, headers=people.member).json()["title"] == "种养技能培训二期"


def test_a_token_signed_by_another_key_is_refused(platform: Platform, people: People) -> None:
    forged = Tokens.generate().admin()  # right claims, wrong key
    with platform.client() as client:
        for path in ("/api/needs", "/api/offers", "/auth/me", "/auth/users"):
            response = client.get(path, headers=forged)
            assert response.status_code == 401, (path, response.text)
        assert client.get("/api/needs", headers={"Authorization": "Bearer not-a-token"}).status_code == 401


def test_internal_endpoints_are_not_reachable_through_the_gateway(platform: Platform, people: People) -> None:
    with platform.client() as client:
        for path in ("/internal/changes", "/api/needs/internal/changes", "/api/needs/%2e%2e/internal/changes",
                     "/api/offers/..%2Finternal/changes", "/api/needs/%2E%2E/%2E%2E/internal/changes"):
            response = client.get(path, headers=people.admin)
            assert response.status_code == 404, (path, response.status_code, response.text)
    # They exist on the service itself, for service credentials only.
    direct = httpx.get(f"{platform.service_url('needs')}/internal/changes", headers=people.admin, trust_env=False)
    assert direct.status_code in (401, 403), direct.text


def test_openapi_merges_every_service(platform: Platform) -> None:
    with platform.client() as client:
        response = client.get("/openapi.json")
        assert response.status_code == 200
        paths = response.json()["paths"]
        assert client.get("/docs").status_code == 200
    for path in ("/auth/token", "/auth/users", "/api/needs", "/api/needs/{need_id}", "/api/offers", "/api/organisations",
                 "/api/pairings"):
        assert path in paths, path
    if "matching" in platform.services:
        assert any(path.startswith("/api/matches") for path in paths)
    assert not [path for path in paths if "internal" in path]


def test_request_id_passes_through(platform: Platform, people: People) -> None:
    with platform.client() as client:
        for path in ("/api/needs", f"/api/needs/{uuid.uuid4()}"):
            request_id = f"e2e-{uuid.uuid4().hex}"
            response = client.get(path, headers={**people.member, "X-Request-ID": request_id})
            assert response.status_code in (200, 404)
            assert response.headers["x-request-id"] == request_id


def test_a_stopped_service_gives_502_and_recovers_when_restarted(platform: Platform, people: People) -> None:
    """`duijie up` restarts a child that died; while it is down the gateway answers 502 problem+json."""
    old_pid = platform.pid("needs")
    os.kill(old_pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while pid_alive(old_pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    with platform.client() as client:
        down = client.get("/api/needs", headers={**people.member, "Accept-Language": "en"})
        assert down.status_code == 502, down.text
        assert down.headers["content-type"].startswith(PROBLEM_JSON)
        assert down.json()["status"] == 502
        assert client.get("/api/offers", headers=people.member).status_code == 200  # the others carry on

        deadline = time.monotonic() + 60
        while True:
            response = client.get("/api/needs", headers=people.member)
            if response.status_code == 200:
                break
            assert time.monotonic() < deadline, f"needs did not come back: {response.status_code}\n{platform.text()}"
            time.sleep(0.2)
    assert platform.pid("needs") != old_pid
    assert "restarting needs" in platform.text()


def test_matching_sees_new_needs_and_offers_through_the_feeds(platform: Platform, people: People) -> None:
    """The whole chain over real processes: service token from the gateway, change feeds, read models, scoring."""
    with platform.client() as client:
        need = client.post("/api/needs", headers=people.officer, json=_need(title="东胜村残疾人养殖培训"))
        assert need.status_code == 201, need.text
        offer = client.post("/api/offers", headers=people.member, json=_offer(people.organisation_id, title="养殖技能培训班"))
        assert offer.status_code == 201, offer.text
        deadline = time.monotonic() + 20
        while True:
            response = client.get("/api/candidates", headers=people.coordinator, params={"need_id": need.json()["id"]})
            found = response.status_code == 200 and offer.json()["id"] in [item["offer_id"] for item in response.json()["items"]]
            if found:
                break
            assert time.monotonic() < deadline, f"no candidate after 20 s: {response.status_code} {response.text[:500]}"
            time.sleep(0.3)
        explanation = next(item for item in response.json()["items"] if item["offer_id"] == offer.json()["id"])["explanation"]
        assert {"rule", "weight", "score", "reason"} <= set(explanation[0])


def _poll(client: httpx.Client, path: str, headers: dict[str, str], done: Any, seconds: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    while True:
        response = client.get(path, headers=headers)
        if response.status_code == 200 and done(response.json()):
            body: dict[str, Any] = response.json()
            return body
        assert time.monotonic() < deadline, f"{path}: {response.status_code} {response.text[:500]}"
        time.sleep(0.3)


def test_a_match_run_through_the_gateway_proposes_with_explanations(platform: Platform, people: People) -> None:
    """Post a need and an offer in a township of their own, run matching over it, read the explained proposal."""
    township = "441302111"  # a township of 惠城区 that no other test uses
    with platform.client() as client:
        need = client.post("/api/needs", headers=people.coordinator,
                           json=_need(village=f"{township}201", title="村小学图书角", category="education", kind="goods",
                                      unit="book", quantity=300, skills=[], beneficiary_groups=["students"]))
        assert need.status_code == 201, need.text
        offer = client.post("/api/offers", headers=people.member, json=_offer(
            people.organisation_id, title="出版社捐赠图书", categories=["education"], kind="goods", unit="book",
            quantity=200, region_codes=[township], skills=[], beneficiary_groups=[]))
        assert offer.status_code == 201, offer.text
        _poll(client, f"/api/candidates?need_id={need.json()['id']}", people.coordinator,
              lambda body: any(item["offer_id"] == offer.json()["id"] for item in body["items"]))

        started = client.post("/api/match-runs", headers=people.coordinator, json={"region_code": township})
        assert started.status_code == 201, started.text
        run = _poll(client, f"/api/match-runs/{started.json()['id']}", people.coordinator,
                    lambda body: body["status"] in ("finished", "failed"))
        assert run["status"] == "finished", run
        matches = client.get("/api/matches", headers=people.coordinator, params={"run_id": run["id"]}).json()["items"]

    [proposal] = matches
    assert (proposal["need_id"], proposal["offer_id"], proposal["status"]) == (need.json()["id"], offer.json()["id"], "proposed")
    assert proposal["quantity"] == "200.00"  # all the offer has, against 300 needed
    assert [entry["rule"] for entry in proposal["explanation"]]
    assert all(entry["reason"] for entry in proposal["explanation"])
