#!/usr/bin/env bash
# The version matrix: the round trip, the Postgres suite (tests/tests/postgres.rs),
# the production suite (poolers, role settings, privileges) and a crash subset on
# every supported major other than the one the main test run already covers
# (15, the container). Servers come from ci/pg-versions.sh through the local
# provider (WASMIG_PG_PROVIDER=local, WASMIG_PG_BINDIR). Prints the time per major.
#
# Majors: WASMIG_PG_MAJORS (default "13 14 16 17 18"). The killed-run crash test
# (two to three minutes) runs on the newest only; the eight-runner one on all.
# It cannot pass on 13: without client_connection_check_interval (14+) a killed
# runner's backend finishes its statement (an index build) before it notices. Debian 12 has only pg_dump 15, which refuses newer servers: the one
# test that compares pg_dump output is skipped where pg_dump is older than the
# server (wasmig's own --backup refuses there, and the crash suite tests that).
set -euo pipefail
cd "$(dirname "$0")/.."

majors="${WASMIG_PG_MAJORS:-13 14 16 17 18}"
list="$(bash ci/pg-versions.sh)"
dump_major="$(pg_dump --version | sed -E 's/^[^0-9]*([0-9]+).*/\1/')"
cargo build -q -p wasmig -p wasmig-tests --tests --bins

export WASMIG_PG_PROVIDER=local
total_start=$(date +%s)
for m in $majors; do
    start=$(date +%s)
    export WASMIG_PG_BINDIR="$(awk -v m="$m" '$1 == m { print $2 }' <<<"$list")"
    [ -n "$WASMIG_PG_BINDIR" ] || { echo "no PostgreSQL $m from ci/pg-versions.sh" >&2; exit 1; }
    echo "== PostgreSQL $m ($WASMIG_PG_BINDIR)"
    skip=()
    if [ "$m" -gt "$dump_major" ]; then
        skip=(--skip wasmig_sql_builds_the_same_schema_as_erp_base_plus_the_seeds_parts_1_to_3)
    fi
    cargo test -q -p wasmig-tests --test postgres --test production -- "${skip[@]}"
    crash=(eight_simultaneous_ups_apply_each_revision_exactly_once)
    if [ "$m" = "${majors##* }" ]; then
        crash+=(a_killed_up_or_down_finishes_with_one_rerun_and_keeps_every_row)
    fi
    cargo test -q -p wasmig-tests --test crash -- "${crash[@]}"
    target/debug/wasmig roundtrip --bare --setup-at erp_base \
        --setup tests/fixtures/forms/enum.sql --setup tests/fixtures/forms/check.sql
    echo "== PostgreSQL $m: $(( $(date +%s) - start )) s"
done
echo "== version matrix ($majors): $(( $(date +%s) - total_start )) s"
