"""`upgrade()` / `downgrade()` for Alembic revision scripts written by
`wasmig alembic-revision`.

They run on Alembic's own connection (`op.get_bind()`): transactional steps in
Alembic's transaction (so they commit with its `alembic_version` update), the
others in `op.get_context().autocommit_block()`. The history goes into
`wasmig.revisions` / `wasmig.log` as the Rust host's does, so `wasmig current`
and `wasmig verify` agree with `alembic current`; `alembic_version` itself is
left to Alembic. A downgrade that would drop data (a table with rows, a
column with values other than NULL or its default) is refused by the
plugin's guards unless WASMIG_ALLOW_DATA_LOSS=1 is set. Any refusal (plan
error, drift, checksum, lint, a downgrade guard, verify findings) is raised as a `wasmig.WasmigError` with a one-line
message, and Alembic rolls its transaction back.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from .errors import ChecksumMismatch, Refused
from .plugin import Plugin, field
from .runner import DatabaseError, Runner, _one_line

_PLUGINS: dict = {}


class AlembicSession:
    """A runner `Session` on Alembic's migration connection."""

    def __init__(self, op):
        self.op = op
        self.bind = op.get_bind()

    def rows(self, sql, params=()):
        try:
            result = self.bind.exec_driver_sql(sql, params) if params else self.bind.exec_driver_sql(sql)
            return result.fetchall() if result.returns_rows else []
        except Exception as e:
            raise DatabaseError(_one_line(e)) from None

    def execute(self, sql):
        try:
            # exec_driver_sql with no parameters: the SQL goes to the driver as it is.
            self.bind.exec_driver_sql(sql)
        except Exception as e:
            raise DatabaseError(_one_line(e)) from None

    def transaction(self):
        # Alembic's transaction (per migration or for the whole run) is already open.
        return contextlib.nullcontext()

    def outside_transaction(self):
        return self.op.get_context().autocommit_block()


def _plugin(script_file: str, plugin_file: str) -> Plugin:
    path = Path(os.environ.get("WASMIG_PLUGIN") or Path(script_file).resolve().parent / plugin_file)
    key = str(path)
    if key not in _PLUGINS:  # compiling takes ~1 s; a process running several scripts pays it once
        _PLUGINS[key] = Plugin(path)
    return _PLUGINS[key]


def _runner(op, script_file, plugin_file, revision, checksum) -> Runner:
    ctx = op.get_context()
    if ctx.as_sql:
        raise Refused(
            f"wasmig revision {revision} plans against the live catalog, so `alembic --sql` (offline mode) cannot run it: "
            f"print the script with `wasmig sql --from <previous wasmig revision> --to {revision}` instead")
    plugin = _plugin(script_file, plugin_file)
    allow_data_loss = os.environ.get("WASMIG_ALLOW_DATA_LOSS", "") not in ("", "0", "false", "no")
    # The CLI's --schema; unset = the first existing schema of the search path, as there.
    schema = os.environ.get("WASMIG_SCHEMA") or None
    runner = Runner(plugin, AlembicSession(op), allow_data_loss=allow_data_loss, schema=schema)
    revs = {field(r, "id"): field(r, "checksum") for r in runner.revisions}
    previous = {field(r, "id"): list(field(r, "previous-checksums")) for r in runner.revisions}
    if revision not in revs:
        raise Refused(f"the plugin {plugin.path} has no revision {revision} (it has {', '.join(revs)}): "
                      f"write the plugin this script was generated with, `wasmig plugin --out {plugin.path}`")
    if revs[revision] != checksum and checksum not in previous[revision]:
        raise ChecksumMismatch(
            f"the plugin {plugin.path} has revision {revision} with checksum {revs[revision]}, but this script was generated "
            f"for checksum {checksum}: the migration changed. Write the matching plugin with `wasmig plugin --out {plugin.path}`, "
            f"or generate a new revision script with `wasmig alembic-revision`")
    return runner


def upgrade(op, script_file: str, plugin_file: str, revision: str, checksum: str) -> list:
    """Brings the database to wasmig `revision`: earlier wasmig revisions the
    schema already has are stamped (an Alembic-built database is adopted), a
    revision the CLI already applied is only verified. Returns the moves."""
    return _runner(op, script_file, plugin_file, revision, checksum).upgrade(revision)


def downgrade(op, script_file: str, plugin_file: str, revision: str, checksum: str) -> list:
    """Reverts wasmig `revision` (to its down-revision in the wasmig chain), then verifies."""
    runner = _runner(op, script_file, plugin_file, revision, checksum)
    down = field(runner.revisions[runner.position(revision) - 1], "down-revision")
    return runner.downgrade(down)
