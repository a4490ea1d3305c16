"""``vigie evidence``: run the evidence service, list evidence and legal holds, place and lift holds, purge.

* ``vigie evidence serve --cameras FILE [--store DIR] [--retention-days N] [--database URL]``: the service.
* ``vigie evidence list [--camera ID] [--incident ID] [--destroyed]``: items with their hash and due date.
* ``vigie evidence holds``: the active legal holds.
* ``vigie evidence hold --supervisor NAME --requisition REF (--incident ID | --camera ID --from T --to T)``
  and ``vigie evidence release HOLD --supervisor NAME``: the supervisor's password is read from the
  terminal (or the first line of stdin with ``--password-stdin``), never from the command line; the
  account must hold the ``supervisor`` role. Both are recorded in the register.
* ``vigie evidence transmit --supervisor NAME --requisition REF --authority NAME (--incident ID... | --hold ID)
  --output DIR``: the bundle for a judicial authority (:mod:`vigie.evidence.transmit`), recorded.
* ``vigie evidence access-export --supervisor NAME --camera ID --from T --to T --requester T:x,y,w,h --cameras FILE
  --output DIR [--method blur|black]``: the right of access (:mod:`vigie.evidence.access`): the camera's images
  over the range, every person but the requester hidden, as ``DIR/access-<id>.mp4`` and its manifest
  ``DIR/access-<id>.json``, recorded in the register (``export``).
* ``vigie evidence purge --store DIR``: destroy now what is due (the service does it on its own too).

Exit codes: 0 done, 1 refused (the reason on stderr), 2 bad usage, 3 database unreachable.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
import time
from collections.abc import Callable
from typing import Any

from vigie.core.options import bounded
from vigie.core.settings import KafkaSettings

EXIT_REFUSED, EXIT_DATABASE = 1, 3


def _database(args: argparse.Namespace):  # noqa: ANN202
    from vigie.core.db import DatabaseSettings

    return DatabaseSettings(url=args.database) if args.database else DatabaseSettings()


async def _with_catalogue(args: argparse.Namespace, work: Callable[[Any, Any], Any]) -> Any:
    """Run ``work(catalogue, engine)`` on the migrated database and the store; raises DatabaseUnavailable."""
    from sqlalchemy.exc import SQLAlchemyError

    from vigie.core.db import DatabaseUnavailable, check_reachable, describe_db_error, make_engine, migrate
    from vigie.evidence.catalogue import Catalogue
    from vigie.evidence.store import open_store

    database = _database(args)
    engine = make_engine(database)
    try:
        await check_reachable(engine, database)
        await migrate(engine, database)
        return await work(Catalogue(engine, open_store(args.store)), engine)
    except SQLAlchemyError as exc:
        raise DatabaseUnavailable(describe_db_error(database, exc)) from None
    finally:
        await engine.dispose()


async def _supervisor(args: argparse.Namespace, engine: Any) -> str:
    """The supervisor's name once their password is checked. Raises EvidenceError."""
    from vigie.accounts.store import AccountStore
    from vigie.evidence.catalogue import EvidenceError

    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif sys.stdin.isatty():
        password = getpass.getpass(f"Password of {args.supervisor}: ")
    else:
        raise EvidenceError("no terminal to read the supervisor's password from: use --password-stdin")
    result = await AccountStore(engine).authenticate(args.supervisor, password)
    if result.account is None:
        raise EvidenceError(f"{args.supervisor}: login refused ({result.reason})")
    if "supervisor" not in result.account.roles:
        raise EvidenceError(f"{args.supervisor} is not a supervisor: only a supervisor holds, transmits or exports "
                            "evidence")
    return result.account.name


