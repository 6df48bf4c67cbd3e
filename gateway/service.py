"""The rules of users: signing in (with lockout), who may create whom, listing, the first admin."""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from gateway import auth, repository
from gateway.models import User
from gateway.schemas import MeUpdate, UserCreate
from services.common.db import Database, utcnow
from services.common.errors import CORRECT_FIELDS, AppError, Conflict, FieldError, Forbidden, Unauthorized, ValidationFailed
from services.common.http import decode_keyset, keyset_page
from services.common.identity import Principal, Role
from services.common.messages import Text

log = logging.getLogger("duijie.gateway")

BAD_CREDENTIALS = Text("用户名或密码错误。", "Wrong username or password.")
COORDINATOR_REGION_LENGTHS = (2, 4, 6, 9)


class TooManyAttempts(AppError):
    status, code = 429, "too-many-attempts"
    title = Text("尝试次数过多", "Too many attempts")


# --- signing in ----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class LoginPolicy:
    max_failures: int
    window: timedelta


def _retry_after(failures: list[datetime], policy: LoginPolicy, now: datetime) -> int | None:
    """Seconds until fewer than `max_failures` remain in the window, or None when not locked."""
    if len(failures) < policy.max_failures:
        return None
    oldest_that_counts = failures[policy.max_failures - 1]  # newest first
    return max(1, math.ceil((oldest_that_counts + policy.window - now).total_seconds()))


async def authenticate(db: Database, *, username: str, password: str, policy: LoginPolicy) -> User:
    """The user behind a username and password, or 401; after too many failures, 429 whatever the password.

    Runs its own short transactions rather than the request's: a failure must be stored even though
    the answer is an error (which rolls the request's session back), and no database lock is held
    while argon2 works.
    """
    username, now = auth.normalise_username(username), utcnow()
    if len(username) > auth.USERNAME_MAX:
        raise Unauthorized(BAD_CREDENTIALS, headers={"WWW-Authenticate": "Bearer"})  # nobody can have that name
    async with db.transaction() as session:
        failures = await repository.recent_failures(session, username, since=now - policy.window,
                                                    limit=policy.max_failures)
        user = await repository.get_user_by_username(session, username)
    retry_after = _retry_after(failures, policy, now)
    if retry_after is not None:
        # The password is not even checked: a right guess during lockout must look like any other.
        raise TooManyAttempts(
            Text("登录失败次数过多，请在 {minutes} 分钟后重试。", "Too many failed sign-ins; try again in {minutes} minutes."),
            headers={"Retry-After": str(retry_after)}, minutes=math.ceil(retry_after / 60),
        )
    usable = user if user is not None and user.active else None
    valid = await auth.verify_password(usable.password_hash if usable else None, password)
    if usable is None or not valid:
        async with db.transaction() as session:
            await repository.forget_failures(session, username, before=now - policy.window)
            repository.add_failure(session, username, now)
        raise Unauthorized(BAD_CREDENTIALS, headers={"WWW-Authenticate": "Bearer"})
    # Hashes made with weaker parameters are upgraded while the password is at hand.
    new_hash = await auth.hash_password(password) if auth.needs_rehash(usable.password_hash) else None
    async with db.transaction() as session:
        await repository.forget_failures(session, username)
        if new_hash is not None:
            await repository.set_password_hash(session, usable.id, new_hash)
    return usable


# --- services signing in (OAuth2 client credentials) ----------------------------------------

class UnsupportedGrantType(AppError):
    status, code = 400, "unsupported-grant-type"
    title = Text("不支持的授权类型", "Unsupported grant type")


BAD_CLIENT = Text("客户端编号或密钥错误。", "Wrong client id or secret.")


def authenticate_service(clients: dict[str, str], *, grant_type: str, client_id: str, client_secret: str) -> str:
    """The service a client-credentials request names, or 400/401. The secret is never logged or echoed."""
    if grant_type != "client_credentials":
        raise UnsupportedGrantType(
            Text("此接口只接受 grant_type=client_credentials。", "This endpoint accepts grant_type=client_credentials only.")
        )
    if not auth.service_client_valid(clients, client_id, client_secret):
        log.warning("refused a service token to client %r", client_id[:40])
        raise Unauthorized(BAD_CLIENT, headers={"WWW-Authenticate": 'Basic realm="duijie-services"'})
    return client_id


