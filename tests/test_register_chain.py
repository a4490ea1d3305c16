"""The register's chain on a real SQLite file and a real PostgreSQL: append once, tampering named by
``vigie register verify``, retention that keeps the chain verifiable, filters and exports."""

from __future__ import annotations

import asyncio
import csv
import json
import time

import pytest

from tests.register_support import counts, database_url, keep_log_handlers, run, sample, seed, sql
from vigie.cli import main
from vigie.contracts.v1 import AuditEntry
from vigie.core import audit
from vigie.core.db import DatabaseSettings, make_engine
from vigie.register.chain import GENESIS, canonical, content_hash, link
from vigie.register.models import ENTRY_COLUMNS
from vigie.register.query import list_entries
from vigie.register.store import prune

DAY_NS = 86400 * 10**9
_handlers = pytest.fixture(autouse=True)(keep_log_handlers)


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path) -> str:
    """A fresh database of each kind."""
    return database_url(request.param, tmp_path, request)


def verify_cli(url: str, capsys) -> tuple[int, str]:  # noqa: ANN001
    code = main(["register", "verify", "--database", url])
    return code, capsys.readouterr().out


def test_canonical_content_is_stable() -> None:
    fields = {"seq": 1, "entry_id": "a", "kind": "view", "at_ns": 5, "appended_ns": 6, "user": "zoé", "station": "",
              "camera_id": "c", "incident_id": "", "record": "", "service": "station", "client": "", "subject": "",
              "detail": "d"}
    assert canonical(fields) == ('{"appended_ns":6,"at_ns":5,"camera_id":"c","client":"","detail":"d","entry_id":"a",'
                                 '"incident_id":"","kind":"view","record":"","seq":1,"service":"station",'
                                 '"station":"","subject":"","user":"zoé"}').encode()
    tricky = {**fields, "detail": 'quote " backslash \\ newline \n tab \t nul-free \x01 emoji \U0001f600', "at_ns": 2**62}
    assert canonical(tricky) == json.dumps(tricky, sort_keys=True, ensure_ascii=False,
                                           separators=(",", ":")).encode()
    assert link(GENESIS, content_hash(fields)) == link("0" * 64, content_hash(dict(fields)))


def test_append_once_and_intact(url: str, capsys) -> None:  # noqa: ANN001
    messages = sample(40)
    first = run(seed(url, messages))
    again = run(seed(url, messages[:30] + sample(5, start=40)))  # 30 replayed, 5 new
    assert (first.appended, first.duplicates, first.head_seq) == (40, 0, 40)
    assert (again.appended, again.duplicates, again.head_seq) == (5, 30, 45)
    assert run(counts(url)) == (45, 45)
    code, out = verify_cli(url, capsys)
    assert code == 0 and "chain intact: 45 entries" in out
    row = run(sql(url, "SELECT * FROM register_entries WHERE seq = 5"))[0]._mapping
    assert tuple(row.keys()) == ENTRY_COLUMNS  # the migration and the models agree
    m = messages[4]
    assert (row["entry_id"], row["kind"], row["user"], row["camera_id"], row["record"], row["detail"]) == (
        m.id, "account_change", "user-1", "cam-0", "frames/0/4", "entry 4 – é")
    assert (row["subject"], row["station"], row["client"], row["at_ns"]) == ("bob", "main", "10.0.0.7", m.at_ns)
    assert row["prev_hash"] == run(sql(url, "SELECT chain_hash FROM register_entries WHERE seq = 4"))[0][0]


@pytest.mark.parametrize("tamper", ["edit", "delete", "swap", "truncate"])
def test_tampering_is_named(url: str, tamper: str, capsys) -> None:  # noqa: ANN001
    run(seed(url, sample(30)))
    ids = {r.seq: r.entry_id for r in run(sql(url, "SELECT seq, entry_id FROM register_entries"))}
    if tamper == "edit":
        run(sql(url, "UPDATE register_entries SET detail = 'nothing to see' WHERE seq = 12"))
        expected = ("seq 12", ids[12], "edited")
    elif tamper == "delete":
        run(sql(url, "DELETE FROM register_entries WHERE seq = 12"))
        expected = ("seq 12", ids[13], "removed")
    elif tamper == "truncate":
        run(sql(url, "DELETE FROM register_entries WHERE seq >= 29"))
        expected = ("seq 29", "", "removed")
    else:  # rows 12 and 20 exchange places, each with its own hashes
        cols = ("entry_id, kind, at_ns, appended_ns, \"user\", station, camera_id, incident_id, record, service, "
                "client, subject, detail, content_hash, prev_hash, chain_hash")
        run(sql(url, "CREATE TABLE swap AS SELECT * FROM register_entries WHERE seq IN (12, 20)",
                "DELETE FROM register_entries WHERE seq IN (12, 20)",
                f"INSERT INTO register_entries (seq, {cols}) SELECT 32 - seq, {cols} FROM swap", "DROP TABLE swap"))
        expected = ("seq 12", ids[20], "reordered")
    code, out = verify_cli(url, capsys)
    assert code == 1, out
    where, entry_id, what = expected
    assert f"chain broken at {where}" in out and f"{what}:" in out
    assert entry_id in out


