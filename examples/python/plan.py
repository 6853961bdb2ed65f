#!/usr/bin/env python3
"""Runs the wasmig migration component from Python, on the `wasmig` package in
this repository (`python/`: wasmtime from PyPI, psycopg 3).

  python plan.py steps [--catalog FILE] [--from REV] [--to REV]
      Prints the planned steps as canonical JSON (no database needed).
  python plan.py migrate            (needs DATABASE_URL)
      Brings the database to the last revision with the package's runner
      (the same history, lock and checks as `wasmig up`), then verifies.

The component file comes from --plugin, else $WASMIG_PLUGIN, else
target/wasmig_plugin.wasm at the repository root (`wasmig plugin --out ...`).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
try:
    import wasmig
except ImportError:  # run from a checkout without `pip install ./python`
    sys.path.insert(0, str(ROOT / "python"))
    import wasmig

from wasmig import Plugin, WasmigError, canonical, empty_catalog, field

DEFAULT_PLUGIN = ROOT / "target" / "wasmig_plugin.wasm"


def cmd_steps(plugin: Plugin, args) -> int:
    chain = plugin.chain()
    target = args.to if args.to is not None else (chain[-1] if chain else None)
    if args.catalog:
        live = plugin.decode_catalog(Path(args.catalog).read_text(encoding="utf-8"))
    else:
        # The chain's own catalog at --from, as `wasmig sql` plans without --catalog.
        live = field(plugin.plan(None, args.from_, empty_catalog(), online=False), "expected")
    plan = plugin.plan(args.from_, target, live)
    sys.stdout.buffer.write(canonical(field(plan, "steps")))
    return 0


def cmd_migrate(plugin: Plugin, args) -> int:
    import psycopg

    url = os.environ.get("DATABASE_URL")
    if not url:
        print("error: set DATABASE_URL (postgres://USER:PASSWORD@HOST:PORT/DB)", file=sys.stderr)
        return 2
    with psycopg.connect(url, autocommit=True) as conn:
        runner = wasmig.Runner(plugin, wasmig.PsycopgSession(conn))
        head = runner.ids[-1]
        moves = runner.upgrade(head, adopt=False)
    for m in moves:
        print(m)
    print(f"applied {len(moves)} revision(s) up to {head}; verify: clean")
    return 0


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
    try:
        plugin = Plugin(Path(args.plugin))
        return cmd_steps(plugin, args) if args.mode == "steps" else cmd_migrate(plugin, args)
    except WasmigError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code


if __name__ == "__main__":
    sys.exit(main())