def _list(args: argparse.Namespace) -> int:
    from vigie.evidence.catalogue import iso

    async def work(catalogue, _):  # noqa: ANN001, ANN202
        items = await catalogue.items(camera_id=args.camera or "", incident_id=args.incident or "",
                                      destroyed=args.destroyed)
        return [(item, [h.id for h in await catalogue.held(item)]) for item in items]

    print(f"{'ITEM':<32} {'KIND':<8} {'CAMERA':<18} {'INCIDENT':<20} {'FROM':<20} {'BYTES':>9} {'DUE':<20} STATE/HOLDS")
    for item, holds in asyncio.run(_with_catalogue(args, work)):
        state = f"destroyed {iso(item.destroyed_ns)}" if item.destroyed_ns else ("held " + ",".join(holds) if holds
                                                                                 else "kept")
        print(f"{item.id:<32} {item.kind:<8} {item.camera_id:<18} {item.incident_id:<20} {iso(item.start_ns):<20} "
              f"{item.bytes:>9} {iso(item.due_ns):<20} {state}  sha256:{item.sha256}")
    return 0


def print_holds(holds: list) -> None:
    """The active legal holds as a table on stdout (``vigie evidence holds``, ``vigie register show --holds``)."""
    from vigie.evidence.catalogue import hold_scope, iso

    print(f"{'HOLD':<32} {'REQUISITION':<28} {'SCOPE':<50} {'PLACED BY':<16} PLACED")
    for hold in holds:
        print(f"{hold.id:<32} {hold.requisition[:28]:<28} {hold_scope(hold):<50} {hold.placed_by:<16} "
              f"{iso(hold.placed_ns)}")
    print(f"{len(holds)} active legal hold(s)")


def _holds(args: argparse.Namespace) -> int:
    async def work(catalogue, _):  # noqa: ANN001, ANN202
        return await catalogue.active_holds()

    print_holds(asyncio.run(_with_catalogue(args, work)))
    return 0


def _hold(args: argparse.Namespace) -> int:
    from vigie.evidence.catalogue import parse_time

    if bool(args.incident) == bool(args.camera) or (args.camera and not (args.start and args.end)):
        raise ValueError("give --incident ID, or --camera ID with --from and --to")
    start = parse_time(args.start) if args.camera else 0
    end = parse_time(args.end) if args.camera else 0

    async def work(catalogue, engine):  # noqa: ANN001, ANN202
        by = await _supervisor(args, engine)
        return await catalogue.place_hold(args.requisition, by, time.time_ns(), incident_id=args.incident or "",
                                          camera_id=args.camera or "", start_ns=start, end_ns=end)

    hold = asyncio.run(_with_catalogue(args, work))
    print(f"legal hold {hold.id} placed for requisition {hold.requisition!r} (recorded in the register)")
    return 0


def _release(args: argparse.Namespace) -> int:
    async def work(catalogue, engine):  # noqa: ANN001, ANN202
        by = await _supervisor(args, engine)
        return await catalogue.release_hold(args.hold, by, time.time_ns())

    hold = asyncio.run(_with_catalogue(args, work))
    print(f"legal hold {hold.id} lifted (requisition {hold.requisition!r}; recorded in the register)")
    return 0


def _transmit(args: argparse.Namespace) -> int:
    from pathlib import Path

    from vigie.evidence.catalogue import EvidenceError
    from vigie.evidence.transmit import build_bundle, items_for

    folder = Path(args.output)
    if folder.exists() and any(folder.iterdir()):
        raise EvidenceError(f"{folder} is not empty: give a new folder for the bundle")

    async def work(catalogue, engine):  # noqa: ANN001, ANN202
        by = await _supervisor(args, engine)
        items = await items_for(catalogue, incidents=args.incident or (), hold_id=args.hold or "")
        return await build_bundle(catalogue, engine, items, requisition=args.requisition, authority=args.authority,
                                  by=by, now_ns=time.time_ns())

    transmission_id, files = asyncio.run(_with_catalogue(args, work))
    for name, data in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    items = sum(name.startswith("items/") for name in files)
    print(f"transmission {transmission_id}: {items} item(s) for {args.authority!r} written to {folder} "
          "(check it with `sha256sum -c SHA256SUMS` there; recorded in the register)")
    return 0


def parse_requester(text: str) -> tuple[int, tuple[int, int, int, int]]:
    """``"T:x,y,w,h"`` (T ISO 8601, UTC when no offset; the box in pixels of the frames) as
    ``(ns since the epoch, (x, y, w, h))``. Raises ValueError (bad usage) saying what is expected."""
    from vigie.evidence.catalogue import EvidenceError, parse_time

    when, _, box = text.rpartition(":")
    try:
        values = tuple(int(v) for v in box.split(","))
        at = parse_time(when)
    except (ValueError, EvidenceError):
        values, at = (), 0
    if len(values) != 4 or not when:
        raise ValueError(f"--requester {text!r}: give TIME:x,y,w,h, e.g. 2026-12-05T10:00:03Z:212,96,40,110 "
                         "(the requester's box in pixels on the frame captured at TIME)")
    return at, values


