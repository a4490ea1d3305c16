"""Judicial transmission: the bundle handed to an authority for a requisition, and its register entry.

A bundle holds, for the items asked (an incident's evidence, or everything a legal hold covers):

- ``items/<item id>.mp4|.jpg``: the files as stored (their SHA-256 recomputed: a file that no longer
  matches its listed hash stops the transmission);
- ``manifest.json``: the requisition, the authority, who made it and when, and each item's camera,
  incident, time range, size and SHA-256;
- ``register.json``: the register's entries about those incidents (recordings, views, actions, holds,
  destructions), with their content and chain hashes, so the authority can check them against the
  register (``vigie register verify``);
- ``SHA256SUMS``: the hash of every other file (``sha256sum -c SHA256SUMS`` checks the bundle).

The transmission (authority, reference, date, items, the manifest's SHA-256) is listed in the
catalogue with its ``transmission`` entry in the same transaction, once the bundle is complete.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from vigie.evidence.catalogue import Catalogue, EvidenceError, covers, iso
from vigie.evidence.models import EvidenceItem
from vigie.register.query import iter_entries

__all__ = ["EXTENSIONS", "build_bundle", "items_for"]

EXTENSIONS = {"clip": "mp4", "snapshot": "jpg"}


def _json(value: Any) -> bytes:
    return (json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


async def items_for(catalogue: Catalogue, *, incidents: Sequence[str] = (), hold_id: str = "") -> list[EvidenceItem]:
    """The items of ``incidents``, or those the active hold ``hold_id`` covers (not destroyed).

    Raises EvidenceError: nothing asked, an unknown or lifted hold, an incident without evidence."""
    if bool(incidents) == bool(hold_id):
        raise EvidenceError("transmit either incidents' evidence or a legal hold's")
    if hold_id:
        holds = [h for h in await catalogue.active_holds() if h.id == hold_id]
        if not holds:
            raise EvidenceError(f"no active legal hold {hold_id!r}")
        scope = holds[0]
        candidates = await catalogue.items(incident_id=scope.incident_id, camera_id=scope.camera_id, limit=100_000)
        return [i for i in candidates if covers(scope, i)]
    found = []
    for incident_id in incidents:
        items = await catalogue.items(incident_id=incident_id)
        if not items:
            raise EvidenceError(f"incident {incident_id} has no evidence kept (none stored, or destroyed)")
        found += items
    return found


async def build_bundle(catalogue: Catalogue, engine: AsyncEngine, items: Sequence[EvidenceItem], *,
                       requisition: str, authority: str, by: str, now_ns: int) -> tuple[str, dict[str, bytes]]:
    """The bundle's files (name -> bytes) and the transmission's id; lists the transmission and its register
    entry. Raises EvidenceError (no requisition or authority, no item, a file whose hash changed) or
    StoreError (a file gone from the store); nothing is listed then."""
    requisition, authority = " ".join(requisition.split()), " ".join(authority.split())
    if not requisition or not authority:
        raise EvidenceError("a transmission needs the requisition's reference and the authority it goes to")
    if not items:
        raise EvidenceError("nothing to transmit")
    files: dict[str, bytes] = {}
    listed = []
    for item in items:
        data = await asyncio.to_thread(catalogue.store.read, item.key)
        if hashlib.sha256(data).hexdigest() != item.sha256:
            raise EvidenceError(f"evidence {item.id}: its file no longer matches the SHA-256 listed when it was "
                                "stored: not transmitted (report it)")
        name = f"items/{item.id}.{EXTENSIONS.get(item.kind, 'bin')}"
        files[name] = data
        listed.append({"item": item.id, "file": name, "kind": item.kind, "camera": item.camera_id,
                       "incident": item.incident_id, "from": iso(item.start_ns), "to": iso(item.end_ns),
                       "bytes": item.bytes, "sha256": item.sha256, "authorisation": item.authorisation})
    transmission_id = uuid.uuid4().hex
    entries = sorted([row for incident in sorted({item.incident_id for item in items})
                      async for row in iter_entries(engine, incident=incident)], key=lambda row: row["seq"])
    files["register.json"] = _json(entries)
    manifest = {"transmission": transmission_id, "requisition": requisition, "authority": authority,
                "made_by": by, "made_at": iso(now_ns), "items": listed,
                "register_entries": len(entries), "register_sha256": hashlib.sha256(files["register.json"]).hexdigest()}
    files["manifest.json"] = _json(manifest)
    files["SHA256SUMS"] = "".join(f"{hashlib.sha256(data).hexdigest()}  {name}\n"
                                  for name, data in sorted(files.items())).encode()
    await catalogue.record_transmission(transmission_id, requisition, authority, [i.id for i in items],
                                        hashlib.sha256(files["manifest.json"]).hexdigest(), by, now_ns)
    return transmission_id, files
