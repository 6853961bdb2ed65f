#!/usr/bin/env bash
# Cross-language check of the wasmig component: the Rust host (`wasmig`), the
# Python package (python/, wasmtime from PyPI, driven by examples/python/plan.py)
# and the JS example (jco) must plan the
# same steps byte for byte, and a schema migrated by a non-Rust host must be
# one the Rust host accepts.
#
#   DATABASE_URL=postgres://USER:PASSWORD@HOST:PORT/postgres ci/polyglot.sh
#
# DATABASE_URL names a server where this script may CREATE DATABASE scratch
# databases (dropped at the end). Without DATABASE_URL it starts a throwaway
# PostgreSQL 15 cluster itself (binaries in ${PG_BIN:-/usr/lib/postgresql/15/bin},
# run as `nobody` when root) and stops it at the end.
#
# Other knobs: WASMIG_BIN (a built `wasmig`; default: `cargo build -p wasmig`
# then ${CARGO_TARGET_DIR:-target}/debug/wasmig), POLYGLOT_DIR (venv, plugin,
# outputs; default target/polyglot).
#
# (a) compares canonical steps JSON (Rust via `wasmig sql --json` + filter,
#     `python plan.py steps`, `node plan.mjs steps`) for: the chain's own plan
#     empty -> head, erp_base -> head, head -> erp_base, and erp_base -> head
#     against catalog snapshots of a real database in the enum and CHECK forms;
# (b) migrates an empty database with `python plan.py migrate` (and another
#     with `node plan.mjs migrate`), then `wasmig stamp manufacturing_module_v1`
#     (verifies first) and `wasmig verify` must pass.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
WORK=${POLYGLOT_DIR:-$ROOT/target/polyglot}
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
HEAD_REV=manufacturing_module_v1
BASE_REV=erp_base
started=$SECONDS

log() { printf 'polyglot: %s\n' "$*"; }
die() { printf 'polyglot: error: %s\n' "$*" >&2; exit 1; }
sha() { sha256sum "$1" | cut -d' ' -f1; }

for tool in python3 node npm psql sha256sum cmp; do
    command -v "$tool" >/dev/null || die "$tool is not installed"
done

# --- cleanup: scratch databases, then a throwaway cluster if we started one ---
SCRATCH=()
PG_DATA=""
cleanup() {
    local rc=$?
    for db in "${SCRATCH[@]}"; do
        psql -X -q "$ADMIN_URL" -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 ||
            log "could not drop scratch database $db"
    done
    if [[ -n $PG_DATA ]]; then
        as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m immediate -w stop >/dev/null 2>&1 || true
        rm -rf "$PG_DIR"
    fi
    exit "$rc"
}
trap cleanup EXIT

as_pg() {
    if [[ $(id -u) == 0 ]]; then runuser -u nobody -- "$@"; else "$@"; fi
}

# --- a PostgreSQL server ---
if [[ -z ${DATABASE_URL:-} ]]; then
    PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
    [[ -x $PG_BIN/initdb ]] || die "DATABASE_URL is not set and $PG_BIN/initdb is missing"
    PG_DIR=$(mktemp -d /tmp/wasmig-polyglot-pg.XXXXXX)
    chmod 755 "$PG_DIR"
    [[ $(id -u) == 0 ]] && chown nobody "$PG_DIR"
    PG_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    as_pg "$PG_BIN/initdb" -D "$PG_DIR/data" -U postgres --auth=trust -E UTF8 --no-sync >"$PG_DIR/initdb.log" 2>&1 ||
        { cat "$PG_DIR/initdb.log" >&2; die "initdb failed"; }
    PG_DATA=$PG_DIR/data
    as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_DIR/server.log" -w -o \
        "-p $PG_PORT -k $PG_DIR -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null ||
        { cat "$PG_DIR/server.log" >&2; die "the throwaway server did not start"; }
    DATABASE_URL=postgres://postgres@127.0.0.1:$PG_PORT/postgres
    log "started a throwaway PostgreSQL on port $PG_PORT"
