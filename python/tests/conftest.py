"""A throwaway PostgreSQL for the package's tests, and a fresh database per test.

The server: $DATABASE_URL if set (the tests CREATE and DROP scratch databases
there), else a local cluster from the PostgreSQL binaries (initdb/pg_ctl, run
as `nobody` when root), else a Docker `postgres:15` container. The component:
$WASMIG_PLUGIN, else the one `cargo build` leaves in target/plugin/.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.parse
import uuid
from pathlib import Path

import psycopg
import pytest

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "fastapi-before.sql"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(url: str, seconds: float = 30):
    end = time.monotonic() + seconds
    while True:
        try:
            psycopg.connect(url, connect_timeout=2).close()
            return
        except psycopg.OperationalError:
            if time.monotonic() > end:
                raise
            time.sleep(0.2)


def _pg_bin() -> Path | None:
    for d in [os.environ.get("PG_BIN"), "/usr/lib/postgresql/15/bin"]:
        if d and (Path(d) / "initdb").exists():
            return Path(d)
    found = shutil.which("initdb")
    return Path(found).parent if found else None


@pytest.fixture(scope="session")
def server_url():
    if os.environ.get("DATABASE_URL"):
        yield os.environ["DATABASE_URL"]
        return
    provider = os.environ.get("WASMIG_PG_PROVIDER", "")
    pg_bin = _pg_bin()
    if provider != "docker" and pg_bin is not None:
        tmp = Path(tempfile.mkdtemp(prefix="wasmig-pytest-pg."))
        tmp.chmod(0o755)
        as_pg = ["runuser", "-u", "nobody", "--"] if os.getuid() == 0 else []
        if as_pg:
            shutil.chown(tmp, "nobody")
        port = _free_port()
        subprocess.run(as_pg + [str(pg_bin / "initdb"), "-D", str(tmp / "data"), "-U", "postgres", "--auth=trust", "--no-sync"],
                       check=True, capture_output=True)
        subprocess.run(as_pg + [str(pg_bin / "pg_ctl"), "-D", str(tmp / "data"), "-l", str(tmp / "log"), "-w", "-o",
                                f"-p {port} -k {tmp} -c listen_addresses=127.0.0.1 -c fsync=off", "start"], check=True, capture_output=True)
        url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        try:
            _wait(url)
            yield url
        finally:
            subprocess.run(as_pg + [str(pg_bin / "pg_ctl"), "-D", str(tmp / "data"), "-m", "immediate", "stop"], capture_output=True)
            shutil.rmtree(tmp, ignore_errors=True)
        return
    port = _free_port()
    cid = subprocess.run(["docker", "run", "-d", "--rm", "-e", "POSTGRES_PASSWORD=pytest-pw", "-p", f"127.0.0.1:{port}:5432",
                          "postgres:15", "-c", "fsync=off"], check=True, capture_output=True, text=True).stdout.strip()
    url = f"postgresql://postgres:pytest-pw@127.0.0.1:{port}/postgres"
    try:
        _wait(url, 60)
        yield url
    finally:
        subprocess.run(["docker", "rm", "-f", cid], capture_output=True)


@pytest.fixture
def db_url(server_url):
    """A fresh, empty database; dropped after the test."""
    name = f"wasmig_py_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    parts = urllib.parse.urlsplit(server_url)
    yield urllib.parse.urlunsplit(parts._replace(path="/" + name))
    with psycopg.connect(server_url, autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def plugin_path() -> Path:
    path = Path(os.environ.get("WASMIG_PLUGIN") or ROOT / "target" / "plugin" / "wasmig_plugin.component.wasm")
    if not path.is_file():
        pytest.fail(f"no component at {path}: run `cargo build -p wasmig` or set WASMIG_PLUGIN (`wasmig plugin --out FILE`)")
    return path


@pytest.fixture(scope="session")
def plugin(plugin_path):
    from wasmig import Plugin

    return Plugin(plugin_path)


def load_fixture(url: str):
    """Loads the FastApiv1.6 schema (297 tables, alembic_version e63da1a343bc)."""
    subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-f", str(FIXTURE)], check=True,
                   capture_output=True)


def snapshot(url: str) -> tuple:
    """(schema as pg_dump prints it, md5 of every row of every public table, alembic_version, wasmig history)."""
    schema = subprocess.run(["pg_dump", "--schema-only", "--no-owner", "--exclude-schema=wasmig", "-d", url], check=True, capture_output=True,
                            text=True).stdout
    schema = "\n".join(l for l in schema.splitlines() if not l.startswith(("--", "\\restrict", "\\unrestrict")) and l.strip())
    with psycopg.connect(url) as c:
        tables = [r[0] for r in c.execute(
            "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind = 'r' ORDER BY relname")]
        rows = {t: c.execute(f'SELECT md5(string_agg(md5(x::text), \',\' ORDER BY md5(x::text))) FROM "{t}" x').fetchone()[0]
                for t in tables}
        history = "-"
        if c.execute("SELECT to_regclass('wasmig.revisions') IS NOT NULL").fetchone()[0]:
            history = c.execute(
                "SELECT (SELECT coalesce(string_agg(revision || ':' || state, ',' ORDER BY revision), '') FROM wasmig.revisions) "
                "|| '|' || (SELECT count(*)::text FROM wasmig.log)").fetchone()[0]
    return schema, rows, history
