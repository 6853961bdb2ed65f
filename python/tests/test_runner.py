"""The package's runner on real PostgreSQL: the same history and checks as the Rust host."""

from __future__ import annotations

import psycopg
import pytest

from conftest import FIXTURE, snapshot
from wasmig import ChecksumMismatch, DataInUse, PsycopgSession, Refused, Runner, field
from wasmig.runner import DatabaseError

ROWS = FIXTURE.with_name("fastapi-rows.sql")


def runner(conn, plugin) -> Runner:
    return Runner(plugin, PsycopgSession(conn))


def run_sql_file(url, path):
    import subprocess

    subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-f", str(path)], check=True, capture_output=True)


def test_empty_database_up_and_down_records_the_history_the_cli_reads(db_url, plugin):
    with psycopg.connect(db_url, autocommit=True) as conn:
        r = runner(conn, plugin)
        head = r.ids[-1]
        assert r.upgrade(head, adopt=False) == [f"up {i}" for i in r.ids]
        assert r.status() == (head, None)
        assert r.verify(head) == []
        assert {row[0]: row[2] for row in r.recorded()} == {i: "applied" for i in r.ids}
        assert r.downgrade(None) == [f"down {i}" for i in reversed(r.ids)]
        assert r.status() == (None, None)
        tables = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()[0]
        assert tables == 0
        log = [tuple(x) for x in conn.execute("SELECT action, revision FROM wasmig.log ORDER BY id")]
        assert log == [("up", i) for i in r.ids] + [("down", i) for i in reversed(r.ids)]


def test_each_schema_has_its_own_history_and_a_search_path_naming_none_is_refused(db_url, plugin):
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute('CREATE SCHEMA "Tenant A"; CREATE SCHEMA tenant_b')
        a = Runner(plugin, PsycopgSession(conn), schema="Tenant A")
        head = a.ids[-1]
        assert a.upgrade(head, adopt=False) == [f"up {i}" for i in a.ids]
        assert a.verify(head) == []
        b = Runner(plugin, PsycopgSession(conn), schema="tenant_b")
        assert b.status() == (None, None)
        b.upgrade(a.ids[0], adopt=False)
        assert (a.status()[0], b.status()[0]) == (head, a.ids[0])
        # Nothing went to public, whose history is empty too.
        assert conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()[0] == 0
        assert runner(conn, plugin).status() == (None, None)
        rows = conn.execute("SELECT schema, count(*) FROM wasmig.revisions GROUP BY 1 ORDER BY 1").fetchall()
        assert [tuple(r) for r in rows] == [("Tenant A", len(a.ids)), ("tenant_b", 1)]
        assert a.downgrade(None) == [f"down {i}" for i in reversed(a.ids)]
        assert b.status() == (a.ids[0], None)
        with pytest.raises(Refused, match="does not exist"):
            Runner(plugin, PsycopgSession(conn), schema="nosuch").status()
        conn.execute("SET search_path = nosuch")
        with pytest.raises(Refused, match="nosuch"):
            runner(conn, plugin).status()


def test_the_fastapi_schema_is_adopted_and_alembic_version_is_left_to_alembic(fastapi_db, plugin):
    db_url = fastapi_db
    run_sql_file(db_url, ROWS)
    schema0, rows0, _ = snapshot(db_url)
    with psycopg.connect(db_url, autocommit=True) as conn:
        r = runner(conn, plugin)
        head = r.ids[-1]
        assert r.upgrade(head) == [f"stamp {i}" for i in r.ids[:-1]] + [f"up {head}"]
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone()[0] == "e63da1a343bc"
        # The downgrade restores the application's schema and every row exactly.
        r.downgrade(r.ids[-2])
    schema1, rows1, history = snapshot(db_url)
    assert schema1 == schema0
    assert {t: d for t, d in rows1.items()} == rows0
    assert history.startswith("erp_base:applied|")


def test_a_changed_checksum_is_refused_and_nothing_changes(db_url, plugin):
    with psycopg.connect(db_url, autocommit=True) as conn:
        r = runner(conn, plugin)
        r.upgrade(r.ids[0], adopt=False)
        conn.execute("UPDATE wasmig.revisions SET checksum = 'deadbeef'")
        before = snapshot(db_url)
        with pytest.raises(ChecksumMismatch, match="was applied with checksum deadbeef"):
            r.upgrade(r.ids[-1])
        assert snapshot(db_url) == before
        with pytest.raises(Refused, match="unknown revision `nope`"):
            r.upgrade("nope")


CHECK_FORM = """
ALTER TABLE inventory_alerts ADD CONSTRAINT inventory_alerts_alert_type_check
    CHECK (alert_type IN ('low_stock', 'out_of_stock', 'reorder'));
ALTER TABLE inventory_transactions ADD CONSTRAINT inventory_transactions_reference_type_check
    CHECK (reference_type IN ('job', 'purchase', 'manual', 'transfer'));
"""


def test_a_downgrade_guard_raises_data_in_use_and_nothing_changes(fastapi_db, plugin):
    db_url = fastapi_db
    run_sql_file(db_url, ROWS)
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(CHECK_FORM)
        r = runner(conn, plugin)
        r.upgrade(r.ids[-1])
        conn.execute("UPDATE inventory_transactions SET reference_type = 'manufacturing_order'")
        before = snapshot(db_url)
        with pytest.raises(DataInUse, match="wasmig: cannot remove") as e:
            r.downgrade(r.ids[-2])
        assert "\n" not in str(e.value) and "inventory_transactions" in str(e.value)
        assert snapshot(db_url) == before


def test_a_failing_statement_is_one_line_and_names_the_step(db_url, plugin):
    with psycopg.connect(db_url, autocommit=True) as conn:
        session = PsycopgSession(conn)
        with pytest.raises(DatabaseError) as e:
            session.execute("SELECT * FROM no_such_table")
        assert "\n" not in str(e.value) and "no_such_table" in str(e.value)