fi
ADMIN_URL=$DATABASE_URL
# The URL of database $1 on the same server.
db_url() {
    python3 -c 'import sys, urllib.parse as u; p = u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/" + sys.argv[2])))' \
        "$ADMIN_URL" "$1"
}
# Creates scratch database wasmig_poly_PID_$1 (dropped at exit); its URL in $DB_URL.
new_db() {
    local name="wasmig_poly_$$_$1"
    SCRATCH+=("$name")
    psql -X -q -v ON_ERROR_STOP=1 "$ADMIN_URL" -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS \"$name\" WITH (FORCE)" -c "CREATE DATABASE \"$name\"" >/dev/null
    DB_URL=$(db_url "$name")
}
psql -X -q -v ON_ERROR_STOP=1 "$ADMIN_URL" -c 'SELECT 1' >/dev/null || die "cannot connect to DATABASE_URL"

# --- installs (skipped when the lock files did not change) ---
VENV=$WORK/venv
REQ=examples/python/requirements.txt
PYREQ=$( { sha "$REQ"; sha python/pyproject.toml; } | sha256sum | cut -d' ' -f1)
if [[ ! -x $VENV/bin/python || $(cat "$VENV/.requirements.sha256" 2>/dev/null) != "$PYREQ" ]]; then
    log "installing $REQ and the wasmig package (python/) into $VENV"
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$REQ" -e ./python
    echo "$PYREQ" >"$VENV/.requirements.sha256"
