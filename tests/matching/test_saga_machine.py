"""A hypothesis state machine over the life of matches: propose, approve, reject, cancel, deliver, receive in
any order. After every step: an offer's reserved + delivered never exceeds its quantity, a need's committed
never exceeds its quantity, every approved match holds exactly one reservation and one commitment and every
other none, and nothing answers 500.

The machine runs in a worker thread; each rule runs its requests on the test's event loop (where the
in-process apps live) and waits for them."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from datetime import date
from typing import Any, TypeVar

from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from tests.matching.conftest import VILLAGE_A, Platform
from tests.matching.saga_support import Scene, check_invariants, coordinator, scene

T = TypeVar("T")


async def test_any_order_of_steps_keeps_the_invariants(
    backend: str, platform: Platform, upstream_apps: dict[str, FastAPI]
) -> None:
    loop = asyncio.get_running_loop()

    def run(coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout=60)

    class Matches(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            # A fresh offer of 6 and need of 5 per example: both upstreams can refuse.
            self.scene: Scene = run(scene(platform, offer_quantity=6, need_quantity=5))
            self.ids: list[str] = []

        def _post(self, path: str, body: dict[str, Any] | None, headers: dict[str, str]) -> int:
            response = run(platform.matching.post(path, json=body, headers=headers))
            assert response.status_code < 500, response.text
            if response.status_code >= 400:
                assert response.headers["content-type"].startswith("application/problem+json")
            return response.status_code

        def _pick(self, index: int) -> str:
            return self.ids[index % len(self.ids)]

        @rule(quantity=st.integers(1, 4), pledge=st.booleans())
        def propose(self, quantity: int, pledge: bool) -> None:
            headers = platform.tokens.member(self.scene.organisation) if pledge else coordinator(platform)
            body = {"need_id": self.scene.need, "offer_id": self.scene.offer, "quantity": str(quantity)}
            response = run(platform.matching.post("/api/matches", json=body, headers=headers))
            assert response.status_code in (201, 409), response.text
            if response.status_code == 201:
                self.ids.append(response.json()["id"])

        @precondition(lambda self: bool(self.ids))
        @rule(index=st.integers(0, 20))
        def approve(self, index: int) -> None:
            self._post(f"/api/matches/{self._pick(index)}/approve", None, coordinator(platform))

        @precondition(lambda self: bool(self.ids))
        @rule(index=st.integers(0, 20))
        def reject(self, index: int) -> None:
            self._post(f"/api/matches/{self._pick(index)}/reject", {"reason": "不合适"}, coordinator(platform))

        @precondition(lambda self: bool(self.ids))
        @rule(index=st.integers(0, 20), by_organisation=st.booleans())
        def cancel(self, index: int, by_organisation: bool) -> None:
            headers = platform.tokens.member(self.scene.organisation) if by_organisation else coordinator(platform)
            self._post(f"/api/matches/{self._pick(index)}/cancel", {"reason": "取消"}, headers)

        @precondition(lambda self: bool(self.ids))
        @rule(index=st.integers(0, 20), quantity=st.integers(1, 4))
        def deliver(self, index: int, quantity: int) -> None:
            body = {"quantity": str(quantity), "delivered_on": date.today().isoformat()}
            self._post(f"/api/matches/{self._pick(index)}/deliveries", body, platform.tokens.member(self.scene.organisation))

        @precondition(lambda self: bool(self.ids))
        @rule(index=st.integers(0, 20), quantity=st.integers(0, 4), satisfaction=st.integers(1, 5))
        def receive(self, index: int, quantity: int, satisfaction: int) -> None:
            body = {"quantity": str(quantity), "satisfaction": satisfaction, "comment": ""}
            self._post(f"/api/matches/{self._pick(index)}/receipt", body, platform.tokens.officer(VILLAGE_A))

        @invariant()
        def holds(self) -> None:
            state = run(check_invariants(platform, upstream_apps))
            for match in state["matches"]:
                assert match.delivered <= match.quantity
                if match.status in ("delivered", "received"):
                    assert match.delivered == match.quantity

    await asyncio.to_thread(
        run_state_machine_as_test, Matches,
        # Fewer examples on PostgreSQL, to keep the suite quick: the order of steps is under test, not the engine.
        settings=settings(max_examples=8 if backend == "sqlite" else 4, stateful_step_count=12, deadline=None,
                          derandomize=True,
                          suppress_health_check=list(HealthCheck)),
    )
