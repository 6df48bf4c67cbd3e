"""compose.yaml and the Dockerfile: they parse, name every service and database, and hold no secret."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
APPS = ("needs", "offers", "matching", "gateway")
SECRET_NAME = re.compile(r"(KEY|SECRET|PASSWORD|BOOTSTRAP_ADMIN)")
INTERPOLATION = re.compile(r"\$\{(?P<name>[A-Z0-9_]+)(?P<op>:?[-?+])?(?P<arg>[^}]*)\}")


@pytest.fixture(scope="module")
def text() -> str:
    return (ROOT / "compose.yaml").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def compose(text: str) -> dict[str, Any]:
    parsed: dict[str, Any] = yaml.safe_load(text)
    return parsed


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


def test_every_service_is_there(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {"postgres", "migrate", *APPS}


def test_postgres_has_a_database_per_service_and_a_healthcheck(compose: dict[str, Any]) -> None:
    postgres = compose["services"]["postgres"]
    assert postgres["image"].startswith("postgres:16")
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    mounted = [volume.split(":")[0] for volume in postgres["volumes"] if "docker-entrypoint-initdb.d" in volume]
    assert len(mounted) == 1
    script = (ROOT / mounted[0]).read_text(encoding="utf-8")
    assert "for service in needs offers matching gateway" in script
    assert 'CREATE DATABASE :"db"' in script
    for app in APPS:
        assert f"DUIJIE_{app.upper()}_DB_PASSWORD" in postgres["environment"]


def test_each_app_uses_its_own_database_and_one_image(compose: dict[str, Any]) -> None:
    services = compose["services"]
    images = {services[name]["image"] for name in (*APPS, "migrate")}
    assert len(images) == 1
    for app in APPS:
        url = _env(services[app])[f"DUIJIE_{app.upper()}_DATABASE_URL"]
        assert url.startswith("postgresql+asyncpg://")
        assert url.endswith(f"@postgres:5432/duijie_{app}")
        assert f"duijie_{app}:" in url  # its own role
        assert _env(services["migrate"])[f"DUIJIE_{app.upper()}_DATABASE_URL"] == url
        assert "healthcheck" in services[app]
        assert services[app]["environment"]["APP"].endswith(":create_app")


def test_migrate_runs_once_after_postgres_and_before_the_apps(compose: dict[str, Any]) -> None:
    services = compose["services"]
    migrate = services["migrate"]
    assert migrate["command"][:2] == ["duijie", "migrate"]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    for app in APPS:
        assert services[app]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["gateway"]["depends_on"]["needs"]["condition"] == "service_healthy"


def test_only_the_gateway_is_published_on_8000(compose: dict[str, Any]) -> None:
    published = {name: service.get("ports") for name, service in compose["services"].items() if service.get("ports")}
    assert published == {"gateway": ["8000:8000"]}


def test_secrets_come_from_the_environment_without_defaults(compose: dict[str, Any], text: str) -> None:
    # No interpolated secret has a default (an empty one, "not set", only for the optional first admin).
    secrets = [match for match in INTERPOLATION.finditer(text) if SECRET_NAME.search(match["name"])]
    assert secrets
    for match in secrets:
        if match["name"] == "DUIJIE_BOOTSTRAP_ADMIN":
            assert match["op"] in (None, ":-", "-") and match["arg"] == "", match.group(0)
        else:
            assert match["op"] == ":?", f"{match.group(0)} must be required (${{NAME:?message}})"
    for name in ("DUIJIE_JWT_PRIVATE_KEY", "DUIJIE_JWT_PUBLIC_KEY", "DUIJIE_SERVICE_CLIENT_SECRET", "POSTGRES_PASSWORD"):
        assert f"${{{name}:?" in text
    # And no secret-named setting is a literal.
    for name, service in compose["services"].items():
        for key, value in _env(service).items():
            if SECRET_NAME.search(key) or "DATABASE_URL" in key:
                assert "${" in value, f"{name}.{key} is a literal"
    assert "BEGIN PRIVATE KEY" not in text


def test_the_gateway_and_matching_share_the_client_secret(compose: dict[str, Any]) -> None:
    gateway, matching = _env(compose["services"]["gateway"]), _env(compose["services"]["matching"])
    secret = matching["DUIJIE_MATCHING_SERVICE_CLIENT_SECRET"]
    assert gateway["DUIJIE_GATEWAY_SERVICE_CLIENTS"] == f"matching:{secret}"
    assert gateway["DUIJIE_GATEWAY_MATCHING_URL"] == "http://matching:8000"
    assert "DUIJIE_GATEWAY_JWT_PRIVATE_KEY" not in str(compose["services"]["needs"])


def test_dockerfile_builds_one_slim_image_run_by_a_non_root_user() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^FROM python:3\.11-slim", dockerfile, re.M)
    assert "pip install" in dockerfile
    user = re.findall(r"^USER (\S+)", dockerfile, re.M)
    assert user and user[-1] not in ("root", "0")
    assert "uvicorn --factory" in dockerfile
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    assert {".git", ".venv", "var"} <= set(ignored)


def _compose_available() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "compose", "version"], capture_output=True, check=False).returncode == 0


# Docker's own check of the file, where the compose plugin exists (not on this CI machine: the YAML tests
# above check the same file's structure there).
@pytest.mark.skipif(not _compose_available(), reason="docker compose is not installed on this machine")
def test_docker_compose_config_accepts_it(tmp_path: Path) -> None:
    env = {name: "x" for name in ("POSTGRES_PASSWORD", "DUIJIE_JWT_PRIVATE_KEY", "DUIJIE_JWT_PUBLIC_KEY",
                                  "DUIJIE_SERVICE_CLIENT_SECRET", *(f"DUIJIE_{a.upper()}_DB_PASSWORD" for a in APPS))}
    result = subprocess.run(["docker", "compose", "-f", str(ROOT / "compose.yaml"), "config", "--quiet"],
                            env={"PATH": "/usr/bin:/bin:/usr/local/bin", **env}, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
