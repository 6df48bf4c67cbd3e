"""The data commands talk to a real platform: the e2e suite's `duijie up` fixture, shared rather than copied."""

from __future__ import annotations

from tests.e2e.conftest import admin, platform  # noqa: F401  (fixtures: one `duijie up` per backend and module)
