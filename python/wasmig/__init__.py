"""wasmig from Python: load a wasmig migration component with wasmtime and run
its plans on a PostgreSQL connection, with the same history, checks and
verification as the Rust host (`wasmig`).

- `wasmig.plugin`: the component's exported functions as Python methods.
- `wasmig.runner`: plans, runs and records revisions on a `Session`
  (psycopg connection, or Alembic's connection in `wasmig.alembic`).
- `wasmig.alembic`: `upgrade()` / `downgrade()` for the revision scripts
  `wasmig alembic-revision` writes.
"""

from .plugin import CANONICAL_KEYS, INTERFACE, Plugin, PlanError, canonical, empty_catalog, field, record
from .errors import ChecksumMismatch, DataInUse, LintError, PluginFault, Refused, VerifyFailed, WasmigError
from .runner import PsycopgSession, Runner, Session

__all__ = [
    "CANONICAL_KEYS",
    "INTERFACE",
    "ChecksumMismatch",
    "DataInUse",
    "LintError",
    "PlanError",
    "Plugin",
    "PluginFault",
    "PsycopgSession",
    "Refused",
    "Runner",
    "Session",
    "VerifyFailed",
    "WasmigError",
    "canonical",
    "empty_catalog",
    "field",
    "record",
]
