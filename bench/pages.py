"""How fast the web pages render: each role's main pages on the demo data, through the real platform.

Starts `duijie up --demo` on free ports (SQLite under a temporary directory), signs in through the
login form as each demo role, then fetches each page sequentially and prints p50/p95/max per page
(target: under 200 ms). Run: `.venv/bin/python -m bench.pages [--requests 30]`.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

from tests.e2e.conftest import Platform, free_base_port, platform_env

PAGES_OF_ROLE = {
    "officer": ["/village/needs", "/village/needs/new", "/village/matches"],
    "org_member": ["/org/offers", "/org/offers/new", "/org/needs", "/org/matches"],
    "coordinator": ["/coord/approvals", "/coord/runs", "/coord/organisations", "/coord/pairings", "/reports"],
    "admin": ["/admin/users", "/admin/rules"],
}
TARGET_MS = 200.0


def signed_in_client(platform: Platform, username: str, password: str) -> httpx.Client:
    client = httpx.Client(base_url=platform.url, timeout=30.0, trust_env=False, follow_redirects=True)
    form = client.get("/login").text
    token = re.search(r'name="csrf_token" value="([0-9a-f]+)"', form)
    assert token is not None, "the login form carries no CSRF token"
    answer = client.post("/login", data={"username": username, "password": password, "csrf_token": token.group(1)})
    assert answer.status_code == 200 and "duijie_session" in client.cookies, answer.text[:500]
    return client


def measure(client: httpx.Client, path: str, requests: int) -> list[float]:
    client.get(path)  # warm: first use of templates and caches
    timings = []
    for _ in range(requests):
        started = time.perf_counter()
        response = client.get(path)
        timings.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, f"{path}: {response.status_code} {response.text[:300]}"
    return timings


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.pages", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=30, help="requests per page (sequential)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="duijie-bench-pages-") as tmp:
        work = Path(tmp)
        platform = Platform(port=free_base_port(), data_dir=work / "data", output=work / "up.log",
                            env=platform_env(None), args=["--demo"])
        platform.start()
        try:
            logins = json.loads((platform.data_dir / "demo-logins.json").read_text(encoding="utf-8"))
            rows = []
            for role, paths in PAGES_OF_ROLE.items():
                client = signed_in_client(platform, logins[role]["username"], logins[role]["password"])
                try:
                    for path in paths:
                        timings = sorted(measure(client, path, args.requests))
                        p95 = timings[max(0, round(0.95 * len(timings)) - 1)]
                        rows.append((role, path, statistics.median(timings), p95, timings[-1]))
                finally:
                    client.close()
        finally:
            platform.stop()
    print(f"\nPages on the demo data, {args.requests} sequential requests each, through the gateway (target < {TARGET_MS:.0f} ms):")
    print(f"{'role':<12} {'page':<22} {'p50 ms':>7} {'p95 ms':>7} {'max ms':>7}  ok")
    for role, path, p50, p95, worst in rows:
        print(f"{role:<12} {path:<22} {p50:>7.1f} {p95:>7.1f} {worst:>7.1f}  {'yes' if p95 < TARGET_MS else 'NO'}")


if __name__ == "__main__":
    main()
