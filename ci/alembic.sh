#!/usr/bin/env bash
# Alembic keeps working: the FastApiv1.6 schema (tests/fixtures/fastapi-before.sql,
# 297 tables, alembic_version e63da1a343bc) in a minimal Alembic environment
# (ci/alembic-app: env.py without application imports, the application's two
# revision ids as empty scripts), plus the script `wasmig alembic-revision` writes.
#
#   [DATABASE_URL=postgres://USER:PASSWORD@HOST:PORT/postgres] ci/alembic.sh
#
# (1) Alembic path: alembic upgrade head, downgrade -1, upgrade head; after each,
#     `alembic current`, `wasmig current` and `wasmig verify` agree, the schema
#     after the downgrade is the application's own (pg_dump), and the rows of
#     every table (over the fixture's columns) keep their digests.
# (2) Mixed path: `wasmig stamp erp_base` + `wasmig up` with the CLI, then
#     `alembic current` shows a revision Alembic knows and `alembic upgrade head`
#     adopts; `wasmig down` gives Alembic its own id back; `wasmig up
#     --alembic-versions DIR` writes the wasmig id, and `alembic downgrade -1` reverts.
# (3) The package's pytest suite (python/tests) against the same server.
#
# Without DATABASE_URL it starts a throwaway PostgreSQL 15 cluster (binaries in
# ${PG_BIN:-/usr/lib/postgresql/15/bin}, run as `nobody` when root). Knobs:
# WASMIG_BIN (default: cargo build -p wasmig), ALEMBIC_DIR (work dir, default target/alembic).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
WORK=${ALEMBIC_DIR:-$ROOT/target/alembic}
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
HEAD_REV=manufacturing_module_v1
APP_HEAD=e63da1a343bc
FIXTURE=$ROOT/tests/fixtures/fastapi-before.sql
ROWS=$ROOT/tests/fixtures/fastapi-rows.sql
started=$SECONDS

log() { printf 'alembic: %s\n' "$*"; }
die() { printf 'alembic: FAILED: %s\n' "$*" >&2; exit 1; }
sha() { cat "$@" | sha256sum | cut -d' ' -f1; }
for tool in python3 psql pg_dump sha256sum; do command -v "$tool" >/dev/null || die "$tool is not installed"; done

SCRATCH=()
PG_DATA=""
cleanup() {
    local rc=$?
    for db in "${SCRATCH[@]}"; do
        psql -X -q "$ADMIN_URL" -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 || log "could not drop $db"
    done
    if [[ -n $PG_DATA ]]; then
        as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m immediate -w stop >/dev/null 2>&1 || true
        rm -rf "$PG_DIR"
    fi
    exit "$rc"
}
trap cleanup EXIT
as_pg() { if [[ $(id -u) == 0 ]]; then runuser -u nobody -- "$@"; else "$@"; fi; }

# --- a PostgreSQL server ---
if [[ -z ${DATABASE_URL:-} ]]; then
    PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
    [[ -x $PG_BIN/initdb ]] || die "DATABASE_URL is not set and $PG_BIN/initdb is missing"
    PG_DIR=$(mktemp -d /tmp/wasmig-alembic-pg.XXXXXX)
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
psql -X -q -v ON_ERROR_STOP=1 "$ADMIN_URL" -c 'SELECT 1' >/dev/null || die "cannot connect to DATABASE_URL"
db_url() {
    python3 -c 'import sys, urllib.parse as u; p = u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/" + sys.argv[2])))' "$ADMIN_URL" "$1"
}
# A scratch database with the FastApiv1.6 schema and a few rows; its URL in $DB_URL.
app_db() {
    local name="wasmig_alembic_$$_$1"
    SCRATCH+=("$name")
    psql -X -q -v ON_ERROR_STOP=1 "$ADMIN_URL" -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS \"$name\" WITH (FORCE)" -c "CREATE DATABASE \"$name\"" >/dev/null
    DB_URL=$(db_url "$name")
    psql -X -q -v ON_ERROR_STOP=1 -d "$DB_URL" -f "$FIXTURE" >/dev/null
    psql -X -q -v ON_ERROR_STOP=1 -d "$DB_URL" -f "$ROWS" >/dev/null
}

# --- the venv (alembic, sqlalchemy, psycopg, pytest, the wasmig package), reused while python/pyproject.toml is unchanged ---
VENV=$WORK/venv
if [[ ! -x $VENV/bin/python || $(cat "$VENV/.pyproject.sha256" 2>/dev/null) != "$(sha python/pyproject.toml)" ]]; then
    log "installing python/[test] into $VENV"
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check -e "./python[test]"
    sha python/pyproject.toml >"$VENV/.pyproject.sha256"
fi
PY=$VENV/bin/python
ALEMBIC=$VENV/bin/alembic

# --- the Rust host ---
if [[ -z ${WASMIG_BIN:-} ]]; then
    cargo build --quiet -p wasmig
    WASMIG_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/debug/wasmig
fi
[[ -x $WASMIG_BIN ]] || die "no wasmig binary at $WASMIG_BIN"
unset WASMIG_PLUGIN WASMIG_ALEMBIC_VERSIONS

