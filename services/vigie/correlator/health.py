"""Readiness of a correlator worker, read from faust's own rebalance and recovery state.

A faust worker that owns partitions but has not restored their table from the changelog
must not say it is running: it would idle (or worse, merge into an empty table) while a
readiness probe passes. States, in the order they are checked:

- ``draining``: the worker is stopping;
- ``failed``: an agent has been on one record for over :data:`STUCK_S` seconds (a send or a table
  write never acknowledged), or table recovery raised since the last completed recovery (faust catches the
  error, logs ``Error in recovery ...`` and tries again forever: the worker cannot restore
  its state); the reason is the error;
- ``starting``: the worker has not yet joined the consumer group and restored its table;
- ``recovering``: a rebalance is in progress or the table is being restored
  (``remaining``: changelog records left to read);
- ``degraded``: running, but the broker does not answer (checked every few seconds), or a table
  entry could not be read (the reason names the camera);
- ``running``.

``running`` and ``degraded`` answer HTTP 200, as every Vigie service does: a degraded worker
stays ready (what works goes on; a restart would not bring the broker back). Sources: ``faust/tables/recovery.py`` (``Recovery.in_recovery``,
``active_remaining_total()``, the ``Error in recovery`` warning of ``_slurp_changelogs``),
``faust/tables/manager.py`` (``TableManager.actives_ready``), ``faust/app/base.py``
(``App.rebalancing``, ``on_rebalance_complete``).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import faust

RECOVERY_LOGGER = "faust.tables.recovery"
#: Seconds an agent may spend on one record (its sends and table writes acknowledged) before the worker is
#: ``failed``: /livez then answers 503 and a supervisor restarts it, rather than a silent, idle worker.
STUCK_S = 60.0
#: Seconds a running worker may take no record while records wait on its partitions before it stops
#: itself (exit 1) to be restarted: faust's consumer was seen, rarely, never to resume fetching after a
#: rebalance's recovery ("Worker ready", then nothing).
STALLED_S = 30.0


class WorkerHealth(logging.Filter):
    """Tracks recovery errors (as a filter on faust's recovery logger) and answers the worker's state.

    Args:
        app: the faust app to observe.
    """

    def __init__(self, app: faust.App) -> None:
        super().__init__()
        self.app = app
        self.recovery_error = ""
        self.error_at = 0.0
        self.recovered_at = 0.0
        self.unreadable: dict[str, str] = {}  # camera key -> why its table entry was dropped
        self.broker_error = ""  # why the broker did not answer the last check (empty: it did)
        self.busy: dict[str, tuple[float, str]] = {}  # input topic -> (monotonic s, record) being handled
        self.last_done = time.monotonic()  # when an agent last finished a record
        self.fatal = ""  # why the worker stops itself (a supervisor restarts it)
        logging.getLogger(RECOVERY_LOGGER).addFilter(self)
        app.on_rebalance_complete.connect(self._on_rebalance_complete)

    def filter(self, record: logging.LogRecord) -> bool:  # noqa: A003 - logging.Filter's API
        """Note a recovery error logged by faust (the record is always kept)."""
        message = record.getMessage()
        if message.startswith("Error in recovery"):
            self.recovery_error = message[:300]
            self.error_at = time.monotonic()
        return True

    async def _on_rebalance_complete(self, sender: Any = None, **kwargs: Any) -> None:
        # faust sends it once the active partitions' tables are restored (or none needed restoring)
        self.recovered_at = time.monotonic()

    def close(self) -> None:
        """Stop observing faust's recovery logger."""
        logging.getLogger(RECOVERY_LOGGER).removeFilter(self)

    def state(self) -> dict[str, Any]:
        """``{"state": ..., "reason"?: ..., "remaining"?: ...}`` as described in the module docstring."""
        app = self.app
        if app.should_stop:
            return {"state": "draining"}
        if self.fatal:
            return {"state": "failed", "reason": self.fatal}
        since, record = min(self.busy.values(), default=(time.monotonic(), ""))
        if time.monotonic() - since > STUCK_S:
            return {"state": "failed", "reason": f"stuck for {time.monotonic() - since:.0f} s on record {record}: "
                    "a restart replays it (processing is idempotent)"}
        if self.recovery_error and self.error_at > self.recovered_at:
            return {"state": "failed", "reason": f"cannot restore the incident table: {self.recovery_error}"}
        ready = app.started and not app.rebalancing and app.tables.actives_ready and self.recovered_at > 0
        if not ready:
            recovery = app.tables.recovery
            remaining = recovery.active_remaining_total() if recovery.in_recovery else 0
            if self.recovered_at == 0 and not recovery.in_recovery:
                return {"state": "starting"}
            return {"state": "recovering", "remaining": remaining}
        problems = [f"the Kafka broker does not answer: {self.broker_error}"] if self.broker_error else []
        problems += [f"{k}: {v}" for k, v in sorted(self.unreadable.items())]
        if problems:
            return {"state": "degraded", "reason": "; ".join(problems)}
        return {"state": "running"}
