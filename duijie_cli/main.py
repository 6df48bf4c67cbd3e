"""`duijie`: run the whole platform on one machine, migrate databases, create users.

    duijie up [--demo] [--port 8000] [--data-dir var] [--host 127.0.0.1]
    duijie migrate [--service all|needs|offers|matching|gateway]
    duijie users create --username NAME --role admin|coordinator|officer|org_member [--password …]
    duijie import|export|match-run|report …   (through a running gateway: duijie_cli/data.py)
"""

from __future__ import annotations

import asyncio
import os
import uuid
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from duijie_cli import data as data_commands
from duijie_cli import demo as demo_module
from duijie_cli import keys, stack
from duijie_cli.demo import Login
from duijie_cli.processes import Interrupted, StartupError, StopRequested, Supervisor

app = typer.Typer(help="Duijie (对接): village needs meet social organisations' offers.", no_args_is_help=True,
                  add_completion=False)
users_app = typer.Typer(help="Users of the gateway database.", no_args_is_help=True)
app.add_typer(users_app, name="users")
data_commands.register(app)
console = Console(highlight=False)
err = Console(stderr=True, highlight=False)

DataDir = Annotated[Path, typer.Option("--data-dir", help="Keys, SQLite databases and logs live here.",
                                       envvar="DUIJIE_DATA_DIR")]


class ServiceChoice(StrEnum):
    all = "all"
    needs = "needs"
    offers = "offers"
    matching = "matching"
    gateway = "gateway"


def _fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code)


def _migrate(services: list[str], data_dir: Path) -> None:
    from services.common import migrate

    for name in services:
        url = stack.database_url(name, data_dir)
        try:
            migrate.upgrade(name, url)
        except Exception as exc:
            raise _fail(f"migrating {name} ({_redacted(url)}) failed: {exc}") from exc
        console.print(f"[green]✓[/] migrated [bold]{name}[/] ({_redacted(url)})")


def _redacted(url: str) -> str:
    """A database URL without its password, for messages."""
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not at or ":" not in credentials:
        return url
    return f"{scheme}{sep}{credentials.partition(':')[0]}:***@{host}"


@app.command()
def migrate(
    service: Annotated[ServiceChoice, typer.Option(help="Which database to bring to head.")] = ServiceChoice.all,
    data_dir: DataDir = Path("var"),
) -> None:
    """Bring databases to the latest migration (DUIJIE_<SERVICE>_DATABASE_URL, else SQLite under --data-dir)."""
    deployed = stack.deployed_services()
    if service is ServiceChoice.all:
        chosen = deployed
    elif service.value not in deployed:
        raise _fail(f"{service.value} has no app or migrations in this build")
    else:
        chosen = [service.value]
    if any(stack.database_url(name, data_dir).startswith("sqlite") for name in chosen):
        data_dir.mkdir(parents=True, exist_ok=True)  # SQLite files live there; PostgreSQL needs no directory
    _migrate(chosen, data_dir)


@app.command()
def up(
    port: Annotated[int, typer.Option(help="The gateway's port; needs, offers and matching take the next three.")] = 8000,
    data_dir: DataDir = Path("var"),
    demo: Annotated[bool, typer.Option("--demo", help="Load demo data from the source reports and print demo logins.")] = False,
    host: Annotated[str, typer.Option(help="Interface every app listens on (loopback by default).")] = "127.0.0.1",
    ready_timeout: Annotated[float, typer.Option(help="Seconds to wait for every /readyz.")] = 60.0,
) -> None:
    """Migrate, start gateway + services as separate processes, wait until ready; Ctrl-C stops them all."""
    data_dir.mkdir(parents=True, exist_ok=True)
    data_dir = data_dir.resolve()
    try:
        secrets = keys.load_or_create(data_dir)
    except ValueError as exc:
        raise _fail(str(exc)) from exc
    console.print(f"[green]✓[/] signing key from {secrets.source}")

    bootstrap = os.environ.get("DUIJIE_BOOTSTRAP_ADMIN", "").strip() or None
    logins = demo_module.demo_logins(data_dir, bootstrap) if demo else None
    if logins is not None and bootstrap is None:
        admin = logins["admin"]
        bootstrap = f"{admin.username}:{admin.password}"

    specs = stack.plan(data_dir=data_dir, host=host, port=port, secrets=secrets, bootstrap_admin=bootstrap)
    supervisor = Supervisor(specs, data_dir)
    with StopRequested() as stop:
        try:
            supervisor.check_ports()
            _migrate([spec.name for spec in specs], data_dir)
            supervisor.start()
            supervisor.wait_ready(
                ready_timeout,
                on_ready=lambda child: console.print(f"[green]✓[/] {child.name} ready on {child.spec.url}"),
                cancel=stop.event,
            )
            gateway_url = supervisor.child("gateway").spec.url
            if logins is not None:
                loader = demo_module.load_demo(gateway_url, logins)
                created = ", ".join(f"{n} {k}" for k, n in sorted(loader.created.items())) or "nothing new"
                kept = sum(loader.existing.values())
                console.print(f"[green]✓[/] demo data: created {created}" + (f"; {kept} already there" if kept else ""))
                for warning in loader.warnings:
                    console.print(f"[yellow]warning:[/] {warning}")
        except (StartupError, demo_module.DemoError) as exc:
            supervisor.stop()
            raise _fail(str(exc)) from exc
        except Interrupted:
            supervisor.stop()
            console.print("[green]✓[/] stopped before everything was ready")
            raise typer.Exit(0) from None
        except BaseException:
            supervisor.stop()
            raise
        _print_running(specs, data_dir, logins, bootstrap is not None)
        while not stop.event.wait(0.25):
            dead = supervisor.first_dead()
            if dead is None:
                continue
            failure = supervisor.failure(dead, f"stopped unexpectedly (status {dead.exit_code()})")
            if supervisor.restart(dead):
                err.print(f"[yellow]warning:[/] {failure}\n[yellow]restarting {dead.name}[/]")
                continue
            supervisor.stop()
            raise _fail(f"{failure}\n(it died {len(dead.restarts)} times within a minute; stopped everything)")
        console.print("stopping…")
        supervisor.stop()
    console.print("[green]✓[/] stopped every app")


