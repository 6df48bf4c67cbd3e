"""The secrets a local run needs, made once and kept under `<data-dir>/keys/` (owner-only)."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

PRIVATE_KEY_ENV = "DUIJIE_GATEWAY_JWT_PRIVATE_KEY"
SERVICE_SECRET_ENV = "DUIJIE_MATCHING_SERVICE_CLIENT_SECRET"
PRIVATE_KEY_FILE = "jwt-private.pem"
PUBLIC_KEY_FILE = "jwt-public.pem"
SERVICE_SECRET_FILE = "matching-client-secret"


@dataclass(frozen=True)
class Secrets:
    private_pem: str
    public_pem: str
    service_client_secret: str
    source: str  # "environment" or the directory they were read from / written to


def public_pem_of(private_pem: str) -> str:
    key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{PRIVATE_KEY_ENV} must be an Ed25519 private key (PKCS8 PEM)")
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def new_private_pem() -> str:
    return Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def write_private(path: Path, content: str) -> None:
    """Create `path` readable by its owner only, from the first byte (no window with wider rights)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(content)
    os.chmod(path, 0o600)


def _read_or_make(path: Path, make: str) -> str:
    if path.exists():
        return path.read_text(encoding="utf-8")
    write_private(path, make)
    return make


def load_or_create(data_dir: Path, environ: dict[str, str] | os._Environ[str] = os.environ) -> Secrets:
    """Keys from the environment when given there, else from `<data-dir>/keys/`, made on first use."""
    keys_dir = data_dir / "keys"
    private_pem = environ.get(PRIVATE_KEY_ENV, "").strip()
    if private_pem:
        source = "environment"
    else:
        keys_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(keys_dir, 0o700)
        private_pem = _read_or_make(keys_dir / PRIVATE_KEY_FILE, new_private_pem())
        source = str(keys_dir)
    public_pem = public_pem_of(private_pem)
    if source != "environment":
        public_path = keys_dir / PUBLIC_KEY_FILE
        if not public_path.exists() or public_path.read_text(encoding="utf-8") != public_pem:
            public_path.write_text(public_pem, encoding="utf-8")
    secret = environ.get(SERVICE_SECRET_ENV, "").strip()
    if not secret:
        keys_dir.mkdir(parents=True, exist_ok=True)
        secret = _read_or_make(keys_dir / SERVICE_SECRET_FILE, secrets.token_urlsafe(32)).strip()
    return Secrets(private_pem=private_pem, public_pem=public_pem, service_client_secret=secret, source=source)
