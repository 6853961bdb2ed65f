"""The component's exported interface (`wasmig:migration/migrations`) as plain
Python methods, on wasmtime from PyPI.

The component imports nothing, so an empty `Linker` instantiates it. Like the
Rust host, the instance gets a memory cap and a deadline per call (epoch
interruption), and is thrown away after a trap.

Quirks of `wasmtime.component` (wasmtime 50):
- records come back as `Record` objects whose attributes keep the WIT names,
  kebab-case included (`getattr(rev, "down-revision")`); a record argument is
  any object with those attributes;
- `result` values are a `Variant(tag, payload)` only when both cases map to
  the same Python type, else a bare payload; `unwrap()` handles both;
- `option<T>` is `None` or the value; enums are their kebab-case names.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import wasmtime
from wasmtime.component import Component, Linker, Record, Variant

from .errors import PlanError, PluginFault

INTERFACE = "wasmig:migration/migrations@0.3.0"
CANONICAL_KEYS = ("revision", "direction", "sql", "transactional", "lock", "objects", "summary")
#: Memory cap for the instance, bytes (the CLI's default `--plugin-memory 64`).
MEMORY_LIMIT = 64 << 20
#: Time limit for one call, seconds. Longer than the CLI's 1 s: wasmtime-py
#: converts records argument by argument in Python, and a call carrying the
#: 297-table FastApiv1.6 catalog spends 1-2 s in that before the component runs.
DEADLINE = 15.0


def field(rec, name: str):
    """A record field by its WIT (kebab-case) name."""
    return getattr(rec, name)


def record(**fields) -> Record:
    """Builds a record argument; `down_revision=` becomes `down-revision`."""
    r = Record()
    for name, value in fields.items():
        setattr(r, name.replace("_", "-"), value)
    return r


def unwrap(value):
    """The value of a `result<T, plan-error>`, raising PlanError on `err`."""
    if isinstance(value, Variant):
        if value.tag == "err":
            raise PlanError(field(value.payload, "kind"), field(value.payload, "message"))
        return value.payload
    if isinstance(value, Record) and set(vars(value)) == {"kind", "message"}:
        raise PlanError(value.kind, value.message)
    return value


def empty_catalog() -> Record:
    """The catalog of an empty schema."""
    return record(tables=[], indexes=[], constraints=[], enums=[])


def canonical(steps) -> bytes:
    """The steps JSON every host prints byte for byte the same: keys
    `CANONICAL_KEYS` sorted, no spaces, UTF-8, one trailing newline."""
    rows = [{key: field(s, key) for key in CANONICAL_KEYS} for s in steps]
    for row in rows:
        row["objects"] = list(row["objects"])
    text = json.dumps(rows, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return (text + "\n").encode("utf-8")


class Plugin:
    """A loaded migration component.

    Raises PluginFault when `path` is missing, is not a component, or does not
    export `INTERFACE`.
    """

    def __init__(self, path, memory_limit: int = MEMORY_LIMIT, deadline: float = DEADLINE):
        path = Path(path)
        if not path.is_file():
            raise PluginFault(f"no component at {path}: write one with `wasmig plugin --out {path}` or set WASMIG_PLUGIN")
        config = wasmtime.Config()
        config.epoch_interruption = True
        self.engine = wasmtime.Engine(config)
        try:
            self.component = Component.from_file(self.engine, str(path))
        except Exception as e:  # wasmtime raises WasmtimeError with a multi-line text
            raise PluginFault(f"{path} is not a loadable component: {str(e).splitlines()[0]}") from None
        self.path = path
        self.memory_limit = memory_limit
        self.deadline = deadline
        self._instantiate()

    def _instantiate(self):
        self.store = wasmtime.Store(self.engine)
        self.store.set_limits(memory_size=self.memory_limit)
        self.store.set_epoch_deadline(1)
        try:
            self.instance = Linker(self.engine).instantiate(self.store, self.component)
        except Exception as e:
            raise PluginFault(f"{self.path}: cannot instantiate with an empty linker: {str(e).splitlines()[0]}") from None
        self.interface = self.instance.get_export_index(self.store, INTERFACE)
        if self.interface is None:
            raise PluginFault(f"{self.path}: the component does not export {INTERFACE}")

    def _call(self, name: str, *args):
        index = self.instance.get_export_index(self.store, name, self.interface)
        func = self.instance.get_func(self.store, index) if index is not None else None
        if func is None:
            raise PluginFault(f"{self.path}: {INTERFACE} has no function {name}")
        self.store.set_epoch_deadline(1)
        timer = threading.Timer(self.deadline, self.engine.increment_epoch)
        timer.daemon = True
        timer.start()
        try:
            return func(self.store, *args)
        except (wasmtime.Trap, wasmtime.WasmtimeError) as e:
            # A trapped instance may hold broken state: start the next call afresh.
            self._instantiate()
            lines = [l.strip() for l in str(e).splitlines() if l.strip()]
            reason = next((l for l in reversed(lines) if "trap" in l or "interrupt" in l), lines[-1] if lines else type(e).__name__)
            raise PluginFault(f"{self.path}: {name} trapped: {reason}") from None
        finally:
            timer.cancel()

    def revisions(self) -> list:
        """The chain, oldest first: records {id, down-revision, description, checksum}."""
        return self._call("revisions")

    def introspection_sql(self) -> str:
        """One query whose single column is the catalog as JSON text. It takes the
        schema to read as `$1` (None: `current_schema()`); a `%s` driver substitutes."""
        return self._call("introspection-sql")

    def decode_catalog(self, text: str):
        """The catalog record of the introspection query's JSON text."""
        return unwrap(self._call("decode-catalog", text))

    def plan(self, current, target, live, resume: bool = False, online=None, allow_data_loss: bool = False,
             schema: str | None = None):
        """The plan {steps, expected} from revision `current` to `target` on catalog `live`.
        Without `allow_data_loss`, a downgrade that would drop data carries guards that refuse it.
        `schema`: qualify every name with it (None: unqualified, the session's search_path)."""
        options = record(resume=resume, online=online, allow_data_loss=allow_data_loss, schema=schema)
        return unwrap(self._call("plan", current, target, live, options))

    def verify(self, at, actual) -> list:
        """Every mismatch between catalog `actual` and what revision `at` promises."""
        return self._call("verify", at, actual)

    def validate(self, sql: str, transactional: bool) -> list:
        """The linter's findings on `sql`."""
        return self._call("validate", sql, transactional)

    def chain(self) -> list:
        """The revision ids, oldest first."""
        return [field(r, "id") for r in self.revisions()]
