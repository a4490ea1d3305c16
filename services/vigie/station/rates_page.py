"""The supervisors' false-alarm rates in the console (figures: :mod:`vigie.station.verdicts`).

Routes (both :attr:`~vigie.station.auth.Access.SUPERVISOR`: supervisors assigned the station; an operator
gets 403, no session 401):

- ``GET /rates``: the page (``static/rates.html``): a sortable table per camera x kind, the window
  selectable (24 h, 7 d, 30 d), the per-zone breakdown of a pair;
- ``GET /api/rates[?window_s=N]``: the figures as JSON (:meth:`vigie.station.verdicts.Rates.as_json`, plus
  ``station``, ``from`` and ``to`` in ISO 8601 UTC) over the last ``N`` seconds, from 3600 (1 h) to 2592000
  (30 days); default the station's ``rates_window_s``. 400 for another value.
"""

from __future__ import annotations

import math

from aiohttp import web

from vigie.register.query import iso_of
from vigie.station.auth import STATIC, Access, StationAuth
from vigie.station.verdicts import MAX_WINDOW_S, MIN_WINDOW_S, VerdictStats


def window_of(text: str | None, default: float) -> float:
    """The window in seconds asked by ``?window_s=`` (``default`` when absent).

    Raises HTTPBadRequest for text that is not a number within [1 h, 30 days].
    """
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not MIN_WINDOW_S <= value <= MAX_WINDOW_S:
        raise web.HTTPBadRequest(text=f"window_s: expected seconds from {MIN_WINDOW_S:.0f} (1 h) to "
                                      f"{MAX_WINDOW_S:.0f} (30 days), got {text[:40]!r}")
    return value


class RatesPage:
    """The rates routes of one station's console.

    Args:
        auth: the console's access checks.
        stats: the station's verdicts, fed by its alerts consumer.
        station: the station's id (shown on the page).
    """

    def __init__(self, auth: StationAuth, stats: VerdictStats, station: str) -> None:
        self.auth, self.stats, self.station = auth, stats, station

    def routes(self, app: web.Application) -> None:
        """Add ``/rates`` and ``/api/rates``, supervisors only."""
        self.auth.add(app, "GET", "/rates", self._page, Access.SUPERVISOR)
        self.auth.add(app, "GET", "/api/rates", self._rates, Access.SUPERVISOR)

    async def _page(self, _: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / "rates.html")

    async def _rates(self, request: web.Request) -> web.Response:
        rates = self.stats.rates(window_of(request.query.get("window_s"), self.stats.window_s))
        body = {"station": self.station, **rates.as_json()}
        body.update(to=iso_of(body["to_ns"]), **{"from": iso_of(body["from_ns"])})
        return web.json_response(body)
