"""Per-camera state tensors kept in preallocated slots, so one batch can mix cameras.

Each named field of a :class:`CameraStateBank` is one tensor ``(capacity, *shape)``
on the detector's device; a camera owns one slot (row). A batch gathers the rows
of its cameras with ``index_select`` and writes them back with ``index_copy_``,
which is the same code on CPU and CUDA. Capacity doubles when cameras are added;
slots of forgotten cameras are reused.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch


class CameraStateBank:
    """Slots of per-camera state tensors.

    Args:
        fields: name -> ``(shape, dtype)`` of one camera's state, e.g.
            ``{"bg": ((3, 120, 160), torch.float32)}``.
        device: torch device that holds every field.
        capacity: initial number of slots (grows by doubling).

    A slot is *new* from the moment it is assigned to a camera until the first
    :meth:`scatter` that writes it, so analytics can initialise their state
    (e.g. a background from the first frame) with :meth:`new_mask`.
    """

    def __init__(self, fields: Mapping[str, tuple[tuple[int, ...], torch.dtype]],
                 device: torch.device | str = "cpu", capacity: int = 8) -> None:
        if not fields:
            raise ValueError("a state bank needs at least one field")
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.device = torch.device(device)
        self._specs = {name: (tuple(shape), dtype) for name, (shape, dtype) in fields.items()}
        self._data = {name: torch.zeros((capacity, *shape), dtype=dtype, device=self.device)
                      for name, (shape, dtype) in self._specs.items()}
        self._capacity = capacity
        self._slots: dict[str, int] = {}
        self._free: list[int] = list(range(capacity - 1, -1, -1))
        self._new: set[str] = set()

    @property
    def capacity(self) -> int:
        """Number of allocated slots."""
        return self._capacity

    @property
    def cameras(self) -> list[str]:
        """Cameras that currently own a slot."""
        return list(self._slots)

    def shape(self, name: str) -> tuple[int, ...]:
        """Per-camera shape of field ``name`` (raises ``KeyError`` if unknown)."""
        return self._specs[name][0]

    def __contains__(self, camera_id: object) -> bool:
        return camera_id in self._slots

    def _grow(self) -> None:
        new_cap = self._capacity * 2
        for name, (shape, dtype) in self._specs.items():
            grown = torch.zeros((new_cap, *shape), dtype=dtype, device=self.device)
            grown[: self._capacity].copy_(self._data[name])
            self._data[name] = grown
        self._free.extend(range(new_cap - 1, self._capacity - 1, -1))
        self._capacity = new_cap

    def index(self, camera_ids: Sequence[str]) -> torch.Tensor:
        """Slots of ``camera_ids`` as a ``(N,) int64`` tensor on the device; assigns new slots."""
        rows = []
        for cam in camera_ids:
            slot = self._slots.get(cam)
            if slot is None:
                if not self._free:
                    self._grow()
                slot = self._free.pop()
                self._slots[cam] = slot
                self._new.add(cam)
                for t in self._data.values():
                    t[slot].zero_()
            rows.append(slot)
        return torch.tensor(rows, dtype=torch.int64, device=self.device)

    def is_new(self, camera_id: str) -> bool:
        """True while the camera's slot has not been written by :meth:`scatter` yet."""
        return camera_id in self._new or camera_id not in self._slots

    def new_mask(self, camera_ids: Sequence[str]) -> torch.Tensor:
        """``(N,) bool`` tensor on the device: which cameras have a new slot."""
        return torch.tensor([self.is_new(c) for c in camera_ids], dtype=torch.bool, device=self.device)

    def gather(self, camera_ids: Sequence[str], name: str | None = None,
               index: torch.Tensor | None = None) -> torch.Tensor | dict[str, torch.Tensor]:
        """State of ``camera_ids``: ``(N, *shape)`` for field ``name``, or a dict of every field.

        New cameras get a zero-filled slot. ``index`` (from :meth:`index`) skips the lookup.

        Raises:
            KeyError: unknown field name.
        """
        idx = self.index(camera_ids) if index is None else index
        if name is not None:
            return self._data[name].index_select(0, idx)
        return {k: t.index_select(0, idx) for k, t in self._data.items()}

    def scatter(self, camera_ids: Sequence[str], values: torch.Tensor | Mapping[str, torch.Tensor],
                name: str | None = None, index: torch.Tensor | None = None) -> None:
        """Write back ``(N, *shape)`` state of ``camera_ids`` (one field, or a dict of fields).

        Clears the *new* flag of these cameras.

        Raises:
            KeyError: unknown field name.
            ValueError: ``values`` is a tensor but ``name`` is not given (bank with several fields).
        """
        idx = self.index(camera_ids) if index is None else index
        if isinstance(values, torch.Tensor):
            if name is None:
                if len(self._data) != 1:
                    raise ValueError("name the field to scatter a single tensor")
                name = next(iter(self._data))
            values = {name: values}
        for k, v in values.items():
            dst = self._data[k]
            dst.index_copy_(0, idx, v.to(dtype=dst.dtype))
        self._new.difference_update(camera_ids)

    def forget(self, camera_id: str) -> None:
        """Free the slot of ``camera_id`` (no error if unknown); its next frame starts afresh."""
        slot = self._slots.pop(camera_id, None)
        self._new.discard(camera_id)
        if slot is not None:
            self._free.append(slot)


class FrameClock:
    """Seconds between consecutive frames of each camera, from their stream times (PTS).

    ``dt`` is the capture-time difference clamped to ``[0.25, max_gap_frames]``
    frame intervals of the camera's fps; a camera's first frame gets ``1 / fps``.
    A frame is a *restart* when it is the camera's first, when its stream time
    goes backwards, or when it comes more than ``max_gap_frames`` intervals after
    the previous one (stream gap): frame-to-frame measures must skip it.
    """

    def __init__(self, max_gap_frames: float = 4.0) -> None:
        self.max_gap_frames = max_gap_frames
        self._last_ns: dict[str, int] = {}

    def tick(self, camera_ids: Sequence[str], time_ns: Sequence[int],
             fps: Sequence[float]) -> tuple[list[float], list[bool]]:
        """Advance each camera's clock; returns ``N`` intervals in seconds and ``N`` restart flags."""
        dts, restarts = [], []
        for cam, t, f in zip(camera_ids, time_ns, fps):
            nominal = 1.0 / f
            last = self._last_ns.get(cam)
            gap = None if last is None else (t - last) / 1e9
            restart = gap is None or gap <= 0 or gap > self.max_gap_frames * nominal
            dts.append(nominal if gap is None else min(max(gap, 0.25 * nominal), self.max_gap_frames * nominal))
            restarts.append(restart)
            self._last_ns[cam] = t
        return dts, restarts

    def forget(self, camera_id: str) -> None:
        """Forget the camera's last frame time."""
        self._last_ns.pop(camera_id, None)
