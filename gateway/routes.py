"""Which service owns which public path. Internal paths are never reachable through the gateway."""

from __future__ import annotations

ROUTES: tuple[tuple[str, str], ...] = (
    ("/api/needs", "needs"),
    ("/api/offers", "offers"),
    ("/api/organisations", "offers"),
    ("/api/pairings", "offers"),
    ("/api/candidates", "matching"),
    ("/api/match-runs", "matching"),
    ("/api/matches", "matching"),
    ("/api/rulesets", "matching"),
    ("/api/reports", "matching"),
    ("/api/notifications", "matching"),
    ("/api/audit", "matching"),
    ("/api/webhooks", "matching"),
)


def upstream_for(path: str) -> str | None:
    """The service that owns `path` (already percent-decoded), or None when nobody outside may reach it.

    A `.` or `..` segment is refused outright: a client or an upstream normalising it could walk
    from a public prefix into /internal/.
    """
    segments = path.split("/")
    if any(segment in (".", "..") for segment in segments) or "internal" in segments:
        return None
    for prefix, service in ROUTES:
        if path == prefix or path.startswith(prefix + "/"):
            return service
    return None
