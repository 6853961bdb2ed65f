#!/usr/bin/env bash
# Make a Docker daemon available on this machine:
#   1. install docker.io with apt-get when dockerd is absent,
#   2. start dockerd in the background when it is not running (log: /tmp/dockerd.log),
#   3. wait until `docker info` answers (timeout: WASMIG_DOCKER_TIMEOUT seconds, default 60).
# Idempotent: does nothing when `docker info` already answers.
set -euo pipefail

log() { echo "install-docker: $*"; }
die() { echo "install-docker: error: $*" >&2; exit 1; }

timeout_s="${WASMIG_DOCKER_TIMEOUT:-60}"
dockerd_log="${WASMIG_DOCKERD_LOG:-/tmp/dockerd.log}"

sudo=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || die "not root and sudo is missing: run this script as root"
    sudo="sudo"
fi

if docker info >/dev/null 2>&1; then
    log "docker daemon already answers (docker info ok); nothing to do"
    exit 0
fi

if ! command -v dockerd >/dev/null 2>&1; then
    command -v apt-get >/dev/null 2>&1 || die "dockerd is absent and apt-get is not available: install Docker by hand"
    log "dockerd not found: apt-get install docker.io"
    $sudo apt-get -o DPkg::Lock::Timeout=600 update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq docker.io
fi
command -v docker >/dev/null 2>&1 || die "docker client not found after installing docker.io"

if pgrep -x dockerd >/dev/null 2>&1; then
    log "dockerd is running (pid $(pgrep -x dockerd | tr '\n' ' ')) but not answering yet: waiting"
else
    log "starting dockerd in the background (log: $dockerd_log)"
    # setsid: own session, so the daemon outlives this script and ignores the caller's Ctrl-C.
    $sudo setsid nohup dockerd >"$dockerd_log" 2>&1 </dev/null &
fi

start=$(date +%s)
until docker info >/dev/null 2>&1; do
    if [ $(( $(date +%s) - start )) -ge "$timeout_s" ]; then
        echo "--- last lines of $dockerd_log ---" >&2
        tail -n 20 "$dockerd_log" >&2 || true
        die "docker daemon did not answer within ${timeout_s}s (see $dockerd_log)"
    fi
    sleep 0.5
done
log "docker daemon ready after $(( $(date +%s) - start ))s: $(docker info --format 'server {{.ServerVersion}}, storage driver {{.Driver}}')"
