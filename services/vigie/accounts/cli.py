"""``vigie users add|list|disable|enable|passwd|assign``: console accounts from the command line.

Passwords are read from the terminal (getpass, typed twice) or from the first line of stdin with
``--password-stdin``; never from the command line or the environment, where other users of the
machine and shell histories could read them. ``--one-time`` makes a random password, prints it
once, and the console asks for a new one at the first login.

Every change writes an ``ACCOUNT_CHANGE`` audit entry (service ``users``; operator: who ran the
command, the OS user or ``--as NAME``; subject: the account) into the database's outbox in the
same transaction, then publishes the outbox to the ``audit`` topic. When the broker does not
answer the change is still made and the command says that its entries wait in the outbox (the
register service publishes them later). Exit codes: 0 done, 1 refused or failed, 2 bad usage.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import sys
import time
from pathlib import Path

from aiokafka.errors import KafkaError
from pydantic import ValidationError
from sqlalchemy.engine import make_url

from vigie.accounts.models import ROLES
from vigie.accounts.outbox import flush_outbox, pending
from vigie.accounts.passwords import WeakPassword, check_password, generate_password
from vigie.accounts.store import Account, AccountError, AccountStore
from vigie.core.audit import AuditLog
from vigie.core.db import DatabaseSettings, DatabaseUnavailable, check_reachable, make_engine, migrate
from vigie.core.errors import BrokerUnavailable, ConfigError
from vigie.core.kafka import make_producer, partitions_of, wait_for_broker
from vigie.core.settings import KafkaSettings
from vigie.core.topics import Topics

#: Seconds the command waits for the broker to take the audit entries.
PUBLISH_TIMEOUT_S = 15.0


class _RefusePassword(argparse.Action):
    """``--password`` (in any spelling): refused without repeating what followed it (it may be a password)."""

    def __call__(self, parser: argparse.ArgumentParser, *_: object) -> None:
        parser.error("a password is never taken from the command line: type it when asked, or use "
                     "--password-stdin or --one-time")


def add_arguments(sub: argparse._SubParsersAction) -> None:
    """Add the ``users`` command and its actions to the ``vigie`` parser's subcommands."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--database", help="database URL (default $VIGIE_DATABASE_URL, else sqlite:///var/vigie.db)")
    common.add_argument("--as", dest="as_user", metavar="NAME",
                        help="who makes the change, for the register (default: the OS user running the command)")
    secret = argparse.ArgumentParser(add_help=False)
    how = secret.add_mutually_exclusive_group()
    how.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    secret.add_argument("--password", "--pass", "--passwd", "--pw", nargs="?", action=_RefusePassword,
                        help=argparse.SUPPRESS)
    how.add_argument("--one-time", action="store_true", help="generate a random password, print it once, and "
                     "require a new one at the first login")
    roles = f"comma-separated roles among {', '.join(ROLES)}"
    p = sub.add_parser("users", help="console accounts: add, list, disable, enable, passwd, assign")
    actions = p.add_subparsers(dest="users_action", required=True)
    a = actions.add_parser("add", parents=[common, secret], allow_abbrev=False, help="create an account (password typed twice, "
                           "--password-stdin or --one-time)")
    a.add_argument("name", help="user name (letters, digits, '.', '_', '@', '-')")
    a.add_argument("--roles", required=True, help=roles)
    a.add_argument("--stations", default="", help="comma-separated station ids whose incidents the user sees")
    actions.add_parser("list", parents=[common], help="list the accounts (never a password)")
    for name, help_ in (("disable", "disable an account; its sessions end"),
                        ("enable", "enable an account again; its lockout is cleared")):
        actions.add_parser(name, parents=[common], help=help_).add_argument("name")
    a = actions.add_parser("passwd", parents=[common, secret], allow_abbrev=False, help="set an account's password; its sessions end")
    a.add_argument("name")
    a = actions.add_parser("assign", parents=[common], help="replace an account's roles and/or stations")
    a.add_argument("name")
    a.add_argument("--roles", help=roles)
    a.add_argument("--stations", help="comma-separated station ids ('' for none)")
    p.set_defaults(func=None)


def _split(text: str | None) -> list[str] | None:
    return None if text is None else [item for item in text.split(",") if item.strip()]


def _read_password(args: argparse.Namespace) -> tuple[str, bool]:
    """``(password, one-time)`` as the options say. Raises AccountError (no terminal, mismatch, empty)."""
    if args.one_time:
        return generate_password(), True
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise AccountError("no password on stdin (--password-stdin reads its first line)")
        return password, False
    if not sys.stdin.isatty():
        raise AccountError("no terminal to read the password from: use --password-stdin or --one-time "
                           "(a password is never taken from the command line)")
    password = getpass.getpass(f"New password for {args.name}: ")
    check_password(args.name, password)
    if getpass.getpass("Again: ") != password:
        raise AccountError("the two passwords differ: nothing changed")
    return password, False


def _row(account: Account) -> str:
    state = "disabled" if account.disabled else "enabled"
    if account.locked_until > time.time():
        state += time.strftime(", locked until %H:%M:%S", time.localtime(account.locked_until))
    created = time.strftime("%Y-%m-%d %H:%M", time.localtime(account.created_at))
    change = "yes" if account.must_change_password else "no"
    return (f"{account.name:<24} {','.join(account.roles) or '-':<28} {','.join(account.stations) or '-':<24} "
            f"{state:<28} {change:<11} {created}")