def _print_running(specs: list[stack.AppSpec], data_dir: Path, logins: dict[str, Login] | None, has_admin: bool) -> None:
    gateway = next(spec for spec in specs if spec.name == "gateway")
    table = Table(title="对接 Duijie is running", title_justify="left", show_header=False)
    table.add_row("gateway", gateway.url)
    table.add_row("API docs", f"{gateway.url}/docs")
    table.add_row("OpenAPI", f"{gateway.url}/openapi.json")
    for spec in specs:
        if spec.name != "gateway":
            table.add_row(spec.name, f"{spec.url} (internal)")
    table.add_row("data, logs", f"{data_dir}, {data_dir / 'logs'}")
    console.print(table)
    if logins is not None:
        people = Table(title="Demo logins (POST /auth/token)", title_justify="left")
        for column in ("role", "username", "password", "acts for"):
            people.add_column(column)
        for login in logins.values():
            people.add_row(login.role, login.username, login.password, login.scope)
        console.print(people)
        console.print(f"(kept in {data_dir / 'demo-logins.json'}, readable by you only)")
    elif not has_admin:
        console.print("[yellow]No DUIJIE_BOOTSTRAP_ADMIN given:[/] if there is no admin yet, create one with "
                      "`duijie users create --role admin --username …`, or start with --demo.")
    console.print("Press Ctrl-C to stop.")


@users_app.command("create")
def users_create(
    username: Annotated[str, typer.Option(help="3-50 characters: a-z, 0-9, . _ @ -")],
    role: Annotated[str, typer.Option(help="admin, coordinator, officer or org_member")],
    password: Annotated[str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True,
                                          help="Asked for when not given (never echoed).")],
    village_code: Annotated[str | None, typer.Option(help="An officer's 12-digit village code.")] = None,
    region_code: Annotated[str | None, typer.Option(help="A coordinator's region prefix (2, 4, 6 or 9 digits).")] = None,
    organisation_id: Annotated[str | None, typer.Option(help="An organisation member's organisation id.")] = None,
    display_name: Annotated[str, typer.Option()] = "",
    data_dir: DataDir = Path("var"),
) -> None:
    """Create a user directly in the gateway database (e.g. the first admin on a server)."""
    from gateway.schemas import UserCreate
    from gateway.service import check_role_fields
    from services.common.errors import AppError

    try:
        data = UserCreate(username=username, password=password, role=role, village_code=village_code,  # type: ignore[arg-type]
                          region_code=region_code, organisation_id=uuid.UUID(organisation_id) if organisation_id else None,
                          display_name=display_name)
        check_role_fields(data)
    except ValidationError as exc:
        raise _fail("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())) from exc
    except AppError as exc:
        errors = getattr(exc, "errors", None) or []
        raise _fail("; ".join(f"{e.field}: {e.message}" for e in errors) or str(exc)) from exc
    except ValueError as exc:
        raise _fail(f"organisation-id: {exc}") from exc
    url = stack.database_url("gateway", data_dir)
    try:
        user_id = asyncio.run(_create_user(url, data))
    except ValueError as exc:
        raise _fail(str(exc)) from exc
    console.print(f"[green]✓[/] created {data.role} [bold]{data.username}[/] ({user_id}) in {_redacted(url)}")
    if data.organisation_id is not None:
        console.print("[yellow]note:[/] the organisation id was not checked against the offers service")


async def _create_user(url: str, data: object) -> uuid.UUID:
    from gateway import auth, repository
    from gateway.models import User
    from gateway.schemas import UserCreate
    from services.common.db import Database

    assert isinstance(data, UserCreate)
    database = Database(url)
    try:
        password_hash = await auth.hash_password(data.password.get_secret_value())
        async with database.transaction() as session:
            if await repository.username_taken(session, data.username):
                raise ValueError(f"the username {data.username!r} is taken")
            user = User(
                id=uuid.uuid4(), username=data.username, password_hash=password_hash, role=data.role, scopes=[],
                display_name=data.display_name or data.username, locale=data.locale, village_code=data.village_code,
                organisation_id=data.organisation_id, region_code=data.region_code, active=True,
            )
            repository.add_user(session, user)
        return user.id
    finally:
        await database.dispose()


if __name__ == "__main__":
    app()
