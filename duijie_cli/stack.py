"""The platform as processes: which apps run, on which ports, with which databases and settings."""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from duijie_cli.keys import Secrets

PROJECT_ROOT = Path(__file__).resolve().parents[1]
# Start order: the services first, the gateway (which calls them) last. Port = base port + offset.
APPS: tuple[tuple[str, str, int], ...] = (
    ("needs", "services.needs.app:create_app", 1),
    ("offers", "services.offers.app:create_app", 2),
    ("matching", "services.matching.app:create_app", 3),
    ("gateway", "gateway.app:create_app", 0),
)
SERVICES = tuple(name for name, _, _ in APPS)  # every database, in migration order


def is_deployed(name: str) -> bool:
    """An app runs once its code and migrations exist (matching arrives after the others)."""
    module = dict((n, t) for n, t, _ in APPS)[name].partition(":")[0]
    try:
        found = importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        found = False
    return found and (PROJECT_ROOT / "migrations" / name / "env.py").exists()


def deployed_services() -> list[str]:
    return [name for name in SERVICES if is_deployed(name)]


def connect_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "") else host


def env_prefix(name: str) -> str:
    return f"DUIJIE_{name.upper()}_"


def database_url(name: str, data_dir: Path, environ: Mapping[str, str] = os.environ) -> str:
    """DUIJIE_<SERVICE>_DATABASE_URL when set, else a SQLite file under the data directory."""
    given = environ.get(f"{env_prefix(name)}DATABASE_URL", "").strip()
    for plain in ("postgresql://", "postgres://"):  # the services speak asyncpg
        if given.startswith(plain):
            given = "postgresql+asyncpg://" + given[len(plain):]
    return given or f"sqlite+aiosqlite:///{(data_dir / f'{name}.db').resolve()}"


@dataclass
class AppSpec:
    name: str
    target: str
    host: str
    port: int
    env: dict[str, str] = field(repr=False)
    access_log: bool = True

    @property
    def url(self) -> str:
        """Where to reach it: an app bound to every interface is reached on loopback."""
        return f"http://{connect_host(self.host)}:{self.port}"

    def argv(self) -> list[str]:
        argv = [
            sys.executable, "-m", "uvicorn", "--factory", self.target,
            "--host", self.host, "--port", str(self.port), "--timeout-graceful-shutdown", "5",
        ]
        return argv if self.access_log else [*argv, "--no-access-log"]


def _inherited(name: str, environ: Mapping[str, str]) -> dict[str, str]:
    """The parent's environment minus every other app's DUIJIE_ settings (each app sees only its own secrets)."""
    own = env_prefix(name)
    return {
        key: value for key, value in environ.items()
        if not key.startswith("DUIJIE_") or key.startswith(own) or (name == "gateway" and key == "DUIJIE_BOOTSTRAP_ADMIN")
    }


def plan(
    *,
    data_dir: Path,
    host: str,
    port: int,
    secrets: Secrets,
    bootstrap_admin: str | None,
    environ: Mapping[str, str] = os.environ,
    access_log: bool = True,
    services: list[str] | None = None,
) -> list[AppSpec]:
    """One AppSpec per deployed app, in start order, each with exactly the settings it needs."""
    running = services if services is not None else deployed_services()
    urls = {name: f"http://{connect_host(host)}:{port + offset}" for name, _, offset in APPS}
    specs = []
    for name, target, offset in APPS:
        if name not in running:
            continue
        prefix = env_prefix(name)
        env = _inherited(name, environ)
        env.update({
            "PYTHONUNBUFFERED": "1",
            f"{prefix}DATABASE_URL": database_url(name, data_dir, environ),
            f"{prefix}JWT_PUBLIC_KEY": secrets.public_pem,
        })
        if name == "matching":
            env.update({
                f"{prefix}NEEDS_URL": urls["needs"],
                f"{prefix}OFFERS_URL": urls["offers"],
                f"{prefix}GATEWAY_URL": urls["gateway"],
                f"{prefix}SERVICE_CLIENT_SECRET": secrets.service_client_secret,
            })
        if name == "gateway":
            env.update({
                f"{prefix}JWT_PRIVATE_KEY": secrets.private_pem,
                f"{prefix}SERVICE_CLIENTS": f"matching:{secrets.service_client_secret}",
            })
            for upstream in ("needs", "offers", "matching"):
                env[f"{prefix}{upstream.upper()}_URL"] = urls[upstream] if upstream in running else ""
            if bootstrap_admin:
                env["DUIJIE_BOOTSTRAP_ADMIN"] = bootstrap_admin
        specs.append(AppSpec(name=name, target=target, host=host, port=port + offset, env=env, access_log=access_log))
    return specs