def test_retention_keeps_the_chain_verifiable(url: str, capsys) -> None:  # noqa: ANN001
    now = time.time_ns()
    run(seed(url, sample(50, at_ns=now - 400 * DAY_NS) + sample(20, at_ns=now - DAY_NS, start=50)))

    async def prune_now() -> int:
        engine = make_engine(DatabaseSettings(url=url))
        try:
            return await prune(engine, now - 365 * DAY_NS)
        finally:
            await engine.dispose()

    assert run(prune_now()) == 50
    assert run(prune_now()) == 0
    run(seed(url, sample(5, start=70)))
    code, out = verify_cli(url, capsys)
    assert code == 0 and "chain intact: 26 entries (seq 51..76)" in out, out
    note = run(sql(url, "SELECT kind, service, detail FROM register_entries WHERE seq = 71"))[0]
    assert note.kind == "purge" and json.loads(note.detail)["deleted"] == 50
    # Entries removed under the anchor without a retention entry saying so are seen.
    run(sql(url, "DELETE FROM register_entries WHERE seq <= 55",
            "UPDATE register_anchor SET first_seq = 56, prev_hash = "
            "(SELECT prev_hash FROM register_entries WHERE seq = 56)"))
    code, out = verify_cli(url, capsys)
    assert code == 1 and "chain broken at seq 56" in out and "retention entry" in out, out


def test_show_and_export_filters(url: str, tmp_path, capsys) -> None:  # noqa: ANN001
    now = time.time_ns()
    run(seed(url, sample(24, at_ns=now - 3600 * 10**9) + sample(12, at_ns=now, start=24)))

    async def listing(**filters):  # noqa: ANN003, ANN202
        engine = make_engine(DatabaseSettings(url=url))
        try:
            return await list_entries(engine, **filters)
        finally:
            await engine.dispose()

    rows = run(listing(camera="cam-2", user="user-2", kind="login"))
    assert [r["seq"] for r in rows] == [3, 15, 27]
    page = run(listing(since_ns=now - 10**9, after_seq=30, limit=3))
    assert [r["seq"] for r in page] == [31, 32, 33]
    assert main(["register", "show", "--database", url, "--camera", "cam-2", "--limit", "2"]) == 0
    out = capsys.readouterr().out
    assert "more: --after-seq 7" in out
    out_csv, out_json = tmp_path / "r.csv", tmp_path / "r.json"
    assert main(["register", "export", "--database", url, "--format", "csv", "--output", str(out_csv),
                 "--kind", "view"]) == 0
    exported = list(csv.DictReader(out_csv.open(encoding="utf-8")))
    assert len(exported) == 6 and {r["kind"] for r in exported} == {"view"} and exported[0]["chain_hash"]
    assert main(["register", "export", "--database", url, "--format", "json", "--output", str(out_json),
                 "--until", "2000-01-01T00:00:00Z"]) == 0
    assert json.loads(out_json.read_text()) == []
    assert main(["register", "show", "--database", url, "--kind", "nonsense"]) == 2


def test_postgresql_connections_plan_each_lookup(postgres) -> None:
    """Defect found by the bench: asyncpg prepares statements and PostgreSQL kept the generic plan it made
    while the register was nearly empty (a sequential scan), so each append's id lookup grew with the
    register (1,200 entries/s at 100,000 entries). Vigie's connections plan every execution: the lookup
    uses the entry id's index at any size."""
    from sqlalchemy import text

    from vigie.core.db import DatabaseSettings, make_engine

    async def settings_seen() -> tuple[str, str]:
        engine = make_engine(DatabaseSettings(url=postgres.create_db("plans")))
        try:
            async with engine.connect() as connection:
                mode = (await connection.execute(text("SHOW plan_cache_mode"))).scalar_one()
                name = (await connection.execute(text("SHOW application_name"))).scalar_one()
                return mode, name
        finally:
            await engine.dispose()

    assert asyncio.run(settings_seen()) == ("force_custom_plan", "vigie")


