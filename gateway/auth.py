"""Passwords (argon2) and tokens (EdDSA JWTs). The gateway is the only holder of the private key."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from services.common.identity import SIGNING_ALGORITHM, Role
from services.common.messages import Text
from services.common.settings import JWT_AUDIENCE, JWT_ISSUER

# --- usernames and the password policy ------------------------------------------------------

USERNAME_MIN, USERNAME_MAX = 3, 50
USERNAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._@-]*$")
PASSWORD_MIN, PASSWORD_MAX = 10, 128


def normalise_username(raw: str) -> str:
    """Usernames are compared without case, so 'Wang' and 'wang' cannot be two people."""
    return raw.strip().lower()


def username_problem(username: str) -> Text | None:
    if not USERNAME_MIN <= len(username) <= USERNAME_MAX:
        return Text(f"用户名须为 {USERNAME_MIN} 到 {USERNAME_MAX} 个字符", f"A username has {USERNAME_MIN} to {USERNAME_MAX} characters")
    if not USERNAME_PATTERN.match(username):
        return Text(
            "用户名只能包含字母、数字和 . _ - @，且以字母或数字开头",
            "A username may hold letters, digits and . _ - @, starting with a letter or digit",
        )
    return None



def password_problem(username: str | None, password: str) -> Text | None:
    """The first rule a password breaks, or None. Never echoes the password."""
    if len(password) < PASSWORD_MIN:
        return Text(f"密码至少 {PASSWORD_MIN} 个字符", f"A password has at least {PASSWORD_MIN} characters")
    if len(password) > PASSWORD_MAX:
        return Text(f"密码最多 {PASSWORD_MAX} 个字符", f"A password has at most {PASSWORD_MAX} characters")
    if password.isdigit():
        return Text("密码不能全是数字", "A password cannot be digits only")
    if username and password.strip().lower() == username.strip().lower():
        return Text("密码不能与用户名相同", "A password cannot be the username")
    return None



# --- hashing --------------------------------------------------------------------------------

_hasher = PasswordHasher()


async def hash_password(password: str) -> str:
    # argon2 is deliberately slow and memory-hard: keep it off the event loop.
    return await asyncio.to_thread(_hasher.hash, password)


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


async def verify_password(password_hash: str | None, password: str) -> bool:
    """Checks against a throwaway hash when there is no user, so an unknown name takes as long as a known one."""
    if password_hash is None:
        await asyncio.to_thread(_verify, _dummy_hash(), password)
        return False
    return await asyncio.to_thread(_verify, password_hash, password)


def needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return _hasher.hash(uuid.uuid4().hex)


# --- tokens ---------------------------------------------------------------------------------

def _mint(private_pem: str, claims: dict[str, Any], ttl_seconds: int) -> str:
    now = datetime.now(UTC)
    payload = {
        **claims,
        "iss": JWT_ISSUER,
        "aud": JWT_AUDIENCE,
        "iat": now,
        "exp": now + timedelta(seconds=ttl_seconds),
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(payload, private_pem, algorithm=SIGNING_ALGORITHM)


def mint_user_token(
    private_pem: str,
    *,
    user_id: uuid.UUID,
    username: str,
    role: str,
    ttl_seconds: int,
    village_code: str | None = None,
    organisation_id: uuid.UUID | None = None,
    region_code: str | None = None,
    scopes: Iterable[str] = (),
) -> str:
    """A person's token: who they are, their role, and the village, organisation or region they act for."""
    claims: dict[str, Any] = {"sub": str(user_id), "role": role, "username": username}
    optional = {
        "village_code": village_code,
        "organisation_id": str(organisation_id) if organisation_id else None,
        "region_code": region_code,
    }
    claims.update({name: value for name, value in optional.items() if value is not None})
    scope = " ".join(sorted(set(scopes)))
    if scope:
        claims["scope"] = scope  # OAuth2's space-separated form
    return _mint(private_pem, claims, ttl_seconds)


def mint_service_token(private_pem: str, service_name: str, ttl: int) -> str:
    """Credentials for a service (e.g. matching) calling other services' internal endpoints."""
    claims = {"sub": f"service:{service_name}", "role": Role.SERVICE.value, "username": service_name}
    return _mint(private_pem, claims, ttl)


# --- service clients (OAuth2 client credentials) --------------------------------------------

SERVICE_CLIENT_PATTERN = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")
SERVICE_SECRET_MIN = 16


def parse_service_clients(raw: str) -> dict[str, str]:
    """`name:secret[,name:secret…]` → {name: secret}; a ValueError that names the rule, never a secret."""
    clients: dict[str, str] = {}
    for entry in filter(None, (part.strip() for part in raw.split(","))):
        name, colon, secret = entry.partition(":")
        name = name.strip()
        if not colon or not SERVICE_CLIENT_PATTERN.match(name):
            raise ValueError("DUIJIE_GATEWAY_SERVICE_CLIENTS must be name:secret pairs separated by commas (e.g. matching:…)")
        if len(secret) < SERVICE_SECRET_MIN:
            raise ValueError(f"DUIJIE_GATEWAY_SERVICE_CLIENTS: the secret of {name!r} has fewer than {SERVICE_SECRET_MIN} characters")
        if name in clients:
            raise ValueError(f"DUIJIE_GATEWAY_SERVICE_CLIENTS names {name!r} twice")
        clients[name] = secret
    return clients


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode()).digest()


def service_client_valid(clients: Mapping[str, str], client_id: str, client_secret: str) -> bool:
    """True when the secret is the client's. Compares fixed-length digests in constant time, and does the
    same work for an unknown client, so neither the secret nor which clients exist leaks through timing."""
    expected = clients.get(client_id)
    matches = hmac.compare_digest(_digest(expected if expected is not None else "\0unknown-client"), _digest(client_secret))
    return expected is not None and matches
