"""The evidence store: where clips and snapshots lie, a folder by default, S3-compatible object storage by URL
(:mod:`vigie.evidence.s3`; :func:`open_store` picks one from the location).

An item is written whole or not at all: into a temporary file beside its final place, flushed
to disk (``fsync``), then renamed (atomic on POSIX), and the folder flushed too. A full disk or
any other write error removes the temporary file and raises :class:`StoreError`: the caller
records nothing, so no partial clip is ever listed as evidence. Keys are relative paths
``<camera>/<yyyy>/<mm>/<dd>/<item id>.<ext>`` built by the catalogue (never from user input).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Protocol

from pydantic import Field

from vigie.core.settings import StrictModel

__all__ = ["FolderStore", "Store", "StoreError", "StoreSettings", "open_store"]


class StoreError(Exception):
    """The evidence store refused an operation (disk full, permissions, missing folder): ``str`` says which
    item and why, never with file contents."""


class StoreSettings(StrictModel):
    """Where evidence lies and how long it may be kept."""

    location: str = Field("var/evidence", min_length=1, description="folder of the evidence store (created if "
                          "missing), or s3://BUCKET[/PREFIX][?endpoint=URL] for S3-compatible object storage")
    retention_days: int | None = Field(
        None, ge=1, le=30,
        description="keep evidence at most this many days (lower than the authorisations allow, never higher; "
        "absent: each camera's authorised retention)")


class Store(Protocol):
    """What the catalogue needs of a store (blocking calls: run them in a thread)."""

    def describe(self) -> str: ...
    def put(self, key: str, data: bytes) -> str: ...
    def read(self, key: str) -> bytes: ...
    def delete(self, key: str) -> bool: ...


def open_store(location: str) -> Store:
    """The store at ``location``: ``s3://...`` (:class:`vigie.evidence.s3.S3Store`), else a folder.

    Raises StoreError for a folder that cannot be created or a malformed ``s3://`` location."""
    if location.startswith("s3://"):
        from vigie.evidence.s3 import S3Store

        return S3Store(location)
    return FolderStore(location)


class FolderStore:
    """Evidence items as files under ``root``.

    Args:
        root: the store's folder (created with mode 0700 if missing).

    Raises:
        StoreError: the folder cannot be created.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).resolve()
        try:
            self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise StoreError(f"evidence store {self.root}: cannot create it: {exc.strerror or exc}") from None

    def describe(self) -> str:
        """The store as named in messages."""
        return f"folder {self.root}"

    def path(self, key: str) -> Path:
        """The file of ``key``. Raises StoreError for a key leaving the store (``..``, absolute)."""
        path = os.path.normpath(os.path.join(self.root, key))  # no symlink resolution: one per file is costly
        if not path.startswith(f"{self.root}{os.sep}"):
            raise StoreError(f"evidence key {key!r} is outside the store")
        return Path(path)

    def put(self, key: str, data: bytes) -> str:
        """Write ``data`` at ``key`` whole (temporary file, fsync, rename); returns its hex SHA-256.

        Raises StoreError (the disk is full, the folder is not writable); nothing is left behind then.
        """
        path = self.path(key)
        temporary = path.with_name(f".{path.name}.partial")
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            with open(temporary, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, path)
            folder = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(folder)
            finally:
                os.close(folder)
        except OSError as exc:
            temporary.unlink(missing_ok=True)
            raise StoreError(f"evidence {key}: not written to {self.describe()}: {exc.strerror or exc}") from None
        return hashlib.sha256(data).hexdigest()

    def read(self, key: str) -> bytes:
        """The bytes of ``key``. Raises StoreError when missing or unreadable."""
        try:
            return self.path(key).read_bytes()
        except OSError as exc:
            raise StoreError(f"evidence {key}: cannot be read from {self.describe()}: {exc.strerror or exc}") from None

    def delete(self, key: str) -> bool:
        """Remove ``key``; False when it was already gone. Raises StoreError when it cannot be removed."""
        try:
            self.path(key).unlink()
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise StoreError(f"evidence {key}: cannot be destroyed in {self.describe()}: {exc.strerror or exc}") from None
        return True