def test_a_recomputed_chain_is_caught_against_a_head_kept_elsewhere(url: str, capsys) -> None:  # noqa: ANN001
    """A trial found that someone with write access who edits an entry and recomputes every later hash and
    the head leaves a chain that verifies. `verify` prints the head (seq:hash) to keep outside the database;
    `verify --expect SEQ:HASH` then fails on such a rewrite."""
    run(seed(url, sample(30)))
    code, out = verify_cli(url, capsys)
    noted = next(line.split()[1] for line in out.splitlines() if line.startswith("head: "))
    assert code == 0 and noted.startswith("30:")
    rows = [dict(r._mapping) for r in run(sql(url, "SELECT * FROM register_entries ORDER BY seq"))]
    prev = rows[10]["chain_hash"]
    statements = []
    for row in rows[11:]:  # seq 12 edited, then every hash after it recomputed
        if row["seq"] == 12:
            row["user"] = "nobody"
        row["content_hash"] = content_hash(row)
        row["prev_hash"], row["chain_hash"] = prev, link(prev, row["content_hash"])
        prev = row["chain_hash"]
        statements.append(f"UPDATE register_entries SET \"user\" = '{row['user']}', content_hash = "
                          f"'{row['content_hash']}', prev_hash = '{row['prev_hash']}', chain_hash = "
                          f"'{row['chain_hash']}' WHERE seq = {row['seq']}")
    statements.append(f"UPDATE register_anchor SET head_hash = '{prev}' WHERE id = 1")
    run(sql(url, *statements))
    code, out = verify_cli(url, capsys)
    assert code == 0 and "chain intact: 30 entries" in out  # consistent on its own: why the head is kept apart
    code = main(["register", "verify", "--database", url, "--expect", noted])
    out = capsys.readouterr().out
    assert code == 1 and "chain rewritten: entry seq 30" in out
    assert main(["register", "verify", "--database", url, "--expect", "30:nothex"]) == 2


def test_show_prints_what_anyone_typed_as_text(tmp_path, capsys) -> None:  # noqa: ANN001
    """A failed login's user name is typed by anyone: `register show` printed Rich markup in it as formatting
    (a name '[b][/b]admin' showed as 'admin') and terminal escape codes raw. Both are now shown as written."""
    url = f"sqlite:///{tmp_path / 'register.db'}"
    names = ["[b][/b]admin", "\x1b[2J\x1b[31mred", "[link=http://evil.example]x[/link]"]
    run(seed(url, [audit.entry(AuditEntry.KIND_LOGIN_FAILED, service="station", user=n) for n in names]))
    assert main(["register", "show", "--database", url]) == 0
    out = capsys.readouterr().out
    assert "[b][/b]admin" in out and "\x1b[2J" not in out and "\\x1b[2J" in out
    assert "[link=http://evil.example]x[/link]" in out


def test_csv_export_shows_formulas_as_text_json_stays_exact(tmp_path, capsys) -> None:  # noqa: ANN001
    """A failed login as '=cmd|"/c calc"!A1' was exported to CSV as a formula a spreadsheet would run.
    CSV cells starting with = + - @ now begin with ', so they are text; the JSON export keeps every value."""
    url = f"sqlite:///{tmp_path / 'register.db'}"
    tricky = '=cmd|"/c calc"!A1'
    run(seed(url, [audit.entry(AuditEntry.KIND_LOGIN_FAILED, service="station", user=tricky, detail="@SUM(1)")]))
    out_csv, out_json = tmp_path / "r.csv", tmp_path / "r.json"
    assert main(["register", "export", "--database", url, "--format", "csv", "--output", str(out_csv)]) == 0
    assert main(["register", "export", "--database", url, "--format", "json", "--output", str(out_json)]) == 0
    (row,) = list(csv.DictReader(out_csv.open(encoding="utf-8")))
    assert row["user"] == "'" + tricky and row["detail"] == "'@SUM(1)" and row["kind"] == "login_failed"
    (exact,) = json.loads(out_json.read_text(encoding="utf-8"))
    assert exact["user"] == tricky and exact["content_hash"] == content_hash(exact)
