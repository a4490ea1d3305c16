"""The correlator's lanes: records of a partition in order, partitions side by side, a failure stops its lane."""

from __future__ import annotations

import asyncio

import pytest

from vigie.correlator.lanes import Lanes


def test_a_lane_keeps_its_order_while_the_others_go_on() -> None:
    async def go() -> tuple[list[str], list[str]]:
        lanes, done, started = Lanes(limit=8), [], []
        gate = asyncio.Event()

        async def work(name: str, wait: bool) -> None:
            started.append(name)
            if wait:
                await gate.wait()
            done.append(name)

        await lanes.add(0, lambda: work("p0-a", True))
        await lanes.add(0, lambda: work("p0-b", False))
        await lanes.add(1, lambda: work("p1-a", False))
        for _ in range(5):
            await asyncio.sleep(0)
        before = list(done)  # p0-a waits: p0-b may not start, p1-a finishes meanwhile
        assert "p0-b" not in started
        gate.set()
        await lanes.join()
        return before, done

    before, done = asyncio.run(go())
    assert before == ["p1-a"]
    assert done == ["p1-a", "p0-a", "p0-b"]


def test_a_failure_stops_its_lane_and_reaches_the_agent() -> None:
    async def go() -> list[str]:
        lanes, done = Lanes(limit=8), []

        async def fail() -> None:
            raise RuntimeError("broker refused")

        async def work(name: str) -> None:
            done.append(name)

        await lanes.add(0, fail)
        await lanes.add(0, lambda: work("after the failure"))
        await lanes.add(1, lambda: work("other lane"))
        with pytest.raises(RuntimeError, match="broker refused"):
            await lanes.join()
        with pytest.raises(RuntimeError, match="broker refused"):
            await lanes.add(1, lambda: work("too late"))
        return done

    assert asyncio.run(go()) == ["other lane"]
