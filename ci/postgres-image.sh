#!/usr/bin/env bash
# Build a local stand-in for the official `postgres` Docker image, for machines
# without a reachable image registry (testcontainers only pulls a missing image,
# so an image with the same name:tag is used as is).
#
#   ci/postgres-image.sh [--force]
#
# Image name: ${WASMIG_PG_IMAGE:-postgres}:${WASMIG_PG_TAG:-15}. Skipped when the
# image already exists, unless --force. Root filesystem: debootstrap --variant=minbase
# --include=postgresql-<major> <suite> ROOT <mirror>, the mirror being the Debian apt
# source configured on this machine (override: WASMIG_DEBIAN_MIRROR, WASMIG_DEBIAN_SUITE).
#
# The entrypoint keeps the official image's contract: POSTGRES_USER, POSTGRES_PASSWORD,
# POSTGRES_DB, POSTGRES_HOST_AUTH_METHOD, POSTGRES_INITDB_ARGS, PGDATA,
# /docker-entrypoint-initdb.d/*.sql|*.sh, port 5432, extra arguments passed to postgres
# (`-c fsync=off`). Like the official image it starts a temporary server during init
# (pg_ctl -w start, whose log goes to stdout, so "database system is ready to accept
# connections" appears once on stdout), stops it, then execs the real server (log on
# stderr): the testcontainers-modules postgres wait condition passes.
set -euo pipefail

log() { echo "postgres-image: $*"; }
die() { echo "postgres-image: error: $*" >&2; exit 1; }

force=0
for arg in "$@"; do
    case "$arg" in
        --force) force=1 ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        *) die "unknown argument: $arg (usage: $0 [--force])" ;;
    esac
done

image="${WASMIG_PG_IMAGE:-postgres}:${WASMIG_PG_TAG:-15}"
tag="${WASMIG_PG_TAG:-15}"
major="${WASMIG_PG_MAJOR:-${tag%%[.-]*}}"
case "$major" in ''|*[!0-9]*) die "cannot derive the PostgreSQL major version from tag '$tag': set WASMIG_PG_MAJOR" ;; esac
suite="${WASMIG_DEBIAN_SUITE:-bookworm}"

command -v docker >/dev/null 2>&1 || die "docker client not found: run ci/install-docker.sh"
docker info >/dev/null 2>&1 || die "docker daemon not reachable: run ci/install-docker.sh"

if [ "$force" -eq 0 ] && docker image inspect "$image" >/dev/null 2>&1; then
    log "image $image already exists ($(docker image inspect -f '{{.Id}}' "$image" | cut -c1-19)); skipping (use --force to rebuild)"
    exit 0
fi

[ "$(id -u)" -eq 0 ] || die "debootstrap needs root: run this script as root (sudo)"

if ! command -v debootstrap >/dev/null 2>&1; then
    log "debootstrap not found: apt-get install debootstrap"
    apt-get -o DPkg::Lock::Timeout=600 update -qq
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq debootstrap
fi

# The Debian mirror configured on this machine (deb822 "URIs:" or one-line "deb URL suite").
mirror="${WASMIG_DEBIAN_MIRROR:-}"
if [ -z "$mirror" ]; then
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        mirror=$(awk '/^URIs:/ { for (i = 2; i <= NF; i++) if ($i !~ /security/) { print $i; exit } }' "$f")
        [ -n "$mirror" ] && break
    done
fi
if [ -z "$mirror" ]; then
    mirror=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
        | awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { if ($i !~ /security/) { print $i; exit } ; break } }')
fi
[ -n "$mirror" ] || die "no Debian mirror found in /etc/apt/sources.list{,.d}: set WASMIG_DEBIAN_MIRROR"

root=$(mktemp -d /var/tmp/wasmig-pg-rootfs.XXXXXX)
trap 'rm -rf "$root"' EXIT

log "building $image: debootstrap --variant=minbase --include=postgresql-$major $suite $root $mirror"
start=$(date +%s)
debootstrap --variant=minbase --include="postgresql-$major" "$suite" "$root" "$mirror" >"$root.debootstrap.log" 2>&1 || {
    tail -n 30 "$root.debootstrap.log" >&2
    die "debootstrap failed (full log: $root.debootstrap.log)"
}
rm -f "$root.debootstrap.log"
log "debootstrap done in $(( $(date +%s) - start ))s"

pgbin="/usr/lib/postgresql/$major/bin"
[ -x "$root$pgbin/postgres" ] || die "postgres not found at $pgbin in the root filesystem"

