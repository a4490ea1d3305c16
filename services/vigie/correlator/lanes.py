"""Input records handled partition by partition, side by side: in order within a partition, partitions in parallel.

The correlator's inputs are keyed by camera id, so a camera's records all lie in one partition,
in order. Handling one record means waiting for the broker twice (the incident published, then
the table's changelog record): about 5 to 15 ms on a loaded machine. One record at a time, a
burst of 8 cameras raising together waited up to 8 of these for the last one; with a lane per
partition, records of different partitions wait for the broker together.

Within a lane nothing changes: a record starts once the one before it in its partition is
handled, its table writes acknowledged and its offset acknowledged to faust (which commits a
partition's offsets only up to the first one not acknowledged). A record that fails fails its
lane's later records too, unhandled and unacknowledged (they replay), and :meth:`Lanes.add`
raises the failure to the agent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

#: Records in progress at most, all lanes together (each holds its event and the camera's table entry).
MAX_IN_FLIGHT = 64


class Lanes:
    """Runs one coroutine per record: after the previous one of its lane (partition), beside the other lanes.

    Args:
        limit: records in progress at most; :meth:`add` waits for a free place beyond it.
    """

    def __init__(self, limit: int = MAX_IN_FLIGHT) -> None:
        self._tails: dict[object, asyncio.Task] = {}
        self._slots = asyncio.Semaphore(limit)
        self._failure: BaseException | None = None

    def _check(self) -> None:
        if self._failure is not None:
            raise self._failure

    async def add(self, lane: object, work: Callable[[], Awaitable[None]]) -> None:
        """Start ``work()`` once the lane's previous work is done; returns when it is started (not finished).

        Raises:
            the exception of a work that failed, in any lane, since this object was made.
        """
        self._check()
        await self._slots.acquire()
        try:
            self._check()
        except BaseException:
            self._slots.release()
            raise
        task = asyncio.create_task(self._after(self._tails.get(lane), work))  # copies the context: faust's event
        self._tails[lane] = task
        task.add_done_callback(lambda t: self._finished(lane, t))

    @staticmethod
    async def _after(previous: asyncio.Task | None, work: Callable[[], Awaitable[None]]) -> None:
        if previous is not None:
            await previous  # its failure is this one's: a lane never skips a record
        await work()

    def _finished(self, lane: object, task: asyncio.Task) -> None:
        self._slots.release()
        if self._tails.get(lane) is task:
            del self._tails[lane]
        if not task.cancelled() and task.exception() is not None and self._failure is None:
            self._failure = task.exception()

    async def join(self) -> None:
        """Wait for every work started. Raises the first failure, as :meth:`add`."""
        while self._tails:
            await asyncio.wait(list(self._tails.values()))
        self._check()

    def cancel(self) -> None:
        """Cancel the works in progress (their records are not acknowledged: they replay)."""
        for task in list(self._tails.values()):
            task.cancel()
