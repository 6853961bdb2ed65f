"""Plans, runs and records revisions on one PostgreSQL session, the way the
Rust host's runner does (`host/src/runner.rs`), and into the same history
tables (`wasmig.revisions`, `wasmig.log`), so `wasmig current`, `history` and
`verify` see what a Python run did, and the reverse.

What matches the Rust host: the target schema (`schema=`, else the first
existing schema of the search path, never wasmig's own), every plan qualified
with it and one history per schema; one session advisory lock per database (same
key), recorded checksums checked before anything runs, each revision planned
against the live catalog at that moment, error-level lint findings refused,
consecutive transactional steps in one transaction with the history row, the
others alone with an `applying` / `reverting` marker so a stopped run resumes,
downgrade guards reported as `DataInUse`, and `verify` after every move.

What differs: no retry loop on `lock_timeout` (inside Alembic the transaction
is Alembic's to roll back, so statements wait for their locks as Alembic's
own would), and the host-side SQL sandbox (`host/src/sandbox.rs`) is not
re-implemented: plans come only from the component, whose revision checksums
are checked against the history and the generated script.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Iterator, Optional, Protocol

from .errors import ChecksumMismatch, DataInUse, LintError, LockTimeout, Refused, StepFailed, VerifyFailed, WasmigError
from .plugin import Plugin, field

log = logging.getLogger("wasmig")

#: The advisory lock key the Rust runner takes (`host/src/runner.rs`, LOCK_KEY).
LOCK_KEY = "2063385703, hashtext(current_database())"

#: The default target schema (`host/src/schema.rs`, DEFAULT_SQL): the first schema of the
#: effective search path that is neither wasmig's history schema nor a system schema.
DEFAULT_SCHEMA_SQL = ("(SELECT s FROM unnest(current_schemas(false)) WITH ORDINALITY AS p(s, i) "
                      "WHERE s <> 'wasmig' AND s NOT LIKE 'pg\\_%%' AND s <> 'information_schema' ORDER BY i LIMIT 1)")

HISTORY_DDL = """
CREATE SCHEMA IF NOT EXISTS wasmig;
CREATE TABLE IF NOT EXISTS wasmig.revisions (
    schema text NOT NULL,
    revision text NOT NULL,
    checksum text NOT NULL,
    state text NOT NULL CHECK (state IN ('applying', 'applied', 'reverting')),
    alembic_before text,
    applied_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (schema, revision)
);
CREATE TABLE IF NOT EXISTS wasmig.log (
    id bigserial PRIMARY KEY,
    schema text NOT NULL,
    revision text NOT NULL,
    action text NOT NULL CHECK (action IN ('up', 'down', 'stamp')),
    checksum text NOT NULL,
    at timestamptz NOT NULL DEFAULT now(),
    execution_ms bigint,
    by_role text NOT NULL DEFAULT current_user
)"""


class DatabaseError(Exception):
    """What the server said about a statement, as one line (raised by sessions)."""


class Session(Protocol):
    """One PostgreSQL connection as the runner needs it. Parameters use `%s`."""

    def rows(self, sql: str, params: tuple = ()) -> list:
        """All rows of a query."""

    def execute(self, sql: str) -> None:
        """Runs one statement as it is (no parameter substitution)."""

    def transaction(self) -> contextlib.AbstractContextManager:
        """A block whose statements commit together (or an enclosing transaction's)."""

    def outside_transaction(self) -> contextlib.AbstractContextManager:
        """A block run in autocommit mode, for steps that cannot run in a transaction."""


class PsycopgSession:
    """A `Session` on a psycopg 3 connection opened with `autocommit=True`."""

    def __init__(self, conn):
        self.conn = conn

    def rows(self, sql, params=()):
        try:
            return self.conn.execute(sql, params).fetchall()
        except Exception as e:
            raise DatabaseError(_one_line(e)) from None

    def execute(self, sql):
        try:
            self.conn.execute(sql.encode("utf-8"))  # bytes: no placeholder parsing
        except Exception as e:
            raise DatabaseError(_one_line(e)) from None

    def transaction(self):
        return self.conn.transaction()

    def outside_transaction(self):
        return contextlib.nullcontext()


def _one_line(e: Exception) -> str:
    text = str(getattr(e, "orig", None) or e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def is_comment_only(sql: str) -> bool:
    """Whether a step's SQL is only comments (a "nothing to change" step)."""
    return all(not line.strip() or line.lstrip().startswith("--") for line in sql.splitlines())


def _value(session: Session, sql: str, params: tuple = ()):
    rows = session.rows(sql, params)
    return rows[0][0] if rows else None


class Runner:
    """Runs one plugin's chain on one session.

    `allow_lint`: rules whose error-level lint findings are let through (the
    CLI's `--allow`). `online`: force CONCURRENTLY index builds on or off
    (None: when the table has rows). `allow_data_loss`: leave out the guards
    that refuse a downgrade dropping data (`--allow-data-loss`). `lock_wait`:
    seconds to wait for another run's advisory lock. `schema`: the schema to
    migrate, as stored (the CLI's `--schema`); None = the first existing
    schema of the search path other than wasmig's own.
    """

    def __init__(self, plugin: Plugin, session: Session, allow_lint=(), online=None, lock_wait: float = 60.0,
                 allow_data_loss: bool = False, schema: Optional[str] = None):
        self.plugin = plugin
        self._requested_schema = schema or None
        self._schema: Optional[str] = None
        self.allow_data_loss = allow_data_loss
        self.session = session
        self.allow_lint = set(allow_lint)
        self.online = online
        self.lock_wait = lock_wait
        self.revisions = plugin.revisions()
        self.ids = [field(r, "id") for r in self.revisions]

    # --- where the database stands ---

    def position(self, rev: Optional[str]) -> int:
        """0 = nothing applied; i = the i-th revision. Refuses unknown ids."""
        if rev is None:
            return 0
        if rev == "head":
            return len(self.ids)
        if rev not in self.ids:
            raise Refused(f"unknown revision `{rev}`: the plugin has {', '.join(self.ids)} (or `head`)")
        return self.ids.index(rev) + 1

    def _id_at(self, pos: int) -> Optional[str]:
        return self.ids[pos - 1] if pos > 0 else None

    @property
    def schema(self) -> str:
        """The schema this runner migrates, resolved on first use (as the Rust host does at connect)."""
        if self._schema is None:
            self._schema = self._resolve_schema()
        return self._schema

    def _resolve_schema(self) -> str:
        name = self._requested_schema
        if name is not None:
            if name == "wasmig":
                raise Refused("schema wasmig is wasmig's own history schema and holds no application tables: "
                              "name the application's schema. Nothing was changed")
            if name.startswith("pg_") or name == "information_schema":
                raise Refused(f"schema {name} is a PostgreSQL system schema: name the application's schema. "
                              "Nothing was changed")
            if not _value(self.session, "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = %s)", (name,)):
                quoted = _value(self.session, "SELECT quote_ident(%s)", (name,))
                raise Refused(f"schema {quoted} does not exist: create it first (CREATE SCHEMA {quoted};) or check "
                              "the name (as stored, without quotes). Nothing was changed")
            return name
        rows = self.session.rows(f"SELECT {DEFAULT_SCHEMA_SQL}, current_setting('search_path')")
        found, path = rows[0][0], rows[0][1]
        if found is None:
            raise Refused(f"no schema to migrate: search_path is `{path}` and names no schema that exists and this "
                          "role may use (wasmig's own aside). Name it (schema=, WASMIG_SCHEMA, the CLI's --schema), "
                          "create the schema, or fix the search_path. Nothing was changed")
        return found

    def history_layout(self) -> str:
        """'missing', 'unscoped' (written before schemas were explicit) or 'per-schema'."""
        tables, scoped = self.session.rows(
            "SELECT count(DISTINCT c.relname), count(a.attname) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'schema' AND NOT a.attisdropped "
            "WHERE n.nspname = 'wasmig' AND c.relname IN ('revisions', 'log')")[0]
        if tables != 2:
            return "missing"
        return "per-schema" if scoped == 2 else "unscoped"

    def history_exists(self) -> bool:
        return self.history_layout() != "missing"

    def _unscoped_rows_are_ours(self) -> bool:
        # Rows written before schemas were explicit belong to the schema the default rule picks.
        default = _value(self.session, f"SELECT {DEFAULT_SCHEMA_SQL}") or "public"
        return default == self.schema

    def recorded(self) -> list:
        """(revision, checksum, state, alembic_before) rows of wasmig.revisions for this schema."""
        layout = self.history_layout()
        if layout == "missing" or (layout == "unscoped" and not self._unscoped_rows_are_ours()):
            return []
        if layout == "unscoped":
            return self.session.rows(
                "SELECT revision, checksum, state, alembic_before FROM wasmig.revisions ORDER BY applied_at, revision")
        return self.session.rows(
            "SELECT revision, checksum, state, alembic_before FROM wasmig.revisions WHERE schema = %s "
            "ORDER BY applied_at, revision", (self.schema,))

    def _ensure_history(self):
        """Creates the history tables, or moves unscoped ones to one history per schema, once
        (the rows already there keep the schema they were written for); inside a transaction."""
        layout = self.history_layout()
        if layout == "missing":
            self.session.execute(HISTORY_DDL)
        elif layout == "unscoped":
            owner = _value(self.session, f"SELECT {DEFAULT_SCHEMA_SQL}") or "public"
            key = _value(self.session, "SELECT quote_ident(conname::text) FROM pg_constraint "
                                       "WHERE conrelid = 'wasmig.revisions'::regclass AND contype = 'p'")
            self.session.execute("ALTER TABLE wasmig.revisions ADD COLUMN schema text")
            self.session.execute("ALTER TABLE wasmig.log ADD COLUMN schema text")
            if key:
                self.session.execute(f"ALTER TABLE wasmig.revisions DROP CONSTRAINT {key}")
            self.session.rows("UPDATE wasmig.revisions SET schema = %s RETURNING revision", (owner,))
            self.session.rows("UPDATE wasmig.log SET schema = %s RETURNING id", (owner,))
            self.session.execute("ALTER TABLE wasmig.revisions ALTER COLUMN schema SET NOT NULL, "
                                 "ADD PRIMARY KEY (schema, revision)")
            self.session.execute("ALTER TABLE wasmig.log ALTER COLUMN schema SET NOT NULL")
            log.info("wasmig: history tables now keep one history per schema; the rows already there are %s's", owner)

    def status(self):
        """(current revision or None, (revision, state) of a stopped run or None)."""
        rec = self.recorded()
        applied = {r[0] for r in rec if r[2] == "applied"}
        pos = 0
        while pos < len(self.ids) and self.ids[pos] in applied:
            pos += 1
        stopped = next(((r[0], r[2]) for r in rec if r[2] != "applied"), None)
        return self._id_at(pos), stopped

    def alembic_version(self) -> Optional[str]:
        """The target schema's alembic_version row, if any."""
        table = _value(self.session, "SELECT format('%%I.alembic_version', %s::text) "
                                     "WHERE to_regclass(format('%%I.alembic_version', %s::text)) IS NOT NULL",
                       (self.schema, self.schema))
        if table is None:
            return None
        return _value(self.session, f"SELECT version_num::text FROM {table} LIMIT 1")

    def catalog(self):
        """The live catalog, read with the plugin's own introspection query."""
        # The query's one parameter is `$1` (the schema); sessions take `%s`.
        sql = self.plugin.introspection_sql().replace("$1", "%s")
        text = _value(self.session, sql, (self.schema,))
        if not isinstance(text, str):
            import json

            text = json.dumps(text)
        return self.plugin.decode_catalog(text)

    def verify(self, at: Optional[str]) -> list:
        """The findings of `verify` at revision `at` on the live catalog."""
        return self.plugin.verify(at, self.catalog())

    def check_checksums(self):
        """Refuses a history that records a revision this plugin lacks or changed."""
        by_id = {field(r, "id"): field(r, "checksum") for r in self.revisions}
        previous = {field(r, "id"): list(field(r, "previous-checksums")) for r in self.revisions}
        for revision, checksum, _state, _before in self.recorded():
            if revision not in by_id:
                raise Refused(
                    f"the history of schema {self.schema} records revision {revision} which this plugin does not have: "
                    "use the plugin that applied it")
            if by_id[revision] != checksum and checksum in previous[revision]:
                # Recorded by an earlier wasmig that computed checksums another way.
                scoped = "AND schema = %s" if self.history_layout() == "per-schema" else "AND %s::text IS NOT NULL"
                self.session.rows(
                    f"UPDATE wasmig.revisions SET checksum = %s WHERE revision = %s AND checksum = %s {scoped} "
                    "RETURNING revision", (by_id[revision], revision, checksum, self.schema))
                log.info("wasmig: %s's recorded checksum is its earlier form; recorded the current one", revision)
            elif by_id[revision] != checksum:
                raise ChecksumMismatch(
                    f"revision {revision} was applied with checksum {checksum} but the plugin's {revision} has checksum "
                    f"{by_id[revision]}: the migration was modified after it was applied. Use the plugin that applied it, "
                    f"or check the schema and re-record it with `wasmig stamp {revision} --force`")

    # --- the lock ---

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Holds the migration lock the Rust runner takes. After a failure the
        lock is not released here (the transaction may be aborted); it goes
        with the connection, as Alembic's env.py closes it (NullPool)."""
        deadline = time.monotonic() + self.lock_wait
        while not _value(self.session, f"SELECT pg_try_advisory_lock({LOCK_KEY})"):
            if time.monotonic() >= deadline:
                raise LockTimeout(
                    f"timed out after {self.lock_wait:.0f} s waiting for another wasmig run on this database to finish (advisory lock held)")
            time.sleep(0.1)
        yield
        self.session.rows(f"SELECT pg_advisory_unlock({LOCK_KEY})")

    # --- moves ---

    def upgrade(self, target: str, adopt: bool = True) -> list:
        """Brings the database to `target`, then verifies (VerifyFailed on findings).

        With `adopt`, revisions before `target` that the history lacks are
        stamped when the live schema verifies clean at the last of them (the
        CLI's `wasmig stamp`): an Alembic-built database is adopted instead of
        re-created. Returns the moves made, e.g. ["stamp erp_base", "up manufacturing_module_v1"].
        """
        to = self.position(target)
        moves = []
        with self.locked():
            self.check_checksums()
            current, stopped = self.status()
            pos = self.position(current)
            self._refuse_drift(current, stopped, pos < to)
            if adopt and stopped is None and pos < to - 1 and not self.verify(self._id_at(to - 1)):
                self._stamp(pos, to - 1)
                moves += [f"stamp {rev}" for rev in self.ids[pos:to - 1]]
            while True:
                current, stopped = self.status()
                pos = self.position(current)
                if stopped is not None:
                    rev, state = stopped
                    # A revision stranded part-way is finished the way it was going, or (as the Rust
                    # host does) taken back the other way: the plan under `resume` skips what is not there.
                    if state != "applying" and to < self.position(rev):
                        raise Refused(f"revision {rev} was being reverted when an earlier run stopped: finish that first "
                                      f"with `wasmig down --to {self._id_at(self.position(rev) - 1) or 'base'}`")
                    self._move(self.position(rev), up=True, resume=True)
                    moves.append(f"up {rev} (resumed)")
                elif pos < to:
                    self._move(pos + 1, up=True, resume=False)
                    moves.append(f"up {self.ids[pos]}")
                else:
                    break
            self._verify_or_raise(self.status()[0])
        return moves

    def downgrade(self, target: Optional[str]) -> list:
        """Reverts to `target` (None = nothing applied), then verifies."""
        to = self.position(target)
        moves = []
        with self.locked():
            self.check_checksums()
            current, stopped = self.status()
            self._refuse_drift(current, stopped, self.position(current) > to)
            while True:
                current, stopped = self.status()
                pos = self.position(current)
                if stopped is not None:
                    rev, state = stopped
                    if state != "reverting" and to >= self.position(rev):
                        raise Refused(f"revision {rev} was being applied when an earlier run stopped: finish that first "
                                      f"with `wasmig up --to {rev}`")
                    self._move(self.position(rev), up=False, resume=True)
                    moves.append(f"down {rev} (resumed)")
                elif pos > to:
                    self._move(pos, up=False, resume=False)
                    moves.append(f"down {self.ids[pos - 1]}")
                else:
                    break
            self._verify_or_raise(self.status()[0])
        return moves

    def _refuse_drift(self, current, stopped, moving: bool):
        """Like the Rust host's pre-flight: a move that starts from a schema
        that is not what the recorded revision promises is refused."""
        if not moving or stopped is not None or current is None:
            return
        findings = self.verify(current)
        if findings:
            err = VerifyFailed(current, findings)
            raise Refused(f"refused before any change: schema {self.schema} was changed outside wasmig ({err}); "
                          f"undo the change, or check it with `wasmig verify`") from None

    def _verify_or_raise(self, at):
        findings = self.verify(at)
        if findings:
            raise VerifyFailed(at, findings)
        log.info("wasmig: verify clean at %s (schema %s)", at or "(nothing applied)", self.schema)

    def _stamp(self, start: int, end: int):
        with self.session.transaction():
            self._ensure_history()
            for rev in self.revisions[start:end]:
                rid, checksum = field(rev, "id"), field(rev, "checksum")
                log.info("wasmig: stamped %s in schema %s (it already verifies at it)", rid, self.schema)
                self.session.rows(
                    "INSERT INTO wasmig.revisions (schema, revision, checksum, state) VALUES (%s, %s, %s, 'applied') "
                    "ON CONFLICT (schema, revision) DO UPDATE SET state = 'applied', checksum = EXCLUDED.checksum "
                    "RETURNING revision", (self.schema, rid, checksum))
                self._log(rid, "stamp", checksum, None)

    def _log(self, revision, action, checksum, ms):
        self.session.rows(
            "INSERT INTO wasmig.log (schema, revision, action, checksum, execution_ms) VALUES (%s, %s, %s, %s, %s) "
            "RETURNING id", (self.schema, revision, action, checksum, ms))

    def _mark(self, rev, state):
        self.session.rows(
            "INSERT INTO wasmig.revisions (schema, revision, checksum, state, alembic_before) VALUES (%s, %s, %s, %s, %s) "
            "ON CONFLICT (schema, revision) DO UPDATE SET state = EXCLUDED.state RETURNING revision",
            (self.schema, field(rev, "id"), field(rev, "checksum"), state, self.alembic_version()))

    def _record(self, rev, up: bool, ms: int):
        rid, checksum = field(rev, "id"), field(rev, "checksum")
        if up:
            # alembic_version is Alembic's: it is read (restored by a CLI downgrade), never written.
            self.session.rows(
                "INSERT INTO wasmig.revisions (schema, revision, checksum, state, alembic_before) "
                "VALUES (%s, %s, %s, 'applied', %s) ON CONFLICT (schema, revision) DO UPDATE SET state = 'applied', "
                "checksum = EXCLUDED.checksum, applied_at = now() RETURNING revision",
                (self.schema, rid, checksum, self.alembic_version()))
        else:
            self.session.rows("DELETE FROM wasmig.revisions WHERE schema = %s AND revision = %s RETURNING revision",
                              (self.schema, rid))
        self._log(rid, "up" if up else "down", checksum, ms)

    def _check_lint(self, steps):
        for s in steps:
            for f in field(s, "lint"):
                if field(f, "severity") == "error" and field(f, "rule") not in self.allow_lint:
                    raise LintError(
                        f"the plan's step `{field(s, 'summary')}` has a lint error [{field(f, 'rule')}]: {field(f, 'message')}. "
                        f"Allow it with allow_lint=['{field(f, 'rule')}'] if that is intended")

    def _move(self, pos: int, up: bool, resume: bool):
        started = time.monotonic()
        rev = self.revisions[pos - 1]
        rid, down = field(rev, "id"), field(rev, "down-revision")
        frm, to = (down, rid) if up else (rid, down)
        plan = self.plugin.plan(frm, to, self.catalog(), resume=resume, online=self.online,
                                allow_data_loss=self.allow_data_loss, schema=self.schema)
        steps = list(field(plan, "steps"))
        # Every step is checked before the first one runs: a refused plan changes nothing.
        self._check_lint(steps)
        with self.session.transaction():
            self._ensure_history()
        marker = "applying" if up else "reverting"
        segments: list = []
        for s in steps:
            if segments and segments[-1][0] == field(s, "transactional"):
                segments[-1][1].append(s)
            else:
                segments.append((field(s, "transactional"), [s]))
        tx_indexes = [i for i, (tx, _) in enumerate(segments) if tx]
        last_tx = tx_indexes[-1] if tx_indexes else None
        record_in_last_tx = last_tx is not None and last_tx == len(segments) - 1
        marked = False
        ms = lambda: int((time.monotonic() - started) * 1000)  # noqa: E731
        for i, (tx, group) in enumerate(segments):
            if tx:
                with self.session.transaction():
                    # With non-transactional changes still to come, the marker commits with this
                    # transaction: a crash right after it leaves a resumable revision, not drift.
                    later = [s for t, g in segments[i + 1:] if not t for s in g]
                    if not marked and any(field(s, "lock") != "access-share" for s in later):
                        self._mark(rev, marker)
                        marked = True
                    for s in group:
                        self._run(rid, s)
                    if i == last_tx and record_in_last_tx:
                        self._record(rev, up, ms())
            else:
                for s in group:
                    with self.session.outside_transaction():
                        if not marked and field(s, "lock") != "access-share":
                            self._mark(rev, marker)
                            marked = True
                        self._run(rid, s)
        if not record_in_last_tx:
            with self.session.transaction():
                self._record(rev, up, ms())
        log.info("wasmig: %s %s in schema %s: %d ms (%d step(s)%s)", "applied" if up else "reverted", rid, self.schema,
                 ms(), len(steps),
                 ", resumed" if resume else "")

    def _run(self, revision: str, step):
        sql = field(step, "sql")
        if is_comment_only(sql):
            return
        try:
            self.session.execute(sql)
        except DatabaseError as e:
            reason = str(e)
            if "wasmig: " in reason:
                # A guard's refusal: the plugin's own words, without PostgreSQL's cast-error wrapper.
                start = reason.index("wasmig: ")
                hint = "" if self.allow_data_loss or "would lose data" not in reason else (
                    "; nothing was changed. To drop the data anyway, allow data loss "
                    "(WASMIG_ALLOW_DATA_LOSS=1 under Alembic, --allow-data-loss with the CLI), after a backup")
                raise DataInUse(reason[start:].rstrip('")') + hint) from None
            raise StepFailed(f"revision {revision}: step `{field(step, 'summary')}` failed: {reason}") from None


__all__ = ["DatabaseError", "PsycopgSession", "Runner", "Session", "WasmigError"]
