"""Figures of the register (``vigie bench``, or ``python -m vigie.register.bench``): append throughput in
batches of 500 (goal >= 5,000 entries/s) and the time :func:`~vigie.register.chain.verify` takes over
1,000,000 entries (goal <= 30 s), on a SQLite file and on PostgreSQL: the empty scratch database
``VIGIE_BENCH_POSTGRES_URL`` names (the bench refuses one that holds entries), else a private server of
Debian's package (:mod:`vigie.chaos.postgres`, fsync off) when it is installed.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from vigie.core.db import DatabaseSettings, make_engine, migrate
from vigie.register.chain import verify
from vigie.register.query import list_entries
from vigie.register.store import append

#: Goals: entries appended per second, seconds to verify 1,000,000 entries.
APPEND_GOAL, VERIFY_GOAL_S = 5000.0, 30.0


def _batch(n: int, start: int, now: int) -> list[dict[str, Any]]:
    return [{"entry_id": uuid.uuid4().hex, "kind": "view", "at_ns": now + i, "user": f"operator-{i % 20}",
             "station": "main", "camera_id": f"cam-{i % 50}", "incident_id": f"inc-{i // 10}",
             "record": f"frames/{i % 6}/{i}", "service": "station", "client": "10.1.2.3", "subject": "",
             "detail": "snapshot viewed"} for i in range(start, start + n)]


async def measure(url: str, entries: int, batch: int = 500) -> dict[str, float]:
    """Append ``entries`` to the empty register of ``url`` in batches of ``batch``, then verify it.

    Returns entries, append_per_s, verify_s and verify_per_s. Raises RuntimeError when the register holds entries.
    """
    settings = DatabaseSettings(url=url)
    engine = make_engine(settings)
    try:
        await migrate(engine, settings)
        if await list_entries(engine, limit=1):
            raise RuntimeError(f"{settings.redacted()} holds register entries: give an empty scratch database")
        now, spent = time.time_ns(), 0.0
        for start in range(0, entries, batch):
            rows = _batch(min(batch, entries - start), start, now)
            began = time.perf_counter()
            await append(engine, rows)
            spent += time.perf_counter() - began
        began = time.perf_counter()
        result = await verify(engine)
        verify_s = time.perf_counter() - began
        if not result.ok or result.checked != entries:
            raise RuntimeError(f"verify after the bench: {result}")
        return {"entries": entries, "append_per_s": entries / spent, "verify_s": verify_s,
                "verify_per_s": entries / verify_s}
    finally:
        await engine.dispose()


def bench_register(quick: bool = False) -> dict[str, dict[str, float] | str]:
    """Register figures on SQLite (a temporary file) and on PostgreSQL: the database of
    ``VIGIE_BENCH_POSTGRES_URL`` when set (empty), else a private server of Debian's package when installed."""
    entries = 100_000 if quick else 1_000_000
    results: dict[str, dict[str, float] | str] = {}
    with tempfile.TemporaryDirectory(prefix="vigie-register-bench-") as folder:
        results["sqlite"] = asyncio.run(measure(f"sqlite:///{Path(folder) / 'register.db'}", entries))
    url = os.environ.get("VIGIE_BENCH_POSTGRES_URL", "")
    if url:
        results["postgresql"] = asyncio.run(measure(url, entries))
        return results
    from vigie.chaos import postgres

    why = postgres.available()
    if why:
        results["postgresql"] = f"not measured: {why} (or set VIGIE_BENCH_POSTGRES_URL)"
        return results
    server = postgres.start()  # a private scratch server (fsync off)
    try:
        results["postgresql (private, fsync off)"] = asyncio.run(measure(server.create_db("bench"), entries))
    finally:
        server.stop()
    return results


def rows(results: dict[str, dict[str, float] | str]) -> list[tuple[str, str, str]]:
    """Table rows (figure, value, goal) of :func:`bench_register`'s results, with the ratios to the goals."""
    out = []
    for backend, figures in results.items():
        if isinstance(figures, str):
            out.append((f"register on {backend}", figures, ""))
            continue
        n = figures["entries"]
        per_million = figures["verify_s"] * 1_000_000 / n
        out.append((f"register on {backend}: append, batches of 500 (entries/s)",
                    f"{figures['append_per_s']:,.0f} ({figures['append_per_s'] / APPEND_GOAL:.1f}x goal)",
                    f">= {APPEND_GOAL:,.0f}"))
        out.append((f"register on {backend}: verify {n:,} entries (s; per million)",
                    f"{figures['verify_s']:.1f}; {per_million:.1f} ({VERIFY_GOAL_S / per_million:.1f}x goal)",
                    f"<= {VERIFY_GOAL_S:.0f} per million"))
    return out


if __name__ == "__main__":
    figures = bench_register(quick="--quick" in sys.argv)
    for row in rows(figures):
        print(" | ".join(row))
    print(json.dumps(figures))
