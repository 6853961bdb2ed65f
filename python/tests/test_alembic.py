"""The revision script `wasmig alembic-revision` writes, run by Alembic itself
(in-process `alembic.command`) on the FastApiv1.6 schema."""

from __future__ import annotations

import os
import shutil
import subprocess

import psycopg
import pytest

from conftest import ROOT, load_fixture, snapshot
from wasmig import ChecksumMismatch, DataInUse

HEAD = "manufacturing_module_v1"
APP_HEAD = "e63da1a343bc"


@pytest.fixture
def app(tmp_path, plugin_path):
    """A copy of ci/alembic-app with the generated wasmig revision in its versions directory."""
    wasmig_bin = os.environ.get("WASMIG_BIN") or str(ROOT / "target" / "debug" / "wasmig")
    if not os.path.exists(wasmig_bin):
        pytest.fail(f"no wasmig binary at {wasmig_bin}: run `cargo build -p wasmig` or set WASMIG_BIN")
    shutil.copytree(ROOT / "ci" / "alembic-app", tmp_path / "app")
    versions = tmp_path / "app" / "migrations" / "versions"
    subprocess.run([wasmig_bin, "--plugin", str(plugin_path), "alembic-revision", "--down-revision", APP_HEAD,
                    "--out", str(versions)], check=True, capture_output=True, env={**os.environ, "WASMIG_PLUGIN": ""})
    return tmp_path / "app"


def alembic(app, db_url, *args):
    from alembic import command
    from alembic.config import Config

    os.environ["DATABASE_URL"] = db_url
    cfg = Config(str(app / "alembic.ini"))
    getattr(command, args[0])(cfg, *args[1:])


def version(url):
    with psycopg.connect(url) as c:
        return c.execute("SELECT version_num FROM alembic_version").fetchone()[0]


def test_upgrade_downgrade_upgrade_through_alembic(app, db_url, monkeypatch):
    monkeypatch.delenv("WASMIG_PLUGIN", raising=False)
    load_fixture(db_url)
    alembic(app, db_url, "upgrade", "head")
    assert version(db_url) == HEAD
    alembic(app, db_url, "downgrade", "-1")
    assert version(db_url) == APP_HEAD
    alembic(app, db_url, "upgrade", "head")
    assert version(db_url) == HEAD
    with psycopg.connect(db_url) as c:
        log = [tuple(r) for r in c.execute("SELECT action, revision FROM wasmig.log ORDER BY id")]
    assert log == [("stamp", "erp_base"), ("up", HEAD), ("down", HEAD), ("up", HEAD)]


def test_a_changed_plugin_is_refused_before_anything_runs(app, db_url, monkeypatch):
    monkeypatch.delenv("WASMIG_PLUGIN", raising=False)
    load_fixture(db_url)
    script = app / "migrations" / "versions" / f"{HEAD}_wasmig.py"
    text = script.read_text()
    script.write_text(text.replace("WASMIG_CHECKSUM = '", "WASMIG_CHECKSUM = '0"))
    before = snapshot(db_url)
    with pytest.raises(ChecksumMismatch, match="this script was generated for checksum 0"):
        alembic(app, db_url, "upgrade", "head")
    assert snapshot(db_url) == before
    assert version(db_url) == APP_HEAD


def test_a_refused_downgrade_leaves_alembic_where_it_was(app, db_url, monkeypatch):
    monkeypatch.delenv("WASMIG_PLUGIN", raising=False)
    load_fixture(db_url)
    with psycopg.connect(db_url, autocommit=True) as c:
        c.execute("ALTER TABLE inventory_transactions ADD CONSTRAINT inventory_transactions_reference_type_check "
                  "CHECK (reference_type IN ('job', 'purchase', 'manual', 'transfer'))")
        c.execute("ALTER TABLE inventory_alerts ADD CONSTRAINT inventory_alerts_alert_type_check "
                  "CHECK (alert_type IN ('low_stock', 'out_of_stock', 'reorder'))")
    alembic(app, db_url, "upgrade", "head")
    with psycopg.connect(db_url, autocommit=True) as c:
        c.execute("SET session_replication_role = replica")
        c.execute("INSERT INTO inventory_transactions (organization_id, product_id, transaction_type, quantity, unit, "
                  "stock_before, stock_after, transaction_date, reference_type) "
                  "VALUES (1, 1, 'issue', 1, 'pcs', 1, 0, now(), 'manufacturing_order')")
    before = snapshot(db_url)
    with pytest.raises(DataInUse, match="wasmig: cannot remove"):
        alembic(app, db_url, "downgrade", "-1")
    assert snapshot(db_url) == before
    assert version(db_url) == HEAD