def granted_scopes(user: User, requested: list[str]) -> list[str]:
    """What the token may carry: the user's scopes, narrowed to those asked for if any were."""
    held = list(user.scopes or [])
    return [scope for scope in held if scope in requested] if requested else held


async def signed_in_user(session: AsyncSession, principal: Principal) -> User:
    """The person a token names, as long as they still exist and are active."""
    try:
        user_id = uuid.UUID(principal.subject)
    except ValueError:
        user_id = None
    user = await repository.get_user(session, user_id) if user_id else None
    if user is None or not user.active:
        raise Unauthorized(Text("该账号不存在或已停用。", "This account no longer exists or is disabled."),
                           headers={"WWW-Authenticate": "Bearer"})
    return user


async def update_me(session: AsyncSession, principal: Principal, data: MeUpdate) -> User:
    user = await signed_in_user(session, principal)
    user.locale = data.locale
    return user


# --- creating users ------------------------------------------------------------------------

ROLE_NAMES = {
    "officer": Text("村干部", "village officer"),
    "org_member": Text("组织成员", "organisation member"),
    "coordinator": Text("协调员", "coordinator"),
    "admin": Text("管理员", "admin"),
}
# The one field that says whom each role acts for.
ROLE_SCOPE_FIELD = {"officer": "village_code", "org_member": "organisation_id", "coordinator": "region_code"}
SCOPE_FIELDS = ("village_code", "organisation_id", "region_code")


def _coordinator_region(principal: Principal) -> str:
    """A coordinator's prefix; a token without one governs nothing (never everything, as '' would)."""
    if not principal.region_code:
        raise Forbidden(Text("你的账号没有辖区。", "Your account has no region."))
    return principal.region_code


def _ensure_may_create_role(principal: Principal, data: UserCreate) -> None:
    if principal.role is Role.ADMIN:
        return
    if principal.role is Role.COORDINATOR and data.role in ("officer", "org_member"):
        _coordinator_region(principal)
        if data.scopes:
            raise Forbidden(Text("只有管理员可以授予权限范围（scopes）。", "Only an admin may grant scopes."))
        return
    raise Forbidden(
        Text("你无权创建“{role}”账号。", "You may not create {role_en} accounts."),
        role=ROLE_NAMES[data.role].zh, role_en=ROLE_NAMES[data.role].en,
    )


def check_role_fields(data: UserCreate) -> None:
    """Each role names exactly the one village, organisation or region it acts for (422 otherwise)."""
    errors: list[FieldError] = []
    needed = ROLE_SCOPE_FIELD.get(data.role)
    role = ROLE_NAMES[data.role]
    for field in SCOPE_FIELDS:
        value = getattr(data, field)
        if field == needed and value is None:
            errors.append(FieldError(field, Text(f"{role.zh}账号须填写此项", f"Required for a {role.en}")))
        elif field != needed and value is not None:
            errors.append(FieldError(field, Text(f"{role.zh}账号不使用此项", f"Not used by a {role.en}")))
    if data.role == "coordinator" and data.region_code and len(data.region_code) not in COORDINATOR_REGION_LENGTHS:
        errors.append(FieldError("region_code", Text(
            "协调员的辖区是省、市、县或乡镇（2、4、6 或 9 位代码）",
            "A coordinator's region is a province, city, county or township (a 2, 4, 6 or 9 digit code)",
        )))
    if errors:
        raise ValidationFailed(CORRECT_FIELDS, errors=errors)


def _ensure_inside_region(principal: Principal, data: UserCreate) -> None:
    if principal.role is Role.COORDINATOR and data.village_code and not principal.governs_region(data.village_code):
        raise Forbidden(
            Text("村 {village} 不在你的辖区 {region} 内。", "Village {village} lies outside your region {region}."),
            village=data.village_code, region=principal.region_code,
        )


def _overlaps(region: str, codes: list[str]) -> bool:
    return any(code.startswith(region) or region.startswith(code) for code in codes)


def _check_organisation(principal: Principal, data: UserCreate, organisation: dict[str, Any] | None) -> None:
    if organisation is None:
        raise ValidationFailed(CORRECT_FIELDS, errors=[FieldError(
            "organisation_id",
            Text("找不到编号为 {id} 的组织，请先登记组织。", "There is no organisation {id}; register the organisation first."),
            id=data.organisation_id,
        )])
    codes = organisation.get("region_codes")
    region = principal.region_code
    if principal.role is Role.COORDINATOR and region and isinstance(codes, list) and codes \
            and not _overlaps(region, [str(code) for code in codes]):
        raise Forbidden(
            Text("该组织的服务地区不在你的辖区 {region} 内。", "This organisation serves no place inside your region {region}."),
            region=region,
        )


