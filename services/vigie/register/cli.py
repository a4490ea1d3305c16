"""``vigie register``: run the register service, verify its chain, show and export its entries.

* ``vigie register [serve] [--database URL] [--retention-days N] [--batch-size N] [--verify-interval-s S]
  [--http-port 8094]``
  runs the service until SIGTERM/SIGINT.
* ``vigie register verify``: exit 0 and ``chain intact: N entries``, or exit 1 naming the first
  bad entry (seq, id, what is wrong).
* ``vigie register show [--since ISO] [--until ISO] [--camera ID] [--user NAME] [--kind KIND]``:
  a table of the entries (``--limit``, ``--after-seq`` to page); ``show --holds``: the active legal holds.
* ``vigie register export --format csv|json [--output FILE]`` with the same filters: every
  matching entry with its hashes (what a prefecture or a data-protection authority asks for).

Every command takes ``--database URL`` (default ``$VIGIE_DATABASE_URL``, else
``sqlite:///var/vigie.db``). Exit codes: 0 done, 1 chain broken or service failure, 2 bad
usage, 3 the database could not be read (its redacted URL and the reason on stderr).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vigie.core.errors import ConfigError
from vigie.core.options import bounded, output_file
from vigie.core.settings import KafkaSettings

#: Exit code when the database cannot be read.
EXIT_DATABASE = 3


def _time_ns(text: str | None, option: str) -> int | None:
    """ISO 8601 (naive means UTC) to ns since the epoch. Raises ConfigError naming ``option``."""
    from vigie.register.query import time_ns_of

    if text is None:
        return None
    try:
        return time_ns_of(text)
    except ValueError as exc:
        raise ConfigError(f"{option} {exc}") from None


def _iso(ns: int) -> str:
    from vigie.register.query import iso_of

    return iso_of(ns)


def _database(args: argparse.Namespace):  # noqa: ANN202
    from vigie.core.db import DatabaseSettings

    return DatabaseSettings(url=args.database) if args.database else DatabaseSettings()


async def _with_engine(args: argparse.Namespace, work: Callable[[Any], Any]) -> Any:
    """Run ``work(engine)`` on the register's database (which must exist); raises DatabaseUnavailable."""
    from sqlalchemy.exc import SQLAlchemyError
    from sqlalchemy.engine import make_url

    from vigie.core.db import DatabaseUnavailable, describe_db_error, make_engine

    database = _database(args)
    if database.is_sqlite:
        path = make_url(database.url).database or ""
        if path != ":memory:" and not Path(path).is_file():
            raise DatabaseUnavailable(f"database {database.redacted()}: no such file (no register there)")
    engine = make_engine(database)
    try:
        return await work(engine)
    except BrokenPipeError:
        raise  # the reader of the output went away: not the database's fault
    except (SQLAlchemyError, OSError, asyncio.TimeoutError) as exc:
        raise DatabaseUnavailable(describe_db_error(database, exc)) from None
    finally:
        await engine.dispose()


def _filters(args: argparse.Namespace) -> dict[str, Any]:
    return {"since_ns": _time_ns(args.since, "--since"), "until_ns": _time_ns(args.until, "--until"),
            "camera": args.camera, "user": args.user, "kind": args.kind}


def _serve(args: argparse.Namespace, kafka: KafkaSettings) -> int:
    from vigie.core.lifecycle import serve
    from vigie.register.app import RegisterService, RegisterSettings

    settings = RegisterSettings(kafka=kafka, database=_database(args), retention_days=args.retention_days,
                                batch_size=args.batch_size, verify_interval_s=args.verify_interval_s,
                                http_host=args.http_host, http_port=args.http_port)
    return asyncio.run(serve(RegisterService(settings), settings.http_host, settings.http_port))


