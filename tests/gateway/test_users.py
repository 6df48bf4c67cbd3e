"""Who may create whom, the password policy, duplicate names, and who sees which users."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.gateway.conftest import (
    CENSHAN_VILLAGE,
    HUICHENG_ORG,
    LONGAN_ORG,
    LUZHOU_VILLAGE,
    PASSWORD,
    Gateway,
)

NEW_USERS: dict[str, dict[str, Any]] = {
    "officer_in_region": {"role": "officer", "village_code": LUZHOU_VILLAGE},
    "officer_elsewhere": {"role": "officer", "village_code": CENSHAN_VILLAGE},
    "member_in_region": {"role": "org_member", "organisation_id": str(HUICHENG_ORG)},
    "coordinator": {"role": "coordinator", "region_code": "441302"},
    "admin": {"role": "admin"},
}


async def creator_headers(gateway: Gateway, creator: str) -> dict[str, str]:
    admin = await gateway.admin()
    if creator == "admin":
        return admin
    body = {
        "coordinator": {"role": "coordinator", "region_code": "4413"},
        "officer": {"role": "officer", "village_code": LUZHOU_VILLAGE},
        "org_member": {"role": "org_member", "organisation_id": str(HUICHENG_ORG)},
    }[creator]
    return await gateway.new_user(admin, username=f"creator-{creator}".replace("_", "-"), **body)


@pytest.mark.parametrize(
    ("creator", "new_user", "expected"),
    [
        ("admin", "officer_elsewhere", 201),
        ("admin", "member_in_region", 201),
        ("admin", "coordinator", 201),
        ("admin", "admin", 201),
        ("coordinator", "officer_in_region", 201),
        ("coordinator", "officer_elsewhere", 403),
        ("coordinator", "member_in_region", 201),
        ("coordinator", "coordinator", 403),
        ("coordinator", "admin", 403),
        ("officer", "officer_in_region", 403),
        ("org_member", "member_in_region", 403),
        ("org_member", "officer_in_region", 403),
    ],
)
async def test_who_may_create_whom(gateway: Gateway, creator: str, new_user: str, expected: int) -> None:
    headers = await creator_headers(gateway, creator)
    response = await gateway.create_user(headers, username="new-person", **NEW_USERS[new_user])
    assert response.status_code == expected, response.text
    if expected == 201:
        created = response.json()
        assert created["username"] == "new-person" and created["active"] is True
        assert "password" not in response.text and PASSWORD not in response.text
        assert (await gateway.login("new-person", PASSWORD)).status_code == 200
    else:
        assert response.headers["content-type"] == "application/problem+json"
        assert (await gateway.login("new-person", PASSWORD)).status_code == 401


async def test_a_coordinator_may_not_add_members_of_an_organisation_serving_elsewhere(gateway: Gateway) -> None:
    coordinator = await creator_headers(gateway, "coordinator")
    response = await gateway.create_user(coordinator, username="far-member", role="org_member",
                                         organisation_id=str(LONGAN_ORG))
    assert response.status_code == 403


async def test_an_unknown_organisation_is_a_422_on_its_field(gateway: Gateway) -> None:
    missing = uuid.uuid4()
    response = await gateway.create_user(await gateway.admin(), username="ghost-member", role="org_member",
                                         organisation_id=str(missing))
    assert response.status_code == 422, response.text
    errors = response.json()["errors"]
    assert errors[0]["field"] == "organisation_id"
    assert str(missing) in errors[0]["message"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"role": "officer"}, "village_code"),
        ({"role": "officer", "village_code": LUZHOU_VILLAGE, "region_code": "4413"}, "region_code"),
        ({"role": "coordinator", "region_code": LUZHOU_VILLAGE}, "region_code"),
        ({"role": "org_member"}, "organisation_id"),
        ({"role": "admin", "village_code": LUZHOU_VILLAGE}, "village_code"),
        ({"role": "officer", "village_code": "4413"}, "village_code"),
        ({"role": "mayor"}, "role"),
    ],
)
async def test_each_role_names_exactly_what_it_acts_for(gateway: Gateway, body: dict[str, Any], field: str) -> None:
    response = await gateway.create_user(await gateway.admin(), username="somebody", **body)
    assert response.status_code == 422, response.text
    assert field in [error["field"] for error in response.json()["errors"]]


@pytest.mark.parametrize(
    ("password", "zh", "en"),
    [
        ("short-pw", "密码至少 10 个字符", "A password has at least 10 characters"),
        ("12345678901234", "密码不能全是数字", "A password cannot be digits only"),
        ("liu.officer", "密码不能与用户名相同", "A password cannot be the username"),
    ],
)
async def test_the_password_policy_speaks_both_languages(gateway: Gateway, password: str, zh: str, en: str) -> None:
    admin = await gateway.admin()
    body = {"username": "liu.officer", "password": password, "role": "officer", "village_code": LUZHOU_VILLAGE}
    for language, message in (("zh-CN", zh), ("en", en)):
        response = await gateway.client.post("/auth/users", json=body, headers={**admin, "Accept-Language": language})
        assert response.status_code == 422
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["errors"] == [{"field": "password", "message": message}]
        assert password not in response.text


async def test_a_bad_username_is_a_422(gateway: Gateway) -> None:
    response = await gateway.create_user(await gateway.admin(), username="王", role="admin")
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "username"


async def test_a_taken_username_is_a_409_whatever_its_case(gateway: Gateway) -> None:
    admin = await gateway.admin()
    first = await gateway.create_user(admin, username="chen", role="officer", village_code=LUZHOU_VILLAGE)
    again = await gateway.create_user(admin, username="CHEN", role="admin")
    assert (first.status_code, again.status_code) == (201, 409)
    assert again.headers["content-type"] == "application/problem+json"


async def test_an_idempotency_key_creates_the_user_once(gateway: Gateway) -> None:
    admin = {**(await gateway.admin()), "Idempotency-Key": "create-hejia-1"}
    body = {"username": "hejia", "password": PASSWORD, "role": "officer", "village_code": LUZHOU_VILLAGE}
    first = await gateway.client.post("/auth/users", json=body, headers=admin)
    again = await gateway.client.post("/auth/users", json=body, headers=admin)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]


async def test_only_admins_may_grant_scopes(gateway: Gateway) -> None:
    coordinator = await creator_headers(gateway, "coordinator")
    response = await gateway.create_user(coordinator, username="scoped", role="officer", village_code=LUZHOU_VILLAGE,
                                         scopes=["reports:export"])
    assert response.status_code == 403


async def test_admins_list_everyone_coordinators_their_region_and_whom_they_created(gateway: Gateway) -> None:
    admin = await gateway.admin()
    coordinator = await gateway.new_user(admin, username="coord-4413", role="coordinator", region_code="4413")
    await gateway.create_user(coordinator, username="member-by-coord", role="org_member", organisation_id=str(HUICHENG_ORG))
    await gateway.create_user(admin, username="officer-luzhou", role="officer", village_code=LUZHOU_VILLAGE)
    await gateway.create_user(admin, username="officer-censhan", role="officer", village_code=CENSHAN_VILLAGE)
    await gateway.create_user(admin, username="coord-441302", role="coordinator", region_code="441302")

    async def usernames(headers: dict[str, str], query: str = "") -> list[str]:
        response = await gateway.client.get(f"/auth/users{query}", headers=headers)
        assert response.status_code == 200, response.text
        return sorted(user["username"] for user in response.json()["items"])

    assert await usernames(admin) == sorted(
        ["root", "coord-4413", "member-by-coord", "officer-luzhou", "officer-censhan", "coord-441302"]
    )
    assert await usernames(coordinator) == sorted(["coord-441302", "coord-4413", "member-by-coord", "officer-luzhou"])
    assert await usernames(admin, "?role=officer") == ["officer-censhan", "officer-luzhou"]
    officer = await gateway.headers_for("officer-luzhou")
    assert (await gateway.client.get("/auth/users", headers=officer)).status_code == 403


async def test_the_user_list_pages_with_a_cursor(gateway: Gateway) -> None:
    admin = await gateway.admin()
    for n in range(4):
        await gateway.create_user(admin, username=f"officer-{n}", role="officer", village_code=LUZHOU_VILLAGE)
    seen: list[str] = []
    cursor = None
    for _ in range(5):
        query = "?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = (await gateway.client.get(f"/auth/users{query}", headers=admin)).json()
        seen += [user["username"] for user in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(["root", *(f"officer-{n}" for n in range(4))])
    bad = await gateway.client.get("/auth/users?cursor=nonsense", headers=admin)
    assert bad.status_code == 422


async def test_spaces_belong_to_the_password(gateway: Gateway) -> None:
    await gateway.new_user(await gateway.admin(), username="space-man", password="  two words here  ", role="admin")
    assert (await gateway.login("space-man", "two words here")).status_code == 401


async def test_a_coordinator_token_without_a_region_governs_nothing(gateway: Gateway) -> None:
    regionless = gateway.tokens.headers("coordinator")
    response = await gateway.create_user(regionless, username="anyone", role="officer", village_code=LUZHOU_VILLAGE)
    assert response.status_code == 403
