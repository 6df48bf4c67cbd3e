"""Who is calling: a verified token becomes a Principal. Services verify; only the gateway mints."""

from __future__ import annotations

import time
import uuid
from contextvars import ContextVar
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from fastapi import Depends, Request

from services.common.errors import Forbidden, Unauthorized
from services.common.messages import Text

SIGNING_ALGORITHM = "EdDSA"

# Who the request acts for, once its token is verified: the audit trail of every change names them.
acting_subject: ContextVar[str | None] = ContextVar("acting_subject", default=None)


class Role(StrEnum):
    OFFICER = "officer"
    ORG_MEMBER = "org_member"
    COORDINATOR = "coordinator"
    ADMIN = "admin"
    SERVICE = "service"


@dataclass(frozen=True, slots=True)
class Principal:
    subject: str
    role: Role
    username: str = ""
    village_code: str | None = None
    organisation_id: uuid.UUID | None = None
    region_code: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN

    def governs_region(self, code: str) -> bool:
        """True for an admin, or a coordinator whose jurisdiction prefix covers `code`."""
        if self.role is Role.ADMIN:
            return True
        return self.role is Role.COORDINATOR and bool(self.region_code) and code.startswith(self.region_code or "")

    def speaks_for_village(self, code: str) -> bool:
        return self.role is Role.OFFICER and self.village_code == code

    def belongs_to(self, organisation_id: uuid.UUID) -> bool:
        return self.role is Role.ORG_MEMBER and self.organisation_id == organisation_id


class TokenVerifier:
    """Checks signature, issuer, audience and expiry with the gateway's public key."""

    # A client sends the same token with every request until it expires: a token verified once
    # (the exact string, signature included) is remembered until its exp, saving the signature
    # check and claim parsing on every later request. Bounded; forgotten wholesale when full.
    MAX_REMEMBERED = 4096

    def __init__(self, public_key_pem: str, *, issuer: str, audience: str) -> None:
        self._key: str | Ed25519PublicKey = public_key_pem
        if public_key_pem:
            try:
                key = load_pem_public_key(public_key_pem.encode())
            except ValueError:
                pass  # PyJWT reports the bad key on use, as before
            else:
                if isinstance(key, Ed25519PublicKey):
                    self._key = key  # parsed once, not on every verify
        self._issuer = issuer
        self._audience = audience
        self._verified: dict[str, tuple[Principal, float]] = {}

    def verify(self, token: str) -> Principal:
        remembered = self._verified.get(token)
        if remembered is not None and time.time() < remembered[1]:
            return remembered[0]
        principal, expires = self._verify(token)
        if len(self._verified) >= self.MAX_REMEMBERED:
            self._verified.clear()
        self._verified[token] = principal, expires
        return principal

    def _verify(self, token: str) -> tuple[Principal, float]:
        if not self._key:
            raise Unauthorized(Text("服务未配置公钥，无法验证令牌。", "This service has no public key to verify tokens."))
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[SIGNING_ALGORITHM],
                issuer=self._issuer,
                audience=self._audience,
                options={"require": ["exp", "sub", "role", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthorized(Text("登录已过期，请重新登录。", "Your session has expired; sign in again.")) from exc
        except jwt.PyJWTError as exc:
            raise Unauthorized(Text("令牌无效。", "The token is not valid.")) from exc
        return principal_from_claims(claims), float(claims["exp"])


def principal_from_claims(claims: dict[str, Any]) -> Principal:
    try:
        role = Role(claims["role"])
        organisation = claims.get("organisation_id")
        return Principal(
            subject=str(claims["sub"]),
            role=role,
            username=str(claims.get("username", "")),
            village_code=claims.get("village_code"),
            organisation_id=uuid.UUID(organisation) if organisation else None,
            region_code=claims.get("region_code"),
        )
    except (KeyError, ValueError) as exc:
        raise Unauthorized(Text("令牌内容无效。", "The token's claims are not valid.")) from exc


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


# The dependencies are `async def` though they never await: FastAPI runs a plain `def` dependency in its
# threadpool, and under load each such hop waits for the GIL behind the event loop (up to the 5 ms switch
# interval), which cost more than everything else a read does.
async def current_principal(request: Request) -> Principal:
    token = bearer_token(request)
    if token is None:
        raise Unauthorized(
            Text("请提供 Authorization: Bearer 令牌。", "Send an Authorization: Bearer token."),
            headers={"WWW-Authenticate": "Bearer"},
        )
    verifier: TokenVerifier = request.app.state.token_verifier
    principal = verifier.verify(token)
    acting_subject.set(principal.subject)
    return principal


async def user_principal(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
    """A person: service credentials are for internal endpoints only."""
    if principal.role is Role.SERVICE:
        raise Forbidden(Text("服务凭据不能用于此接口。", "Service credentials cannot be used here."))
    return principal


async def service_principal(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
    if principal.role is not Role.SERVICE:
        raise Forbidden(Text("此为内部接口，仅限服务调用。", "This is an internal endpoint for services only."))
    return principal


CurrentUser = Annotated[Principal, Depends(user_principal)]
ServiceCaller = Annotated[Principal, Depends(service_principal)]