OrganisationLookup = Callable[[uuid.UUID], Awaitable[dict[str, Any] | None]]


async def create_user(
    session: AsyncSession, *, principal: Principal, data: UserCreate, find_organisation: OrganisationLookup
) -> User:
    """Checks who may create whom, then stores the user. Slow and remote checks come before any query."""
    _ensure_may_create_role(principal, data)
    check_role_fields(data)
    _ensure_inside_region(principal, data)
    if data.organisation_id is not None:
        _check_organisation(principal, data, await find_organisation(data.organisation_id))
    password_hash = await auth.hash_password(data.password.get_secret_value())
    await signed_in_user(session, principal)  # a disabled account's token may not outlive it here
    if await repository.username_taken(session, data.username):
        raise _username_taken(data.username)
    user = User(
        id=uuid.uuid4(), username=data.username, password_hash=password_hash, role=data.role, scopes=list(data.scopes),
        display_name=data.display_name or data.username, locale=data.locale, village_code=data.village_code,
        organisation_id=data.organisation_id, region_code=data.region_code, active=True,
        created_by=_creator_id(principal),
    )
    repository.add_user(session, user)
    try:
        await session.flush()
    except IntegrityError as exc:  # a concurrent request took the name between the check and the insert
        raise _username_taken(data.username) from exc
    return user


def _username_taken(username: str) -> Conflict:
    return Conflict(Text("用户名“{username}”已被使用。", "The username '{username}' is taken."), username=username)


def _creator_id(principal: Principal) -> uuid.UUID | None:
    try:
        return uuid.UUID(principal.subject)
    except ValueError:
        return None


# --- listing -------------------------------------------------------------------------------

async def list_users(
    session: AsyncSession, *, principal: Principal, role: str | None, limit: int, cursor: str | None
) -> tuple[list[User], str | None]:
    """An admin sees everyone; a coordinator sees the people of their region and those they created."""
    if principal.role not in (Role.ADMIN, Role.COORDINATOR):
        raise Forbidden(Text("只有管理员和协调员可以查看用户。", "Only admins and coordinators may list users."))
    after = decode_keyset(cursor)
    await signed_in_user(session, principal)
    region = None if principal.is_admin else _coordinator_region(principal)
    creator = None if principal.is_admin else _creator_id(principal) or uuid.UUID(int=0)
    rows = await repository.list_users(session, region=region, creator=creator, role=role, limit=limit + 1, after=after)
    return keyset_page(rows, limit)


# --- the first admin -----------------------------------------------------------------------

class BootstrapError(RuntimeError):
    """The gateway cannot honour DUIJIE_BOOTSTRAP_ADMIN; it refuses to start rather than guess."""


async def bootstrap_admin(db: Database, credentials: tuple[str, str] | None) -> User | None:
    """Create the first admin when there is no active admin. Idempotent across restarts and processes."""
    try:
        async with db.transaction() as session:
            admin_exists = await repository.active_admin_exists(session)
            taken = credentials is not None and await repository.username_taken(session, credentials[0])
    except SQLAlchemyError as exc:
        if credentials is None:
            log.warning("could not look for an admin in the gateway database: %s", exc)
            return None
        raise BootstrapError(
            "DUIJIE_BOOTSTRAP_ADMIN is set but the gateway database cannot be read: "
            "is it reachable and migrated (alembic -n gateway upgrade head)?"
        ) from exc
    if admin_exists:
        return None
    if credentials is None:
        log.warning("there is no admin: set DUIJIE_BOOTSTRAP_ADMIN=username:password to create the first one")
        return None
    username, password = credentials
    if taken:
        raise BootstrapError(
            f"DUIJIE_BOOTSTRAP_ADMIN names {username!r}, which exists but is not an active admin; choose another username"
        )
    password_hash = await auth.hash_password(password)
    try:
        async with db.transaction() as session:
            if await repository.active_admin_exists(session):
                return None  # another gateway process was quicker
            user = User(id=uuid.uuid4(), username=username, password_hash=password_hash, role="admin", scopes=[],
                        display_name=username, locale="zh-CN", active=True)
            repository.add_user(session, user)
    except IntegrityError:
        return None  # another process inserted the same username at the same moment
    log.info("created the first admin %r from DUIJIE_BOOTSTRAP_ADMIN", username)
    return user
