"""The data commands' side of HTTP: options, sign-in through the gateway, requests, problem+json on screen.

Messages are Chinese first: `--lang zh` or `--lang en` picks one language (and is sent as Accept-Language,
so the API's problems come back in it); without it LC_ALL / LC_MESSAGES / LANG decide, and a locale that
is neither Chinese nor English shows both ("中文 / English").
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.table import Table

DEFAULT_URL = "http://127.0.0.1:8000"

# Exit codes: 1 the platform refused or failed the work, 2 bad usage (typer's), 3 not signed in, 4 unreachable.
EXIT_FAILED = 1
EXIT_AUTH = 3
EXIT_UNREACHABLE = 4


class Lang(StrEnum):
    zh = "zh"
    en = "en"


UrlOption = Annotated[str, typer.Option("--url", envvar="DUIJIE_URL", help="The gateway / 网关地址.",
                                        rich_help_panel="Connection / 连接")]
UserOption = Annotated[str | None, typer.Option("--user", "-u", envvar="DUIJIE_USER", help="Username / 用户名.",
                                                rich_help_panel="Connection / 连接")]
PasswordOption = Annotated[str | None, typer.Option(
    "--password", envvar="DUIJIE_PASSWORD", help="Asked for (hidden) when missing / 未给出时提示输入（不回显）.",
    rich_help_panel="Connection / 连接", show_default=False)]
TokenOption = Annotated[str | None, typer.Option("--token", envvar="DUIJIE_TOKEN", show_default=False,
                                                 help="A bearer token instead of --user / 用令牌代替用户名密码.",
                                                 rich_help_panel="Connection / 连接")]
LangOption = Annotated[Lang | None, typer.Option("--lang", case_sensitive=False, show_default=False,
                                                 help="zh or en (default: LANG; both when neither) / 界面语言.",
                                                 rich_help_panel="Connection / 连接")]


def detect_lang(option: Lang | None, environ: Mapping[str, str] | None = None) -> Lang | None:
    """--lang, else the POSIX locale variables; None means "both languages"."""
    if option is not None:
        return option
    env = os.environ if environ is None else environ
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = env.get(name, "").strip().lower()
        if value:
            if value.startswith("zh"):
                return Lang.zh
            if value.startswith("en"):
                return Lang.en
            return None
    return None


@dataclass
class Ui:
    """The two consoles (results on stdout, progress and errors on stderr) and the language of messages."""

    lang: Lang | None
    out: Console = field(default_factory=lambda: Console(highlight=False))
    err: Console = field(default_factory=lambda: Console(stderr=True, highlight=False))

    def __call__(self, zh: str, en: str) -> str:
        if self.lang is Lang.zh:
            return zh
        if self.lang is Lang.en:
            return en
        return f"{zh} / {en}"

    @property
    def accept_language(self) -> str:
        return {Lang.zh: "zh-CN, zh;q=0.9", Lang.en: "en"}.get(self.lang, "zh-CN, zh;q=0.9, en;q=0.8")  # type: ignore[arg-type]

    def ok(self, message: str) -> None:
        self.out.print(f"[green]✓[/] {message}")

    def warn(self, message: str) -> None:
        self.err.print(f"[yellow]{self('注意', 'warning')}:[/] {message}")

    def fail(self, message: str, code: int = EXIT_FAILED) -> typer.Exit:
        self.err.print(f"[bold red]{self('错误', 'error')}:[/] {message}")
        return typer.Exit(code)


@dataclass(frozen=True)
class Connection:
    url: str
    user: str | None
    password: str | None
    token: str | None
    lang: Lang | None


class ApiError(Exception):
    """A response the command cannot go on with; carries the problem+json body when there is one."""

    def __init__(self, response: httpx.Response, problem: dict[str, Any]) -> None:
        self.status = response.status_code
        self.problem = problem
        self.request_id = response.headers.get("x-request-id")
        self.endpoint = f"{response.request.method} {response.request.url.path}"
        super().__init__(f"{self.status} {problem.get('title', '')}")


def problem_of(response: httpx.Response) -> dict[str, Any]:
    """The body as a problem (a plain body, e.g. from a proxy in between, becomes its detail)."""
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip()
        return {"title": response.reason_phrase or str(response.status_code), "status": response.status_code,
                "detail": text[:500]}
    if isinstance(body, dict):
        if isinstance(body.get("detail"), list):  # FastAPI's own shape, if a service ever answers with it
            body = {**body, "errors": body["detail"], "detail": ""}
        return body
    return {"title": str(response.status_code), "status": response.status_code, "detail": str(body)[:500]}


def raise_for_problem(response: httpx.Response) -> httpx.Response:
    if response.is_success:
        return response
    if not response.is_stream_consumed:
        response.read()
    raise ApiError(response, problem_of(response))


class Api:
    """A signed-in httpx client on the gateway."""

    def __init__(self, http: httpx.Client, ui: Ui) -> None:
        self.http = http
        self.ui = ui

    def sign_in(self, connection: Connection) -> None:
        if connection.token:
            self.http.headers["Authorization"] = f"Bearer {connection.token}"
            return
        if not connection.user:
            raise self.ui.fail(self.ui("请用 --user（或环境变量 DUIJIE_USER）或 --token（DUIJIE_TOKEN）登录。",
                                       "sign in with --user (or DUIJIE_USER) or --token (DUIJIE_TOKEN)."), EXIT_AUTH)
        password = connection.password
        if password is None:
            password = typer.prompt(self.ui("密码", "Password"), hide_input=True, err=True)
        response = self.http.post("/auth/token", data={"username": connection.user, "password": password})
        if response.status_code in (400, 401, 403, 429):
            problem = problem_of(response)
            self.ui.err.print(f"[bold red]{self.ui('登录失败', 'sign-in failed')}:[/] "
                              f"{problem.get('detail') or problem.get('title') or response.status_code}")
            self.ui.err.print(self.ui(f"（用户 {connection.user}，网关 {connection.url}）",
                                      f"(user {connection.user}, gateway {connection.url})"))
            raise typer.Exit(EXIT_AUTH)
        raise_for_problem(response)
        self.http.headers["Authorization"] = f"Bearer {response.json()['access_token']}"

    def get(self, path: str, **kwargs: Any) -> Any:
        return raise_for_problem(self.http.get(path, **kwargs)).json()

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return raise_for_problem(self.http.post(path, **kwargs))


@contextmanager
def connect(connection: Connection, *, read_timeout: float = 300.0) -> Iterator[Api]:
    """Signs in, yields the client, and turns any refusal or network failure into a message and an exit code."""
    ui = Ui(connection.lang)
    timeout = httpx.Timeout(30.0, read=read_timeout, write=read_timeout)
    headers = {"Accept-Language": ui.accept_language, "User-Agent": "duijie-cli"}
    try:
        with httpx.Client(base_url=connection.url.rstrip("/"), timeout=timeout, headers=headers, trust_env=False) as http:
            api = Api(http, ui)
            api.sign_in(connection)
            yield api
    except ApiError as exc:
        print_problem(ui, exc)
        raise typer.Exit(EXIT_AUTH if exc.status == 401 else EXIT_FAILED) from None
    except httpx.ConnectError as exc:
        raise ui.fail(ui(f"无法连接网关 {connection.url}（{exc}）。平台是否已启动（duijie up）？",
                         f"cannot reach the gateway at {connection.url} ({exc}). Is the platform running (duijie up)?"),
                      EXIT_UNREACHABLE) from None
    except httpx.TimeoutException:
        raise ui.fail(ui(f"网关 {connection.url} 响应超时。", f"the gateway at {connection.url} timed out."),
                      EXIT_UNREACHABLE) from None
    except httpx.HTTPError as exc:
        raise ui.fail(ui(f"与网关通信出错：{exc}", f"talking to the gateway failed: {exc}"), EXIT_UNREACHABLE) from None


def print_problem(ui: Ui, error: ApiError) -> None:
    """Title and detail; the `errors` list (field or row errors) as a table."""
    problem = error.problem
    title = problem.get("title") or str(error.status)
    ui.err.print(f"[bold red]{ui('错误', 'error')} {error.status}:[/] [bold]{title}[/]")
    detail = problem.get("detail")
    if detail and detail != title:
        ui.err.print(str(detail))
    errors = problem.get("errors")
    if isinstance(errors, list) and errors:
        rows = [item if isinstance(item, dict) else {"message": item} for item in errors]
        ui.err.print(records_table(rows, title=ui("逐项错误", "Errors"), columns=_error_columns(rows)))
        total = problem.get("error_count")
        if isinstance(total, int) and total > len(rows):
            ui.err.print(ui(f"（仅列出前 {len(rows)} 处，共 {total} 处）", f"(the first {len(rows)} of {total} shown)"))
    if error.status in (404, 405) and (not detail or detail == title):  # the path itself, not a record, is unknown
        ui.err.print(ui(f"网关 {error.endpoint} 不存在：平台版本是否比此命令旧？",
                        f"the gateway has no {error.endpoint}: is the platform older than this command?"))
    if error.request_id:
        ui.err.print(f"[dim]X-Request-ID: {error.request_id}[/]")


def _error_columns(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    preferred = ["row", "column", "field", "message"]
    keys = columns_of(rows)
    return [key for key in preferred if key in keys] + [key for key in keys if key not in preferred]


# --- tables -----------------------------------------------------------------------------------------------

def columns_of(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Every key of the rows, in order of first appearance."""
    seen: dict[str, None] = {}
    for row in rows:
        for key in row:
            seen.setdefault(str(key), None)
    return list(seen)


def cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "✓" if value else "✗"
    if isinstance(value, float):
        return f"{value:,.4f}".rstrip("0").rstrip(".") if not value.is_integer() else cell(int(value))
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10_000 else str(value)  # 2025 is a year more often than an amount
    if isinstance(value, list):
        return "、".join(cell(item) for item in value)
    if isinstance(value, dict):
        return ", ".join(f"{key}={cell(item)}" for key, item in value.items())
    return str(value)


def records_table(rows: Sequence[Mapping[str, Any]], *, title: str | None = None, columns: Sequence[str] | None = None) -> Table:
    columns = list(columns or columns_of(rows))
    table = Table(title=title, title_justify="left")
    for column in columns:
        numeric = all(isinstance(row.get(column), int | float) and not isinstance(row.get(column), bool)
                      for row in rows if row.get(column) is not None)
        table.add_column(column, justify="right" if numeric and rows else "left", overflow="fold")
    for row in rows:
        table.add_row(*(cell(row.get(column)) for column in columns))
    return table


def pairs_table(pairs: Sequence[tuple[str, Any]], *, title: str | None = None) -> Table:
    table = Table(title=title, title_justify="left", show_header=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for key, value in pairs:
        table.add_row(key, cell(value))
    return table
