"""The revision script `wasmig alembic-revision` writes, run by Alembic itself
(in-process `alembic.command`) on the FastApiv1.6 schema."""

from __future__ import annotations

import os
import shutil
import subprocess

import psycopg
import pytest

from conftest import ROOT, snapshot
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
    env = {k: v for k, v in os.environ.items() if k != "WASMIG_PLUGIN"}
    subprocess.run([wasmig_bin, "--plugin", str(plugin_path), "alembic-revision", "--down-revision", APP_HEAD,
                    "--out", str(versions)], check=True, capture_output=True, env=env)
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


def test_upgrade_downgrade_upgrade_through_alembic(app, fastapi_db, monkeypatch):
    monkeypatch.delenv("WASMIG_PLUGIN", raising=False)
    db_url = fastapi_db
    alembic(app, db_url, "upgrade", "head")
    assert version(db_url) == HEAD
    alembic(app, db_url, "downgrade", "-1")
    assert version(db_url) == APP_HEAD
    alembic(app, db_url, "upgrade", "head")
    assert version(db_url) == HEAD
    with psycopg.connect(db_url) as c:
        log = [tuple(r) for r in c.execute("SELECT action, revision FROM wasmig.log ORDER BY id")]
    assert log == [("stamp", "erp_base"), ("up", HEAD), ("down", HEAD), ("up", HEAD)]


def test_a_changed_plugin_is_refused_before_anything_runs(app, fastapi_db, monkeypatch):
    monkeypatch.delenv("WASMIG_PLUGIN", raising=False)
    db_url = fastapi_db
    script = app / "migrations" / "versions" / f"{HEAD}_wasmig.py"
    text = script.read_text()
    script.write_text(text.replace("WASMIG_CHECKSUM = '", "WASMIG_CHECKSUM = '0"))
    before = snapshot(db_url)
    with pytest.raises(ChecksumMismatch, match="this script was generated for checksum 0"):
        alembic(app, db_url, "upgrade", "head")
    assert snapshot(db_url) == before
    assert version(db_url) == APP_HEAD


def test_a_refused_downgrade_leaves_alembic_where_it_was(app, fastapi_db, monkeypatch):
    monkeypatch.delenv("WASMIG_PLUGIN", raising=False)
    db_url = fastapi_db
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

    # A downgrade that would drop a column holding data is refused (WIT 0.2.0 allow-data-loss = false) ...
    with psycopg.connect(db_url, autocommit=True) as c:
        c.execute("DELETE FROM inventory_transactions WHERE reference_type = 'manufacturing_order'")
        c.execute("SET session_replication_role = replica")
        c.execute("INSERT INTO manufacturing_orders (organization_id, bom_id, planned_quantity, voucher_number, date, "
                  "total_amount, machine_id) VALUES (1, 1, 1, 'MO-1', now(), 1, 'press-7')")
    before = snapshot(db_url)
    with pytest.raises(DataInUse, match="would lose data.*WASMIG_ALLOW_DATA_LOSS=1") as e:
        alembic(app, db_url, "downgrade", "-1")
    assert "\n" not in str(e.value) and "manufacturing_orders" in str(e.value)
    assert snapshot(db_url) == before
    assert version(db_url) == HEAD
    # ... unless the operator allows it.
    monkeypatch.setenv("WASMIG_ALLOW_DATA_LOSS", "1")
    alembic(app, db_url, "downgrade", "-1")
    assert version(db_url) == APP_HEAD