# Slim down: the Debian package's own cluster, apt caches, docs.
rm -rf "$root/var/lib/postgresql/$major" "$root/etc/postgresql/$major" \
       "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* \
       "$root/usr/share/doc" "$root/usr/share/man" "$root/usr/share/info"
mkdir -p "$root/docker-entrypoint-initdb.d" "$root/var/lib/postgresql/data" "$root/var/run/postgresql"
chroot "$root" chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql
chmod 2777 "$root/var/run/postgresql"

cat >"$root/usr/local/bin/docker-entrypoint.sh" <<'ENTRYPOINT'
#!/bin/sh
# Stand-in for the official postgres image's entrypoint (see ci/postgres-image.sh).
set -eu

if [ "${1#-}" != "$1" ]; then
    set -- postgres "$@"
fi
if [ "$1" != "postgres" ]; then
    exec "$@"
fi
shift

PGDATA="${PGDATA:-/var/lib/postgresql/data}"
export PGDATA

if [ "$(id -u)" = 0 ]; then
    mkdir -p "$PGDATA" /var/run/postgresql
    chown postgres:postgres "$PGDATA" /var/run/postgresql
    chmod 700 "$PGDATA"
    exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" postgres "$@"
fi

POSTGRES_USER="${POSTGRES_USER:-postgres}"
POSTGRES_DB="${POSTGRES_DB:-$POSTGRES_USER}"
POSTGRES_PASSWORD="${POSTGRES_PASSWORD:-}"
auth="${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}"

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    if [ -z "$POSTGRES_PASSWORD" ] && [ "$auth" != "trust" ]; then
        echo "Error: Database is uninitialized and superuser password is not specified." >&2
        echo "       Set POSTGRES_PASSWORD, or POSTGRES_HOST_AUTH_METHOD=trust." >&2
        exit 1
    fi
    pwfile="$(mktemp)"
    printf '%s\n' "${POSTGRES_PASSWORD:-postgres}" >"$pwfile"
    # shellcheck disable=SC2086
    initdb --username="$POSTGRES_USER" --pwfile="$pwfile" --encoding=UTF8 --locale=C.UTF-8 \
        ${POSTGRES_INITDB_ARGS:-}
    rm -f "$pwfile"
    printf '\nhost all all all %s\n' "$auth" >>"$PGDATA/pg_hba.conf"

    # Temporary server on the unix socket only; without -l, pg_ctl sends its log to stdout.
    pg_ctl -D "$PGDATA" -o "-c listen_addresses= -p 5432 $*" -w start
    export PGUSER="$POSTGRES_USER" PGPASSWORD="$POSTGRES_PASSWORD" PGHOST=/var/run/postgresql PGPORT=5432
    if [ "$POSTGRES_DB" != "postgres" ]; then
        psql -v ON_ERROR_STOP=1 --no-psqlrc --dbname=postgres --set db="$POSTGRES_DB" <<'SQL'
CREATE DATABASE :"db";
SQL
    fi
    for f in /docker-entrypoint-initdb.d/*; do
        case "$f" in
            *.sh)  echo "$0: running $f"; . "$f" ;;
            *.sql) echo "$0: running $f"; psql -v ON_ERROR_STOP=1 --no-psqlrc --dbname="$POSTGRES_DB" -f "$f" ;;
            *)     [ -e "$f" ] && echo "$0: ignoring $f" ;;
        esac
    done
    pg_ctl -D "$PGDATA" -m fast -w stop
    unset PGPASSWORD
    echo
    echo "PostgreSQL init process complete; ready for start up."
    echo
fi

exec postgres -c listen_addresses='*' "$@"
ENTRYPOINT
chmod 755 "$root/usr/local/bin/docker-entrypoint.sh"

log "importing the root filesystem as $image"
start=$(date +%s)
tar -C "$root" --numeric-owner -c . | docker import \
    --change 'ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]' \
    --change 'CMD ["postgres"]' \
    --change "ENV PATH=$pgbin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    --change 'ENV PGDATA=/var/lib/postgresql/data' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'EXPOSE 5432' \
    --change "LABEL org.wasmig.stand-in=ci/postgres-image.sh org.wasmig.pg-major=$major" \
    - "$image" >/dev/null
log "imported in $(( $(date +%s) - start ))s: $image $(docker image inspect -f '{{.Id}} {{.Size}}' "$image" | awk '{ printf "%s, %d MB", substr($1, 1, 19), $2 / 1048576 }')"