fi
PY=$VENV/bin/python
if [[ $(cat examples/js/node_modules/.polyglot-lock.sha256 2>/dev/null) != "$(sha examples/js/package-lock.json)" ]]; then
    log "npm ci in examples/js"
    (cd examples/js && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    sha examples/js/package-lock.json >examples/js/node_modules/.polyglot-lock.sha256
fi

# --- the Rust host and the component ---
if [[ -z ${WASMIG_BIN:-} ]]; then
    cargo build --quiet -p wasmig
    WASMIG_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/debug/wasmig
fi
WASMIG=$WASMIG_BIN
[[ -x $WASMIG ]] || die "no wasmig binary at $WASMIG"
"$WASMIG" plugin --out "$WORK/plugin.wasm" >/dev/null
# One component file for all three hosts (`wasmig` reads WASMIG_PLUGIN too).
export WASMIG_PLUGIN=$WORK/plugin.wasm
(cd examples/js && rm -rf gen && npx --no-install jco transpile "$WASMIG_PLUGIN" --name migrations -o gen >/dev/null)
log "component $(wc -c <"$WASMIG_PLUGIN") bytes; $("$PY" -c 'import importlib.metadata as m; print("wasmtime", m.version("wasmtime"), "psycopg", m.version("psycopg"))'); node $(node --version), jco $(cd examples/js && npx --no-install jco --version)"

# --- catalog snapshots of a real database in the enum and CHECK forms ---
ENUM_FORM="CREATE TYPE alert_type AS ENUM ('low_stock','out_of_stock','reorder');
ALTER TABLE inventory_alerts ALTER COLUMN alert_type TYPE alert_type USING alert_type::alert_type;
CREATE TYPE transaction_type AS ENUM ('job','purchase','manual','transfer');
ALTER TABLE inventory_transactions ALTER COLUMN reference_type TYPE transaction_type USING reference_type::transaction_type;"
CHECK_FORM="ALTER TABLE inventory_alerts ADD CONSTRAINT inventory_alerts_alert_type_check CHECK (alert_type IN ('low_stock','out_of_stock','reorder'));
ALTER TABLE inventory_transactions ADD CONSTRAINT inventory_transactions_reference_type_check CHECK (reference_type IN ('job','purchase','manual','transfer'));"
snapshot() { # NAME FORM_SQL
    new_db "$1"
    local url=$DB_URL
    DATABASE_URL=$url "$WASMIG" up --to "$BASE_REV" >"$WORK/up-$1.log" 2>&1 ||
        { cat "$WORK/up-$1.log" >&2; die "wasmig up --to $BASE_REV failed for the $1 snapshot"; }
    psql -X -q -v ON_ERROR_STOP=1 "$url" -c "$2" >/dev/null
    DATABASE_URL=$url "$WASMIG" catalog >"$WORK/catalog-$1.json"
}
snapshot enum "$ENUM_FORM"
snapshot check "$CHECK_FORM"

# --- (a) the same steps in Rust, Python and JS ---
RUST_CANON='
import json, sys
KEYS = ("revision", "direction", "sql", "transactional", "lock", "objects", "summary")
rows = [{k: s[k] for k in KEYS} for s in json.load(sys.stdin)["steps"]]
sys.stdout.buffer.write((json.dumps(rows, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n").encode("utf-8"))
'
CASES=(
    "chain|"
    "chain-from-base|--from $BASE_REV"
    "head-to-base|--from $HEAD_REV --to $BASE_REV"
    "enum-snapshot|--from $BASE_REV --to $HEAD_REV --catalog $WORK/catalog-enum.json"
    "check-snapshot|--from $BASE_REV --to $HEAD_REV --catalog $WORK/catalog-check.json"
)
failures=0
compared=0
summary=()
for case in "${CASES[@]}"; do
    name=${case%%|*}
    read -r -a args <<<"${case#*|}"
    out=$WORK/steps-$name
    status=same
    { "$WASMIG" sql --json "${args[@]}" | "$PY" -c "$RUST_CANON"; } >"$out.rust.json" || status="FAILED (rust)"
    "$PY" examples/python/plan.py steps "${args[@]}" >"$out.python.json" || status="FAILED (python)"
    node examples/js/plan.mjs steps "${args[@]}" >"$out.js.json" || status="FAILED (js)"
    n=$("$PY" -c 'import json, sys; print(len(json.load(open(sys.argv[1]))))' "$out.rust.json" 2>/dev/null) || n=-
    if [[ $status == same ]]; then
        for lang in python js; do
            if ! cmp -s "$out.rust.json" "$out.$lang.json"; then
                detail=$(cmp "$out.rust.json" "$out.$lang.json" 2>&1 | sed 's/.* differ: //') || true
                status="DIFFERENT ($lang: $detail)"
            fi
        done
        [[ $n == 0 ]] && status="EMPTY PLAN (expected steps)"
    fi
    [[ $status == same ]] || failures=$((failures + 1))
    compared=$((compared + 1))
    summary+=("$(printf '%-16s %3s steps  %s' "$name" "$n" "$status")")
done
if cmp -s "$WORK/steps-enum-snapshot.rust.json" "$WORK/steps-check-snapshot.rust.json"; then
    summary+=("enum and CHECK snapshots planned the same steps: the forms were not told apart")
    failures=$((failures + 1))
fi

# --- (b) a schema migrated by Python (and JS) is accepted by the Rust host ---
migrate_with() { # NAME COMMAND...
    local name=$1 status=ok
    shift
    new_db "migrate_$name"
    local url=$DB_URL
    if ! DATABASE_URL=$url "$@" >"$WORK/migrate-$name.log" 2>&1; then
        status="FAILED: $name migrate (see $WORK/migrate-$name.log)"
    elif ! DATABASE_URL=$url "$WASMIG" stamp "$HEAD_REV" >>"$WORK/migrate-$name.log" 2>&1; then
        status="FAILED: wasmig stamp $HEAD_REV refused the schema (see $WORK/migrate-$name.log)"
    elif ! DATABASE_URL=$url "$WASMIG" verify >>"$WORK/migrate-$name.log" 2>&1; then
        status="FAILED: wasmig verify (see $WORK/migrate-$name.log)"
    fi
    if [[ $status != ok ]]; then
        tail -n 20 "$WORK/migrate-$name.log" >&2
        failures=$((failures + 1))
    fi
    summary+=("$(printf '%-16s %s' "migrate-$name" "$(grep -m1 '^applied' "$WORK/migrate-$name.log" || true); stamp+verify: $status")")
}
migrate_with python "$PY" examples/python/plan.py migrate
migrate_with js node examples/js/plan.mjs migrate

for line in "${summary[@]}"; do log "$line"; done
log "$compared inputs compared across rust/python/js, 2 migrations checked, $((SECONDS - started)) s"
if ((failures)); then
    log "FAILED: $failures difference(s); outputs in $WORK"
    exit 1
fi
log "ok"