def _access_export(args: argparse.Namespace, kafka: KafkaSettings) -> int:
    import json
    import os
    from pathlib import Path

    from vigie.core.cameras import load_cameras
    from vigie.evidence.catalogue import parse_time
    from vigie.evidence.exports import make_access_export

    start, end = parse_time(args.start), parse_time(args.end)
    marked_at, box = parse_requester(args.requester)
    cameras = load_cameras(args.cameras)
    folder = Path(args.output)
    folder.mkdir(parents=True, exist_ok=True)

    async def work(catalogue, engine):  # noqa: ANN001, ANN202
        by = await _supervisor(args, engine)
        export_id, clip, manifest = await make_access_export(kafka, catalogue, cameras, args.camera, start, end,
                                                             marked_at, box, by=by, method=args.method,
                                                             persons=args.persons)
        paths = {ext: folder / f"access-{export_id}.{ext}" for ext in ("mp4", "json")}
        for ext, data in (("mp4", clip.data), ("json", (json.dumps(manifest, indent=2, sort_keys=True,
                                                                   ensure_ascii=False) + "\n").encode())):
            staged = paths[ext].with_name(paths[ext].name + ".part")
            staged.write_bytes(data)
            os.replace(staged, paths[ext])
        return manifest, paths

    manifest, paths = asyncio.run(_with_catalogue(args, work))
    print(f"access export {manifest['export']}: {manifest['frames']} frame(s) of {args.camera}, "
          f"{manifest['boxes_anonymised']} person box(es) {'blurred' if args.method == 'blur' else 'blacked out'} "
          f"({manifest['person_source']}), requester followed on {manifest['requester']['frames_followed']} "
          f"frame(s): {paths['mp4']} and {paths['json']} (sha256:{manifest['sha256']}; recorded in the register)")
    return 0


def _purge(args: argparse.Namespace) -> int:
    async def work(catalogue, _):  # noqa: ANN001, ANN202
        return await catalogue.purge(time.time_ns())

    gone = asyncio.run(_with_catalogue(args, work))
    print(f"{len(gone)} item(s) destroyed (each recorded in the register)")
    return 0


def _serve(args: argparse.Namespace, kafka: KafkaSettings) -> int:
    from vigie.core.lifecycle import serve
    from vigie.evidence.app import EvidenceService, EvidenceSettings
    from vigie.evidence.store import StoreSettings

    settings = EvidenceSettings(kafka=kafka, database=_database(args), cameras_file=args.cameras,
                                store=StoreSettings(location=args.store, retention_days=args.retention_days),
                                http_host=args.http_host, http_port=args.http_port)
    return asyncio.run(serve(EvidenceService(settings), settings.http_host, settings.http_port))


