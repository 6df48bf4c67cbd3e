"""HTTP surface of /auth: parse, call the service, answer. Nothing else."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query, Request, Response, status
from fastapi.security import OAuth2PasswordRequestForm

from gateway import auth, clients, service
from gateway.config import GatewaySettings
from gateway.models import User
from gateway.schemas import Me, MeUpdate, TokenResponse, UserCreate, UserRead, UserRole
from gateway.upstreams import Upstreams
from services.common.db import Database
from services.common.http import MAX_PAGE, Page
from services.common.identity import CurrentUser
from services.common.transactions import DbSession, TransactionalRoute


def _settings(request: Request) -> GatewaySettings:
    settings: GatewaySettings = request.app.state.settings
    return settings


def _database(request: Request) -> Database:
    database: Database = request.app.state.db
    return database


def _upstreams(request: Request) -> Upstreams:
    upstreams: Upstreams = request.app.state.upstreams
    return upstreams


Settings = Annotated[GatewaySettings, Depends(_settings)]
Db = Annotated[Database, Depends(_database)]
UpstreamPool = Annotated[Upstreams, Depends(_upstreams)]

PROBLEMS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Wrong username or password"},
    429: {"description": "Too many failed sign-ins; see Retry-After"},
}

# Signing in manages its own short transactions (see service.authenticate), so no request session here.
token_router = APIRouter(prefix="/auth", tags=["auth"])
router = APIRouter(route_class=TransactionalRoute, prefix="/auth", tags=["auth"])


@token_router.post("/token", response_model=TokenResponse, responses=PROBLEMS)
async def issue_token(
    form: Annotated[OAuth2PasswordRequestForm, Depends()], settings: Settings, db: Db, response: Response
) -> TokenResponse:
    policy = service.LoginPolicy(settings.login_max_failures, timedelta(seconds=settings.login_window_seconds))
    user = await service.authenticate(db, username=form.username, password=form.password, policy=policy)
    token = auth.mint_user_token(
        settings.private_pem, user_id=user.id, username=user.username, role=user.role,
        ttl_seconds=settings.token_ttl_seconds, village_code=user.village_code,
        organisation_id=user.organisation_id, region_code=user.region_code,
        scopes=service.granted_scopes(user, form.scopes),
    )
    response.headers["Cache-Control"] = "no-store"  # RFC 6749 §5.1: tokens are never cached
    return TokenResponse(access_token=token, expires_in=settings.token_ttl_seconds)


@token_router.post(
    "/service-token", response_model=TokenResponse,
    responses={400: {"description": "Not grant_type=client_credentials"}, 401: {"description": "Wrong client id or secret"}},
)
async def issue_service_token(
    grant_type: Annotated[str, Form(max_length=50)],
    client_id: Annotated[str, Form(max_length=100)],
    client_secret: Annotated[str, Form(max_length=500)],
    settings: Settings,
    response: Response,
) -> TokenResponse:
    """OAuth2 client credentials (RFC 6749 §4.4): a short-lived service token for a service named in
    DUIJIE_GATEWAY_SERVICE_CLIENTS, for other services' internal endpoints. 服务间调用凭据。"""
    name = service.authenticate_service(
        settings.service_client_secrets, grant_type=grant_type, client_id=client_id, client_secret=client_secret
    )
    response.headers["Cache-Control"] = "no-store"
    ttl = settings.service_token_ttl_seconds
    return TokenResponse(access_token=auth.mint_service_token(settings.private_pem, name, ttl), expires_in=ttl)


@router.get("/me", response_model=Me)
async def me(session: DbSession, principal: CurrentUser) -> User:
    return await service.signed_in_user(session, principal)


@router.patch("/me", response_model=Me)
async def update_me(data: MeUpdate, session: DbSession, principal: CurrentUser) -> User:
    """The signed-in person's own settings (their language). 本人设置（界面语言）。"""
    return await service.update_me(session, principal, data)


@router.post("/users", status_code=status.HTTP_201_CREATED, response_model=UserRead)
async def create_user(
    data: UserCreate, session: DbSession, principal: CurrentUser, request: Request, upstreams: UpstreamPool
) -> User:
    authorization = request.headers.get("authorization", "")

    async def find_organisation(organisation_id: uuid.UUID) -> dict[str, Any] | None:
        # Asked with the caller's own token: offers decides what this person may see.
        return await clients.find_organisation(upstreams, organisation_id, authorization=authorization)

    return await service.create_user(session, principal=principal, data=data, find_organisation=find_organisation)


@router.get("/users", response_model=Page[UserRead])
async def list_users(
    session: DbSession,
    principal: CurrentUser,
    role: UserRole | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> Page[UserRead]:
    users, next_cursor = await service.list_users(session, principal=principal, role=role, limit=limit, cursor=cursor)
    return Page[UserRead](items=[UserRead.model_validate(user) for user in users], next_cursor=next_cursor)
