#!/usr/bin/env bash
# Creates a Python venv with Alembic and SQLAlchemy from PyPI, for the speed
# comparison in host/examples/speed.rs (`wasmig sql` against
# `alembic upgrade head --sql`). Idempotent; prints the venv's python.
#
#   ci/alembic-venv.sh [VENV_DIR]     (default: target/alembic-venv)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${1:-$root/target/alembic-venv}"
if ! "$venv/bin/python" -c 'import alembic, sqlalchemy' 2>/dev/null; then
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install --quiet --disable-pip-version-check alembic sqlalchemy >&2
fi
echo "$venv/bin/python"
