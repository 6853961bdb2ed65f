#!/usr/bin/env python3
"""Runs the wasmig migration component from Python.

The component imports nothing, so an empty `wasmtime.component.Linker`
instantiates it. Two modes:

  python plan.py steps [--catalog FILE] [--from REV] [--to REV]
      Prints the planned steps as canonical JSON (no database needed).
  python plan.py migrate            (needs DATABASE_URL)
      Reads the live catalog, plans from nothing to the last revision, runs
      the steps with psycopg, then verifies the result (exit 1 on findings).

The component file comes from --plugin, else $WASMIG_PLUGIN, else
target/wasmig_plugin.wasm at the repository root (`wasmig plugin --out ...`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import wasmtime
from wasmtime.component import Component, Linker, Record, Variant

INTERFACE = "wasmig:migration/migrations@0.2.0"
DEFAULT_PLUGIN = Path(__file__).resolve().parents[2] / "target" / "wasmig_plugin.wasm"
CANONICAL_KEYS = ("revision", "direction", "sql", "transactional", "lock", "objects", "summary")


class PlanError(Exception):
    """A `plan-error` the component returned: {kind, message}."""

    def __init__(self, kind: str, message: str):
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message


def field(record, name: str):
    """Record fields keep their WIT (kebab-case) names as attributes."""
    return getattr(record, name)


def record(**fields) -> Record:
    """Builds a record argument; `down_revision=` becomes `down-revision`."""
    r = Record()
    for name, value in fields.items():
        setattr(r, name.replace("_", "-"), value)
    return r


def unwrap(value):
    """The value of a `result<T, plan-error>`, raising PlanError on `err`.

    wasmtime returns a `Variant(tag, payload)` when the ok and err cases map to
    the same Python type (here both are records) and a bare payload when they
    differ, so accept both shapes.
    """
    if isinstance(value, Variant):
        if value.tag == "err":
            raise PlanError(field(value.payload, "kind"), field(value.payload, "message"))
        return value.payload
    if isinstance(value, Record) and set(vars(value)) == {"kind", "message"}:
        raise PlanError(value.kind, value.message)
    return value


class Plugin:
    """The component's exported interface as plain Python methods."""

    def __init__(self, path: Path):
        if not path.is_file():
            raise SystemExit(f"error: no component at {path}: run `wasmig plugin --out {path}` or set WASMIG_PLUGIN")
        engine = wasmtime.Engine()
        component = Component.from_file(engine, str(path))
        self.store = wasmtime.Store(engine)
        self.instance = Linker(engine).instantiate(self.store, component)
        self.interface = self.instance.get_export_index(self.store, INTERFACE)
        if self.interface is None:
            raise SystemExit(f"{path}: the component does not export {INTERFACE}")

    def _call(self, name: str, *args):
        index = self.instance.get_export_index(self.store, name, self.interface)
        func = self.instance.get_func(self.store, index) if index is not None else None
        if func is None:
            raise SystemExit(f"the component's {INTERFACE} has no function {name}")
        return func(self.store, *args)

    def revisions(self) -> list:
        return self._call("revisions")

    def introspection_sql(self) -> str:
        return self._call("introspection-sql")

    def decode_catalog(self, text: str):
        return unwrap(self._call("decode-catalog", text))

    def plan(self, current, target, live, resume=False, online=None, allow_data_loss=False):
        options = record(resume=resume, online=online, allow_data_loss=allow_data_loss)
        return unwrap(self._call("plan", current, target, live, options))

    def verify(self, at, actual) -> list:
        return self._call("verify", at, actual)


def empty_catalog() -> Record:
    return record(tables=[], indexes=[], constraints=[], enums=[])


def canonical(steps) -> bytes:
    """The steps JSON every language prints byte for byte the same."""
    rows = [{key: field(s, key) for key in CANONICAL_KEYS} for s in steps]
    for row in rows:
        row["objects"] = list(row["objects"])
    text = json.dumps(rows, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return (text + "\n").encode("utf-8")


def cmd_steps(plugin: Plugin, args) -> int:
    chain = [field(r, "id") for r in plugin.revisions()]
    target = args.to if args.to is not None else (chain[-1] if chain else None)
    if args.catalog:
        live = plugin.decode_catalog(Path(args.catalog).read_text(encoding="utf-8"))
    else:
        # The chain's own catalog at --from, as `wasmig sql` plans without --catalog.
        live = field(plugin.plan(None, args.from_, empty_catalog(), online=False), "expected")
    plan = plugin.plan(args.from_, target, live)
    sys.stdout.buffer.write(canonical(field(plan, "steps")))
    return 0


def read_catalog(conn, plugin: Plugin):
    row = conn.execute(plugin.introspection_sql()).fetchone()
    text = row[0] if isinstance(row[0], str) else json.dumps(row[0])
    return plugin.decode_catalog(text)


def cmd_migrate(plugin: Plugin, args) -> int:
    import psycopg

    url = os.environ.get("DATABASE_URL")
    if not url:
        print("error: set DATABASE_URL (postgres://USER:PASSWORD@HOST:PORT/DB)", file=sys.stderr)
        return 2
    chain = [field(r, "id") for r in plugin.revisions()]
    head = chain[-1] if chain else None
    with psycopg.connect(url, autocommit=True) as conn:
        plan = plugin.plan(None, head, read_catalog(conn, plugin))
        steps = field(plan, "steps")
        # Per revision: consecutive transactional steps share one transaction;
        # a non-transactional step runs alone, outside any transaction block.
        segments: list[tuple[str, bool, list]] = []
        for s in steps:
            key = (field(s, "revision"), field(s, "transactional"))
            if segments and segments[-1][:2] == key:
                segments[-1][2].append(s)
            else:
                segments.append((key[0], key[1], [s]))
        for revision, transactional, group in segments:
            if transactional:
                with conn.transaction():
                    for s in group:
                        conn.execute(field(s, "sql"))
            else:
                for s in group:
                    conn.execute(field(s, "sql"))
            for s in group:
                print(f"{revision}: {field(s, 'summary')}")
        findings = plugin.verify(head, read_catalog(conn, plugin))
    print(f"applied {len(steps)} step(s) up to {head}; verify: {len(findings)} finding(s)")
    for f in findings:
        loc = field(f, "location")
        where = f" {loc}:" if loc is not None else ""
        print(f"{field(f, 'severity')}[{field(f, 'rule')}]{where} {field(f, 'message')}")
    return 1 if findings else 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--plugin", default=os.environ.get("WASMIG_PLUGIN") or str(DEFAULT_PLUGIN),
                        help="the migration component (.wasm)")
    sub = parser.add_subparsers(dest="mode", required=True)
    steps = sub.add_parser("steps", help="print the canonical steps JSON (no database)")
    steps.add_argument("--catalog", help="plan against this catalog snapshot (`wasmig catalog` JSON)")
    steps.add_argument("--from", dest="from_", help="start revision (default: nothing applied)")
    steps.add_argument("--to", help="target revision (default: the last one)")
    sub.add_parser("migrate", help="apply every revision to DATABASE_URL, then verify")
    args = parser.parse_args(argv)
    plugin = Plugin(Path(args.plugin))
    try:
        return cmd_steps(plugin, args) if args.mode == "steps" else cmd_migrate(plugin, args)
    except PlanError as e:
        print(f"error: {e}", file=sys.stderr)
        return 4


if __name__ == "__main__":
    sys.exit(main())
