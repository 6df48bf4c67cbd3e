"""Children under supervision: start, wait until ready, watch, and stop them cleanly."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx

from duijie_cli.stack import AppSpec

PR_SET_PDEATHSIG = 1


class StartupError(RuntimeError):
    """An app died or did not become ready; the message says which and shows its log."""


class Interrupted(RuntimeError):
    """SIGINT or SIGTERM arrived before the platform was up."""


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: the child gets SIGTERM if `duijie up` itself is killed, so no app outlives it."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.rstrip().splitlines()[-lines:])


@dataclass
class Child:
    spec: AppSpec
    log_path: Path
    pid_path: Path
    process: subprocess.Popen[bytes] | None = None
    restarts: list[float] = field(default_factory=list)
    _log: IO[bytes] | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.spec.name

    def start(self, append: bool = False) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.close_log()
        self._log = open(self.log_path, "ab" if append else "wb")  # noqa: SIM115 - open for the child's whole life
        self.process = subprocess.Popen(
            self.spec.argv(), env=self.spec.env, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
            # Its own session: a terminal's Ctrl-C reaches `duijie up` only, which then stops children in order.
            start_new_session=True, preexec_fn=_die_with_parent,
        )
        self.pid_path.parent.mkdir(parents=True, exist_ok=True)
        self.pid_path.write_text(f"{self.process.pid}\n", encoding="utf-8")

    def exit_code(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal(self, signum: int) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signum)  # the whole group: uvicorn and anything it spawned

    def close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def forget_pid(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.pid_path.unlink()


class Supervisor:
    """Runs a set of apps; `stop()` is safe to call at any time, more than once."""

    def __init__(self, specs: list[AppSpec], data_dir: Path) -> None:
        self.children = [
            Child(spec, data_dir / "logs" / f"{spec.name}.log", data_dir / "run" / f"{spec.name}.pid") for spec in specs
        ]
        self._stopped = False

    def child(self, name: str) -> Child:
        return next(child for child in self.children if child.name == name)

    def check_ports(self) -> None:
        busy = [f"{c.spec.host}:{c.spec.port} ({c.name})" for c in self.children if port_in_use(c.spec.host, c.spec.port)]
        if busy:
            raise StartupError("these ports are in use: " + ", ".join(busy) + "; choose another base port with --port")

    def start(self) -> None:
        for child in self.children:
            child.start()

    def failure(self, child: Child, why: str) -> StartupError:
        log_tail = tail(child.log_path)
        return StartupError(f"{child.name} {why}; its log ({child.log_path}) ends with:\n{log_tail or '(empty)'}")

    def wait_ready(
        self, timeout: float, on_ready: Callable[[Child], None] | None = None, cancel: threading.Event | None = None
    ) -> None:
        """Poll every /readyz until all answer 200; raise StartupError naming the first app that dies or lags."""
        pending = list(self.children)
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=2.0, trust_env=False) as client:
            while pending:
                if cancel is not None and cancel.is_set():
                    raise Interrupted("stopped while starting")
                for child in list(pending):
                    code = child.exit_code()
                    if code is not None:
                        raise self.failure(child, f"exited with status {code} while starting")
                    try:
                        ready = client.get(f"{child.spec.url}/readyz").status_code == 200
                    except httpx.HTTPError:
                        ready = False
                    if ready:
                        pending.remove(child)
                        if on_ready is not None:
                            on_ready(child)
                if not pending:
                    return
                if time.monotonic() > deadline:
                    raise self.failure(pending[0], f"was not ready after {timeout:.0f} s (GET {pending[0].spec.url}/readyz)")
                time.sleep(0.1)

    def first_dead(self) -> Child | None:
        return next((child for child in self.children if child.process is not None and not child.alive()), None)

    def restart(self, child: Child, *, limit: int = 3, window: float = 60.0) -> bool:
        """Start a child that died again, unless it already died `limit` times within `window` seconds."""
        now = time.monotonic()
        child.restarts = [at for at in child.restarts if now - at < window]
        if len(child.restarts) >= limit:
            return False
        child.restarts.append(now)
        child.start(append=True)
        return True

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM to every child (gateway first), wait up to `grace` seconds, then SIGKILL the rest."""
        if self._stopped:
            return
        self._stopped = True
        for child in reversed(self.children):
            child.signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for child in self.children:
            if child.process is None:
                continue
            try:
                child.process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.signal(signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    child.process.wait(timeout=5)
        for child in self.children:
            child.close_log()
            child.forget_pid()


class StopRequested:
    """Turns SIGINT and SIGTERM into an event the main loop waits on (no exception in the middle of a stop)."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopRequested:
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def _handle(self, signum: int, _frame: object) -> None:
        self.signum = signum
        self.event.set()

    def __exit__(self, *_exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]