async def _change(args: argparse.Namespace, store: AccountStore, by: str) -> list[str]:
    """Make the change the action asks for; returns the lines to print."""
    action = args.users_action
    if action == "add":
        password, one_time = _read_password(args)
        account = await store.add(args.name, password, _split(args.roles) or [], _split(args.stations) or [],
                                  by=by, must_change=one_time)
        lines = [f"created {account.name}: roles {','.join(account.roles)}, stations "
                 f"{','.join(account.stations) or '(none)'}"]
    elif action == "passwd":
        if await store.get(args.name) is None:  # before asking for a password
            raise AccountError(f"no user named {args.name[:80]!r}")
        password, one_time = _read_password(args)
        await store.set_password(args.name, password, by=by, must_change=one_time)
        lines = [f"password of {args.name} set; its console sessions ended"]
    elif action in ("disable", "enable"):
        await store.set_disabled(args.name, action == "disable", by=by)
        lines = [f"{args.name} {action}d" + ("; its console sessions ended" if action == "disable" else "")]
    else:
        if args.roles is None and args.stations is None:
            raise AccountError("give --roles and/or --stations")
        account = await store.assign(args.name, roles=_split(args.roles), stations=_split(args.stations), by=by)
        lines = [f"{account.name}: roles {','.join(account.roles)}, stations {','.join(account.stations) or '(none)'}"]
    if action in ("add", "passwd") and one_time:
        lines.append(f"one-time password of {args.name} (shown once; a new one is asked at the first login): "
                     f"{password}")
    return lines


async def _publish(engine, kafka: KafkaSettings, database: DatabaseSettings) -> str:  # noqa: ANN001
    """Publish the outbox; returns a line saying what happened (never raises for the broker)."""
    topic = Topics(kafka.namespace).audit
    try:
        await wait_for_broker(kafka, timeout_s=5.0)
        if not await partitions_of(kafka, topic):
            raise BrokerUnavailable(f"topic {topic.name} does not exist (vigie topics apply creates it)")
        producer = make_producer(kafka)
        await asyncio.wait_for(producer.start(), PUBLISH_TIMEOUT_S)
        try:
            sent = await asyncio.wait_for(flush_outbox(engine, AuditLog(producer, topic)), PUBLISH_TIMEOUT_S)
        finally:
            await producer.stop()
        return f"audit: {sent} entr{'y' if sent == 1 else 'ies'} published to the register"
    except (BrokerUnavailable, KafkaError, OSError, asyncio.TimeoutError) as exc:
        left = await pending(engine)
        reason = "no answer in time" if isinstance(exc, asyncio.TimeoutError) else str(exc)[:200]
        return (f"audit: the Kafka broker at {kafka.bootstrap} did not take the entries ({reason}); {left} wait in "
                f"the outbox of {database.redacted()}, the register service publishes them")


def _check_sqlite_file(args: argparse.Namespace, database: DatabaseSettings) -> None:
    """A SQLite file that does not exist is created by ``add`` only (and said so): any other action there would
    read, or change, a database nothing uses (a command run from another folder). Raises AccountError."""
    if not database.is_sqlite:
        return
    path = make_url(database.url).database or ""
    if path in ("", ":memory:") or Path(path).exists():
        return
    if args.users_action != "add":
        raise AccountError(f"no database at {Path(path).resolve()} (from {database.redacted()}): run the "
                           "command where the services run, or give --database")
    print(f"creating the accounts database {Path(path).resolve()}", file=sys.stderr)


async def _run(args: argparse.Namespace, kafka: KafkaSettings, database: DatabaseSettings) -> int:
    _check_sqlite_file(args, database)
    engine = make_engine(database)
    try:
        await check_reachable(engine, database)
        await migrate(engine, database)
        store = AccountStore(engine)
        if args.users_action == "list":
            print(f"{'NAME':<24} {'ROLES':<28} {'STATIONS':<24} {'STATE':<28} {'NEW PW DUE':<11} CREATED")
            for account in await store.list():
                print(_row(account))
            return 0
        by = args.as_user or getpass.getuser()
        for line in await _change(args, store, by):
            print(line)
        print(await _publish(engine, kafka, database), file=sys.stderr)
        return 0
    finally:
        await engine.dispose()


def main(args: argparse.Namespace, kafka: KafkaSettings) -> int:
    """Run one ``vigie users`` action; returns the exit code (messages on stderr, no traceback)."""
    try:
        database = DatabaseSettings(**({"url": args.database} if args.database else {}))
    except ValidationError as exc:
        raise ConfigError(f"--database: {exc.errors()[0]['msg']}") from None
    logging.getLogger("alembic").setLevel(logging.WARNING)
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # _publish says in one line what failed
    try:
        return asyncio.run(_run(args, kafka, database))
    except (AccountError, WeakPassword, DatabaseUnavailable) as exc:
        print(f"vigie users {args.users_action}: {exc}", file=sys.stderr)
        return 1