def _verify(args: argparse.Namespace) -> int:
    """Verify the chain; with ``--expect SEQ:HASH`` (a head noted earlier, kept outside the database) also check
    that entry SEQ still has that chain hash: a rewrite of the whole chain from before SEQ is then caught."""
    from sqlalchemy import select

    from vigie.register.models import RegisterEntry
    from vigie.register.query import verify_chain

    expected = _expected_head(args.expect) if args.expect else None

    async def work(engine):  # noqa: ANN001, ANN202
        result = await verify_chain(engine)
        async with engine.connect() as connection:
            head = (await connection.execute(select(RegisterEntry.chain_hash).where(
                RegisterEntry.seq == result.head_seq))).scalar_one_or_none() if result.head_seq else None
            kept = (await connection.execute(select(RegisterEntry.chain_hash).where(
                RegisterEntry.seq == expected[0]))).scalar_one_or_none() if expected else None
        return result, head, kept

    result, head, kept = asyncio.run(_with_engine(args, work))
    if result.ok and expected and kept != expected[1]:
        what = "is no longer in the register" if kept is None else f"has chain hash {kept}"
        print(f"chain rewritten: entry seq {expected[0]} {what}, not the {expected[1]} noted "
              f"(the chain is consistent, so it was recomputed after an edit)")
        return 1
    if result.ok:
        span = f" (seq {result.first_seq}..{result.head_seq})" if result.checked else ""
        print(f"chain intact: {result.checked} entries{span}" + (f"; entry seq {expected[0]} as noted" if expected
                                                                 else ""))
        if head:
            print(f"head: {result.head_seq}:{head}  (keep it outside the database: verify --expect "
                  f"{result.head_seq}:{head} later proves nothing before it was rewritten)")
        return 0
    entry = f" (entry {result.entry_id})" if result.entry_id else ""
    at = f"seq {result.first_bad_seq}" if result.first_bad_seq is not None else "its ends"
    print(f"chain broken at {at}{entry}: {result.reason}; {result.checked} entries intact before it")
    return 1


def _expected_head(text: str) -> tuple[int, str]:
    """``SEQ:HASH`` of ``--expect``. Raises ValueError (a usage error) when it is not that."""
    seq, _, digest = text.partition(":")
    if not seq.isdigit() or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise ValueError(f"--expect {text[:80]!r}: expected SEQ:HASH as printed by verify (a number, ':', 64 hex digits)")
    return int(seq), digest


def _cell(value: str) -> "Text":
    """A table cell showing ``value`` as written: no Rich markup, control and format characters as escapes."""
    from rich.text import Text

    return Text("".join(c if c.isprintable() else f"\\x{ord(c):02x}" if ord(c) < 256 else f"\\u{ord(c):04x}"
                        for c in value))


