"""Signing in: the first admin, tokens every service can verify, wrong passwords and lockout, /auth/me."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import jwt
import pytest
from sqlalchemy import func, select, update

from gateway.app import create_app
from gateway.auth import mint_service_token
from gateway.models import LoginFailure, User
from gateway.service import BootstrapError, bootstrap_admin
from services.common.identity import Role, TokenVerifier
from services.common.settings import JWT_AUDIENCE, JWT_ISSUER
from tests.gateway.conftest import (
    ADMIN_PASSWORD,
    ADMIN_USERNAME,
    HUICHENG_ORG,
    LUZHOU_VILLAGE,
    PASSWORD,
    Gateway,
    gateway_settings,
)
from tests.support import Tokens


def verifier(gateway: Gateway) -> TokenVerifier:
    return TokenVerifier(gateway.tokens.public_pem, issuer=JWT_ISSUER, audience=JWT_AUDIENCE)


async def admin_count(gateway: Gateway) -> int:
    async with gateway.app.state.db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(User).where(User.role == "admin")) or 0)


async def test_the_bootstrap_admin_is_created_once_and_can_sign_in(gateway: Gateway) -> None:
    credentials = gateway.settings.bootstrap_credentials
    assert await bootstrap_admin(gateway.app.state.db, credentials) is None  # the fixture's start made it already
    restarted = create_app(gateway.settings)
    async with restarted.router.lifespan_context(restarted):
        pass
    assert await admin_count(gateway) == 1

    response = await gateway.login(ADMIN_USERNAME, ADMIN_PASSWORD)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["token_type"], body["expires_in"]) == ("bearer", 3600)
    assert response.headers["cache-control"] == "no-store"
    principal = verifier(gateway).verify(body["access_token"])
    assert (principal.role, principal.username) == (Role.ADMIN, ADMIN_USERNAME)


async def test_the_token_verifies_everywhere_and_carries_the_users_scope(gateway: Gateway) -> None:
    admin = await gateway.admin()
    created = await gateway.create_user(admin, username="Wang.Cun", role="officer", village_code=LUZHOU_VILLAGE,
                                        display_name="王村长", scopes=["reports:export"])
    assert created.status_code == 201, created.text

    response = await gateway.login("wang.cun", PASSWORD)  # usernames ignore case
    token = response.json()["access_token"]
    principal = verifier(gateway).verify(token)
    assert (principal.role, principal.username, principal.village_code) == (Role.OFFICER, "wang.cun", LUZHOU_VILLAGE)
    assert principal.subject == created.json()["id"]
    claims = jwt.decode(token, gateway.tokens.public_pem, algorithms=["EdDSA"], audience=JWT_AUDIENCE)
    assert claims["iss"] == "duijie-gateway"
    assert claims["scope"] == "reports:export"
    assert claims["exp"] - claims["iat"] == 3600
    assert "organisation_id" not in claims and "region_code" not in claims


async def test_a_member_token_names_the_organisation(gateway: Gateway) -> None:
    member = await gateway.new_user(await gateway.admin(), username="li.member", role="org_member",
                                    organisation_id=str(HUICHENG_ORG))
    principal = verifier(gateway).verify(member["Authorization"].removeprefix("Bearer "))
    assert (principal.role, principal.organisation_id) == (Role.ORG_MEMBER, HUICHENG_ORG)


async def test_wrong_password_and_unknown_user_get_the_same_401(gateway: Gateway) -> None:
    gateway.client.headers["Accept-Language"] = "en"
    wrong = await gateway.login(ADMIN_USERNAME, "not-the-password")
    unknown = await gateway.login("nobody-here", "not-the-password")
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.headers["content-type"] == "application/problem+json"
    assert wrong.json()["detail"] == unknown.json()["detail"] == "Wrong username or password."
    assert "not-the-password" not in wrong.text


async def test_five_failures_lock_the_username_even_for_the_right_password(gateway: Gateway) -> None:
    for _ in range(5):
        assert (await gateway.login(ADMIN_USERNAME, "a-wrong-guess")).status_code == 401

    locked = await gateway.login(ADMIN_USERNAME, ADMIN_PASSWORD)
    assert locked.status_code == 429
    assert locked.headers["content-type"] == "application/problem+json"
    assert 0 < int(locked.headers["retry-after"]) <= 15 * 60
    assert "15 分钟" in locked.json()["detail"]
    assert (await gateway.login(ADMIN_USERNAME, "a-wrong-guess")).status_code == 429

    # The window passes (the failures are stored, so every gateway process sees the same).
    async with gateway.app.state.db.transaction() as session:
        for failure in await session.scalars(select(LoginFailure)):
            failure.failed_at -= timedelta(minutes=15)
    assert (await gateway.login(ADMIN_USERNAME, ADMIN_PASSWORD)).status_code == 200


async def test_a_success_forgets_earlier_failures(gateway: Gateway) -> None:
    for _ in range(4):
        await gateway.login(ADMIN_USERNAME, "a-wrong-guess")
    assert (await gateway.login(ADMIN_USERNAME, ADMIN_PASSWORD)).status_code == 200
    for _ in range(4):
        await gateway.login(ADMIN_USERNAME, "a-wrong-guess")
    assert (await gateway.login(ADMIN_USERNAME, ADMIN_PASSWORD)).status_code == 200


async def test_a_missing_form_field_is_a_422(gateway: Gateway) -> None:
    response = await gateway.client.post("/auth/token", data={"username": "root"})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "password"


async def test_me_describes_the_signed_in_person(gateway: Gateway) -> None:
    officer = await gateway.new_user(await gateway.admin(), username="zhang", role="officer",
                                     village_code=LUZHOU_VILLAGE, display_name="张书记", locale="en")
    response = await gateway.client.get("/auth/me", headers=officer)
    assert response.status_code == 200
    me = response.json()
    assert {key: me[key] for key in ("username", "role", "village_code", "organisation_id", "region_code",
                                     "display_name", "locale")} == {
        "username": "zhang", "role": "officer", "village_code": LUZHOU_VILLAGE, "organisation_id": None,
        "region_code": None, "display_name": "张书记", "locale": "en",
    }
    assert "password" not in response.text and "password_hash" not in me


async def test_me_refuses_no_token_a_forged_one_and_a_disabled_account(gateway: Gateway) -> None:
    assert (await gateway.client.get("/auth/me")).status_code == 401
    forged = gateway.tokens.admin()  # signed with the right key, but names nobody in the database
    assert (await gateway.client.get("/auth/me", headers=forged)).status_code == 401

    officer = await gateway.new_user(await gateway.admin(), username="zhao", role="officer", village_code=LUZHOU_VILLAGE)
    async with gateway.app.state.db.transaction() as session:
        await session.execute(update(User).where(User.username == "zhao").values(active=False))
    assert (await gateway.client.get("/auth/me", headers=officer)).status_code == 401
    assert (await gateway.login("zhao", PASSWORD)).status_code == 401


async def test_service_tokens_verify_as_services(gateway: Gateway) -> None:
    token = mint_service_token(gateway.tokens.private_pem, "matching", 60)
    principal = verifier(gateway).verify(token)
    assert (principal.role, principal.subject) == (Role.SERVICE, "service:matching")
    response = await gateway.client.get("/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 403


async def test_bootstrap_refuses_a_username_held_by_someone_else(gateway: Gateway) -> None:
    await gateway.create_user(await gateway.admin(), username="taken-name", role="officer", village_code=LUZHOU_VILLAGE)
    async with gateway.app.state.db.transaction() as session:
        await session.execute(update(User).where(User.role == "admin").values(active=False))
    with pytest.raises(BootstrapError, match="taken-name"):
        await bootstrap_admin(gateway.app.state.db, ("taken-name", "a-long-passphrase"))


async def test_bootstrap_on_an_unmigrated_database_refuses_to_start(tmp_path: Path, tokens: Tokens) -> None:
    app = create_app(gateway_settings(f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}", tokens))
    with pytest.raises(BootstrapError, match="migrated"):
        async with app.router.lifespan_context(app):
            pass
