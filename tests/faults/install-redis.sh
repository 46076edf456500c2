#!/usr/bin/env bash
# Installs Debian's Redis 7 (redis-server, redis-sentinel, redis-tools) for the Redis topology
# fixtures (tests/support/redis_topology.py), the Sentinel and Cluster fault tests and
# `make cluster`, if it is missing. As root it uses apt-get directly; otherwise password-less
# sudo if there is one. A Redis that cannot be installed is an error: those tests never skip.
#
# The packages start a system redis on 6379 (and a sentinel on 26379) when installed; the
# tests start their own servers on free ports, so a policy-rc.d forbids that start for the
# duration of the install (the machine's own policy-rc.d, if any, is put back), and any
# service that started anyway is stopped. A lock keeps concurrent runs from racing apt.
set -euo pipefail
have() { [ -x /usr/bin/redis-server ] && [ -x /usr/bin/redis-sentinel ] && [ -x /usr/bin/redis-cli ]; }
if have; then
  exit 0
fi
if ! . "$(dirname "${BASH_SOURCE[0]}")/../support/apt.sh"; then
  echo "redis-server 7 is missing and we cannot become root: install Debian's 'redis-server'" \
    "and 'redis-sentinel' packages" >&2
  exit 1
fi
LOCK=/tmp/peerchat-install-redis.lock
exec 9>"$LOCK"
flock 9
if have; then
  exit 0
fi
POLICY=/usr/sbin/policy-rc.d
SAVED=""
if [ -e "$POLICY" ]; then
  SAVED="$(mktemp)"
  "${AS_ROOT[@]}" cp -p "$POLICY" "$SAVED"
fi
restore() {
  if [ -n "$SAVED" ]; then
    "${AS_ROOT[@]}" cp -p "$SAVED" "$POLICY"
    rm -f "$SAVED"
  else
    "${AS_ROOT[@]}" rm -f "$POLICY"
  fi
}
trap restore EXIT
printf '#!/bin/sh\nexit 101\n' | "${AS_ROOT[@]}" tee "$POLICY" >/dev/null
"${AS_ROOT[@]}" chmod 755 "$POLICY"
apt_install redis-server redis-sentinel redis-tools
# Should a service manager have started them regardless, stop them: nothing may hold 6379/26379.
for svc in redis-server redis-sentinel; do
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$svc" 2>/dev/null; then
    "${AS_ROOT[@]}" systemctl disable --now "$svc" >/dev/null 2>&1 || true
  elif command -v service >/dev/null 2>&1; then
    "${AS_ROOT[@]}" service "$svc" stop >/dev/null 2>&1 || true
  fi
done
have
redis-server --version | grep -q ' v=7\.'