def _show(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from vigie.register.query import list_entries

    if args.holds:
        from vigie.evidence.catalogue import active_holds
        from vigie.evidence.cli import print_holds

        print_holds(asyncio.run(_with_engine(args, active_holds)))
        return 0
    filters = _filters(args)
    rows = asyncio.run(_with_engine(args, lambda e: list_entries(e, after_seq=args.after_seq, limit=args.limit,
                                                                 **filters)))
    table = Table(title=f"register: {len(rows)} entries" + (f" after seq {args.after_seq}" if args.after_seq else ""))
    for column in ("seq", "time (UTC)", "kind", "user", "station", "camera", "incident", "record", "service",
                   "client", "detail"):
        table.add_column(column, overflow="fold")
    for row in rows:
        detail = row["detail"] if not row["subject"] else f"{row['subject']}: {row['detail']}"
        # Anyone may write a user name (a failed login): shown as text, never as Rich markup or terminal codes.
        table.add_row(*(_cell(v) for v in (str(row["seq"]), _iso(row["at_ns"]), row["kind"], row["user"],
                                           row["station"], row["camera_id"], row["incident_id"], row["record"],
                                           row["service"], row["client"], detail[:200])))
    # Piped (to a file, a pager, grep): wide rows rather than columns folded to a few characters.
    Console(width=None if sys.stdout.isatty() else 400).print(table)
    if len(rows) == args.limit:
        print(f"more: --after-seq {rows[-1]['seq']}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from vigie.register.query import export_text

    filters = _filters(args)
    out = open(args.output, "w", newline="", encoding="utf-8") if args.output else sys.stdout

    async def write(engine: Any) -> int:
        count = -1  # the first piece is the CSV header or the JSON array's opening
        async for piece in export_text(engine, args.format, **filters):
            out.write(piece)
            count += 1
        return count - (args.format == "json")  # the JSON array's closing

    try:
        count = asyncio.run(_with_engine(args, write))
    except BrokenPipeError:
        sys.stderr.write("vigie register export: the output was closed before the end\n")
        return 1
    finally:
        if out is not sys.stdout:
            out.close()
    print(f"exported {count} entries" + (f" to {args.output}" if args.output else ""), file=sys.stderr)
    return 0


def _database_option(parser: argparse.ArgumentParser, default: Any) -> None:
    parser.add_argument("--database", default=default, metavar="URL", help="sqlite:///file.db or "
                        "postgresql://user@host/db (default $VIGIE_DATABASE_URL, else sqlite:///var/vigie.db)")


def _serve_options(parser: argparse.ArgumentParser, default: Callable[[Any], Any]) -> None:
    _database_option(parser, default(None))
    parser.add_argument("--retention-days", type=bounded(int, 1, 36500), default=default(365),
                        help="days an entry is kept (default 365; the register holds no image)")
    parser.add_argument("--batch-size", type=bounded(int, 1, 10000), default=default(500),
                        help="most entries appended per database transaction (default 500)")
    parser.add_argument("--verify-interval-s", type=bounded(float, 10, 86400), default=default(3600.0),
                        help="seconds between two verifications of the chain by the service (10-86400, default "
                        "3600), exported as vigie_register_chain_ok and vigie_register_chain_verified_*")
    parser.add_argument("--http-host", default=default("127.0.0.1"), help="address of /healthz and /metrics")
    parser.add_argument("--http-port", type=int, default=default(8094), help="port of /healthz and /metrics (8094)")


def _filter_options(parser: argparse.ArgumentParser) -> None:
    _database_option(parser, argparse.SUPPRESS)
    parser.add_argument("--since", help="entries at or after this time (ISO 8601, UTC when naive)")
    parser.add_argument("--until", help="entries before this time (ISO 8601, UTC when naive)")
    parser.add_argument("--camera", help="camera id")
    parser.add_argument("--user", help="the person the entries are about")
    parser.add_argument("--kind", help="kind of entry: view, export, purge, hold, action, login, login_failed, "
                        "logout, account_change, camera_config, camera_started, camera_stopped, service_started, "
                        "service_stopped")


def add_arguments(parser: argparse.ArgumentParser, kafka: Callable[[argparse.Namespace], KafkaSettings]) -> None:
    """Add the ``register`` group's options and subcommands to ``parser`` (``vigie register ...``).

    ``kafka`` builds the Kafka settings from the parsed arguments (the ``vigie`` command's own).
    Each subcommand sets ``func`` to a function of the arguments returning the exit code.
    """
    _serve_options(parser, lambda value: value)
    parser.set_defaults(func=_command(lambda args: _serve(args, kafka(args))))
    sub = parser.add_subparsers(dest="register_action", metavar="{serve,verify,show,export}")
    p = sub.add_parser("serve", help="run the register service (the default)")
    _serve_options(p, lambda _: argparse.SUPPRESS)
    p = sub.add_parser("verify", help="check the hash chain; exit 1 naming the first bad entry")
    _database_option(p, argparse.SUPPRESS)
    p.add_argument("--expect", metavar="SEQ:HASH", help="a head printed by an earlier verify and kept outside the "
                   "database: exit 1 unless that entry still has that chain hash (catches a recomputed chain)")
    p.set_defaults(func=_command(_verify))
    p = sub.add_parser("show", help="list entries as a table")
    _filter_options(p)
    p.add_argument("--limit", type=bounded(int, 1, 10000), default=100, help="most entries shown (default 100)")
    p.add_argument("--after-seq", type=bounded(int, 0), default=0, help="show entries after this seq (paging)")
    p.add_argument("--holds", action="store_true", help="list the active legal holds instead (requisition, scope, "
                   "who placed them, when)")
    p.set_defaults(func=_command(_show))
    p = sub.add_parser("export", help="write every matching entry, hashes included, as CSV or JSON")
    _filter_options(p)
    p.add_argument("--format", choices=["csv", "json"], required=True)
    p.add_argument("--output", type=output_file, help="file to write (default: standard output)")
    p.set_defaults(func=_command(_export))


def _command(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """``run`` with an unreadable database reported on stderr (exit :data:`EXIT_DATABASE`), a bad filter
    as a configuration error (exit 2)."""

    def command(args: argparse.Namespace) -> int:
        from vigie.core.db import DatabaseUnavailable

        try:
            return run(args)
        except DatabaseUnavailable as exc:
            print(f"vigie register: {exc}", file=sys.stderr)
            return EXIT_DATABASE
        except ValueError as exc:
            raise ConfigError(str(exc)) from None

    return command
