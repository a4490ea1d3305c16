"""Command-line inputs: the torch device, counts (threads, batch sizes) and output files.

:func:`resolve_device` turns the ``--device`` text of ``vigie detector``, ``vigie evaluate``,
``vigie replay`` and ``python -m vigie.detector.bench`` into a :class:`torch.device`, or
a :class:`~vigie.core.errors.ConfigError` of one line naming the option. :func:`bounded`
and :func:`output_file` are argparse ``type=`` checks, so that a bad count or an output
file in a missing folder stops the command before any work, with one line naming the
option. torch is imported only when a device is resolved: building a parser stays light.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from vigie.core.errors import ConfigError

if TYPE_CHECKING:
    import torch

N = TypeVar("N", int, float)

#: What ``--device`` accepts.
DEVICE_CHOICES = "cpu, cuda, cuda:N, auto"


def resolve_device(text: str | torch.device, option: str = "--device") -> torch.device:
    """The torch device named by ``text``: ``auto`` (CUDA when torch sees a GPU, else CPU), ``cpu``,
    ``cuda`` or ``cuda:N``; a :class:`torch.device` is checked the same way.

    Args:
        text: the device as the user wrote it.
        option: the option named in error messages.

    Raises:
        ConfigError: not a torch device, a device type other than CPU or CUDA, CUDA asked
            on a machine without a CUDA device, or a CUDA index this machine does not have.
    """
    import torch

    if isinstance(text, torch.device):
        device = text
    elif text.strip() == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        try:
            device = torch.device(text.strip())
        except (RuntimeError, ValueError, TypeError):
            raise ConfigError(f"{option} {text}: not a torch device ({DEVICE_CHOICES})") from None
    if device.type == "cpu":
        return device
    if device.type != "cuda":
        raise ConfigError(f"{option} {text}: device type {device.type!r} is not supported ({DEVICE_CHOICES})")
    if not torch.cuda.is_available():
        raise ConfigError(f"{option} {text}: no CUDA device on this machine")
    count = torch.cuda.device_count()
    if device.index is not None and device.index >= count:
        raise ConfigError(f"{option} {text}: no such CUDA device; this machine has {count} "
                          f"(cuda:0 to cuda:{count - 1})")
    return device


def bounded(cast: Callable[[str], N], low: N, high: N | None = None) -> Callable[[str], N]:
    """An argparse ``type=`` that reads a number with ``cast`` (``int`` or ``float``) and keeps it in
    ``[low, high]`` (``high`` None: no upper bound).

    The returned function raises ``argparse.ArgumentTypeError`` (argparse prints it after
    the option's name and exits 2) for text that is not a number, NaN, or a value out of range.
    """
    what = "an integer" if cast is int else "a number"
    span = f">= {low}" if high is None else f"between {low} and {high}"

    def check(text: str) -> N:
        try:
            value = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not low <= value or (high is not None and value > high):  # `not low <= nan` holds too
            raise argparse.ArgumentTypeError(f"must be {span}, got {text}")
        return value

    check.__name__ = f"{what} {span}"
    return check


def output_file(text: str) -> str:
    """An argparse ``type=`` for a file the command will write: its folder must exist and be writable.

    Returns ``text`` unchanged. Raises ``argparse.ArgumentTypeError`` (exit 2) when the
    folder is missing or not writable, or when ``text`` names a folder.
    """
    path = Path(text).expanduser()
    folder = path.parent
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a folder, not a file")
    if not folder.is_dir():
        raise argparse.ArgumentTypeError(f"folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"folder {folder} is not writable")
    return text
