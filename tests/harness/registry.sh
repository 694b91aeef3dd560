#!/usr/bin/env bash
# registry.sh: run a real, anonymous distribution registry (docker-registry 2.8) on a free
# 127.0.0.1 port, for scripts (scripts/demo.sh, benchmarks). C++ tests use TestRegistry instead.
#
# Usage:
#   tests/harness/registry.sh start DIR   start in the background; prints "127.0.0.1:PORT"
#   tests/harness/registry.sh stop DIR    SIGTERM (then SIGKILL after 5 s); keeps DIR
#   tests/harness/registry.sh address DIR print "127.0.0.1:PORT" of a running registry
#   tests/harness/registry.sh status DIR  exit 0 if it is running and answers GET /v2/
#
# DIR (created if missing) holds: config.yml, storage/ (filesystem driver rootdirectory; blobs
# are at storage/docker/registry/v2/blobs/sha256/<xx>/<hex>/data), registry.log (JSON lines,
# debug level: `filesystem.Reader("<path>", <offset>)` lines give the start offset of each blob
# read), access.log (combined format: method, path, status, bytes; no Range header),
# registry.pid and address. Starting again with the same DIR reuses the storage and, if free,
# the same port.
#
# Example:
#   addr=$(tests/harness/registry.sh start /tmp/reg)
#   skopeo copy --dest-tls-verify=false oci:/tmp/layout:latest docker://$addr/demo:latest
#   tests/harness/registry.sh stop /tmp/reg
set -euo pipefail

die() { echo "registry.sh: $*" >&2; exit 1; }

cmd=${1:-}
dir=${2:-}
[[ -n $cmd && -n $dir ]] || die "usage: registry.sh start|stop|address|status DIR"

running() {
  # Alive and not a zombie (a child that died during start is not reaped yet).
  local pid
  [[ -f $dir/registry.pid ]] || return 1
  pid=$(cat "$dir/registry.pid")
  kill -0 "$pid" 2>/dev/null || return 1
  ! grep -q '^[^)]*) Z' "/proc/$pid/stat" 2>/dev/null
}

answers() {
  local code
  code=$(curl -s -o /dev/null -m 2 -w '%{http_code}' "http://$(cat "$dir/address")/v2/" || true)
  [[ $code == 200 || $code == 401 ]]
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start() {
  command -v docker-registry >/dev/null || die "docker-registry is not installed (run scripts/setup.sh)"
  command -v curl >/dev/null || die "curl is not installed (run scripts/setup.sh)"
  mkdir -p "$dir/storage"
  dir=$(cd "$dir" && pwd)
  if running; then
    cat "$dir/address"
    return 0
  fi
  local port attempt
  for attempt in 1 2 3 4 5; do
    if [[ $attempt == 1 && -f $dir/address ]]; then
      port=$(sed 's/.*://' "$dir/address")
    else
      port=$(free_port)
    fi
    cat >"$dir/config.yml" <<EOF
version: 0.1
log:
  level: debug
  formatter: json
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: $dir/storage
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:$port
  secret: hoist-test-http-secret
catalog:
  maxentries: 1000
EOF
    echo "127.0.0.1:$port" >"$dir/address"
    local mark
    mark=$(stat -c %s "$dir/registry.log" 2>/dev/null || echo 0)
    setsid docker-registry serve "$dir/config.yml" \
      >>"$dir/access.log" 2>>"$dir/registry.log" </dev/null &
    echo $! >"$dir/registry.pid"
    local i
    for i in $(seq 1 200); do
      if ! running; then
        break
      fi
      if answers; then
        cat "$dir/address"
        return 0
      fi
      sleep 0.05
    done
    if running; then
      kill -KILL "$(cat "$dir/registry.pid")" 2>/dev/null || true
      die "registry on 127.0.0.1:$port did not answer GET /v2/ within 10 s (see $dir/registry.log)"
    fi
    if ! tail -c +"$((mark + 1))" "$dir/registry.log" | grep -q "address already in use"; then
      die "registry exited at start (see $dir/registry.log): $(tail -c 400 "$dir/registry.log")"
    fi
  done
  die "no free port found after 5 attempts"
}

stop() {
  running || return 0
  local pid i
  pid=$(cat "$dir/registry.pid")
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || { rm -f "$dir/registry.pid"; return 0; }
    sleep 0.05
  done
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$dir/registry.pid"
}

case $cmd in
  start) start ;;
  stop) stop ;;
  address) running || die "no registry running in $dir"; cat "$dir/address" ;;
  status) running && answers ;;
  *) die "unknown command '$cmd' (start|stop|address|status)" ;;
esac