# --- the Alembic environment ---
APP=$WORK/app
rm -rf "$APP"
cp -r ci/alembic-app "$APP"
VERSIONS=$APP/migrations/versions
run() { # prints the command and its output (the operator's view), fails on a non-zero exit
    local out rc=0
    printf '  $ %s\n' "$*"
    out=$(cd "$APP" && "$@" 2>&1) || rc=$?
    [[ -n $out ]] && printf '%s\n' "$out" | sed 's/^/    /'
    LAST=$out
    ((rc == 0)) || die "exit $rc from: $*"
}
wasmig() { "$WASMIG_BIN" "$@"; }
alembic() { "$ALEMBIC" "$@"; }

head_before=$(cd "$APP" && DATABASE_URL=unused "$ALEMBIC" heads 2>/dev/null | awk '{print $1}')
[[ $head_before == "$APP_HEAD" ]] || die "alembic heads printed '$head_before', expected $APP_HEAD"
run wasmig alembic-revision --down-revision "$APP_HEAD" --out "$VERSIONS"

# Digests per table over the columns the fixture gave it, so a migration that
# adds columns still shows whether any existing value changed.
COLUMNS=$WORK/columns.json
digest() {
    "$PY" - "$1" "$COLUMNS" <<'PY'
import json, os, sys
import psycopg
url, path = sys.argv[1], sys.argv[2]
with psycopg.connect(url) as c:
    if not os.path.exists(path):
        cols = {}
        for t, col in c.execute("SELECT table_name, column_name FROM information_schema.columns "
                                "WHERE table_schema = 'public' ORDER BY table_name, ordinal_position"):
            cols.setdefault(t, []).append(col)
        json.dump(cols, open(path, "w"))
    cols = json.load(open(path))
    out = []
    for t, names in sorted(cols.items()):
        if t == "alembic_version":
            continue
        expr = ", ".join(f'"{n}"::text' for n in names)
        d = c.execute(f'SELECT count(*), md5(string_agg(r, \',\' ORDER BY r)) FROM (SELECT concat_ws(\'|\', {expr}) AS r FROM "{t}") x').fetchone()
        out.append(f"{t}={d[0]}:{d[1]}")
print(len([o for o in out if not o.endswith("=0:None")]), "tables with rows;", "\n".join(out))
PY
}
schema() { pg_dump --schema-only --no-owner --exclude-schema=wasmig -d "$1" | grep -v -e '^--' -e '^\\restrict' -e '^\\unrestrict' -e '^$'; }
alembic_row() { psql -X -At -d "$1" -c 'SELECT version_num FROM alembic_version'; }
expect_current() { # URL ALEMBIC_REV WASMIG_REV
    local a w
    a=$(cd "$APP" && DATABASE_URL=$1 "$ALEMBIC" current 2>/dev/null | awk 'NF {print $1}')
    w=$(DATABASE_URL=$1 "$WASMIG_BIN" current 2>/dev/null)
    [[ $a == "$2" ]] || die "alembic current printed '$a', expected $2"
    [[ $w == "$3" ]] || die "wasmig current printed '$w', expected $3"
    DATABASE_URL=$1 "$WASMIG_BIN" verify >/dev/null || die "wasmig verify found mismatches at $3"
    [[ $(digest "$1") == "$DIGEST0" ]] || die "row digests changed (at alembic $2)"
    log "ok: alembic current $a, wasmig current $w, wasmig verify clean, rows unchanged"
}

# --- (1) the Alembic path ---
log "(1) alembic upgrade head / downgrade -1 / upgrade head"
app_db alembic
U1=$DB_URL
rm -f "$COLUMNS"
DIGEST0=$(digest "$U1")
SCHEMA0=$(schema "$U1")
log "fixture loaded: $(head -c 40 <<<"$DIGEST0")"
export DATABASE_URL=$U1
run alembic current
run alembic upgrade head
expect_current "$U1" "$HEAD_REV" "$HEAD_REV"
run wasmig verify
run alembic downgrade -1
expect_current "$U1" "$APP_HEAD" erp_base
[[ $(schema "$U1") == "$SCHEMA0" ]] || die "after alembic downgrade -1 the schema is not the application's own"
log "ok: the schema after the downgrade is the application's own (pg_dump, wasmig schema aside)"
run alembic upgrade head
expect_current "$U1" "$HEAD_REV" "$HEAD_REV"
run wasmig history

# --- (2) the mixed path ---
log "(2) wasmig CLI, then Alembic"
app_db mixed
U2=$DB_URL
DIGEST0=$(digest "$U2")
export DATABASE_URL=$U2
run wasmig stamp erp_base
run wasmig up
[[ $(alembic_row "$U2") == "$APP_HEAD" ]] || die "wasmig up changed alembic_version without --alembic-versions"
run alembic current
expect_current "$U2" "$APP_HEAD" "$HEAD_REV"
run alembic upgrade head
expect_current "$U2" "$HEAD_REV" "$HEAD_REV"
run wasmig down
expect_current "$U2" "$APP_HEAD" erp_base
run wasmig up --alembic-versions "$VERSIONS"
expect_current "$U2" "$HEAD_REV" "$HEAD_REV"
run alembic downgrade -1
expect_current "$U2" "$APP_HEAD" erp_base

# --- (3) the package's own tests ---
log "(3) pytest python/tests"
export DATABASE_URL=$ADMIN_URL
if ! out=$(WASMIG_PLUGIN=$VERSIONS/wasmig_plugin.wasm "$PY" -m pytest -q -p no:cacheprovider python/tests 2>&1); then
    printf '%s\n' "$out" | tail -n 40 >&2
    die "pytest python/tests"
fi
printf '%s\n' "$out" | tail -n 1 | sed 's/^/    /'

log "ok ($((SECONDS - started)) s)"