def _command(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """``run`` with refusals on stderr (exit 1), an unreachable database (exit 3), bad values (exit 2)."""

    def command(args: argparse.Namespace) -> int:
        from vigie.core.db import DatabaseUnavailable
        from vigie.core.errors import ConfigError
        from vigie.evidence.catalogue import EvidenceError
        from vigie.evidence.store import StoreError

        try:
            return run(args)
        except (EvidenceError, StoreError) as exc:
            print(f"vigie evidence {args.evidence_action}: {exc}", file=sys.stderr)
            return EXIT_REFUSED
        except DatabaseUnavailable as exc:
            print(f"vigie evidence: {exc}", file=sys.stderr)
            return EXIT_DATABASE
        except ValueError as exc:
            raise ConfigError(str(exc)) from None

    return command


def add_arguments(parser: argparse.ArgumentParser, kafka: Callable[[argparse.Namespace], KafkaSettings]) -> None:
    """The ``evidence`` sub-commands on ``parser``."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--database", help="database (default $VIGIE_DATABASE_URL, else sqlite:///var/vigie.db)")
    common.add_argument("--store", default="var/evidence", help="the evidence store: a folder (default var/evidence) or "
                        "s3://BUCKET[/PREFIX][?endpoint=URL] (credentials from AWS_* variables or files)")
    supervised = argparse.ArgumentParser(add_help=False)
    supervised.add_argument("--supervisor", required=True, help="the supervisor's account name")
    supervised.add_argument("--password-stdin", action="store_true", help="read the password from stdin's first line")
    sub = parser.add_subparsers(dest="evidence_action", required=True)
    p = sub.add_parser("serve", parents=[common], help="run the evidence service")
    p.add_argument("--cameras", required=True, help="cameras YAML (its authorisations give the retention)")
    p.add_argument("--retention-days", type=bounded(int, 1, 30), help="keep evidence at most this many days "
                   "(lower than the authorisations only)")
    p.add_argument("--http-host", default="127.0.0.1")
    p.add_argument("--http-port", type=bounded(int, 0, 65535), default=8095)
    p.set_defaults(func=lambda args: _serve(args, kafka(args)))
    p = sub.add_parser("list", parents=[common], help="evidence items, their hash, due date and holds")
    p.add_argument("--camera")
    p.add_argument("--incident")
    p.add_argument("--destroyed", action="store_true", help="the destroyed items too")
    p.set_defaults(func=_command(_list))
    p = sub.add_parser("holds", parents=[common], help="the active legal holds")
    p.set_defaults(func=_command(_holds))
    for name, text in (("hold", "place a legal hold (a supervisor)"), ("release", "lift a legal hold (a supervisor)")):
        p = sub.add_parser(name, parents=[common, supervised], help=text)
        if name == "hold":
            p.add_argument("--requisition", required=True, help="the judicial requisition's reference")
            p.add_argument("--incident", help="hold this incident's evidence")
            p.add_argument("--camera", help="hold this camera's evidence over --from..--to")
            p.add_argument("--from", dest="start", help="start (ISO 8601, UTC when no offset)")
            p.add_argument("--to", dest="end", help="end (ISO 8601, UTC when no offset)")
            p.set_defaults(func=_command(_hold))
        else:
            p.add_argument("hold", help="the hold's id (vigie evidence holds)")
            p.set_defaults(func=_command(_release))
    p = sub.add_parser("transmit", parents=[common, supervised], help="write the bundle of a judicial requisition "
                       "(a supervisor): the clips, a manifest with their SHA-256 and the register's extract")
    p.add_argument("--requisition", required=True, help="the judicial requisition's reference")
    p.add_argument("--authority", required=True, help="the judicial authority it goes to")
    p.add_argument("--incident", action="append", help="an incident whose evidence goes (repeatable)")
    p.add_argument("--hold", help="or: everything this legal hold covers")
    p.add_argument("--output", required=True, help="a new (or empty) folder for the bundle")
    p.set_defaults(func=_command(_transmit))
    p = sub.add_parser("access-export", parents=[common, supervised], help="the right of access (a supervisor): "
                       "a camera's images of the requester over a range, every other person blurred, recorded")
    p.add_argument("--camera", required=True)
    p.add_argument("--from", dest="start", required=True, help="start (ISO 8601, UTC when no offset)")
    p.add_argument("--to", dest="end", required=True, help="end (ISO 8601, UTC when no offset)")
    p.add_argument("--requester", required=True, help="TIME:x,y,w,h: the requester's box (pixels) on the frame "
                   "captured at TIME, followed from there by box overlap")
    p.add_argument("--cameras", required=True, help="cameras YAML (its authorisations give the retention)")
    p.add_argument("--output", required=True, help="folder for access-<id>.mp4 and access-<id>.json (the manifest)")
    p.add_argument("--method", choices=("blur", "black"), default="blur", help="how others are hidden (default blur)")
    p.add_argument("--persons", choices=("auto", "objects", "foreground"), default="auto",
                   help="how people are found: the object-class stage, foreground blobs, or auto (the stage when "
                   "installed)")
    p.set_defaults(func=_command(lambda args: _access_export(args, kafka(args))))
    p = sub.add_parser("purge", parents=[common], help="destroy now the evidence past its retention, not held")
    p.set_defaults(func=_command(_purge))
