#!/usr/bin/env bash
# Installs Debian's PgBouncer for the pooling fault test (tests/faults/test_pgbouncer.py), if
# it is missing. As root it uses apt-get directly; otherwise password-less sudo if there is
# one. A PgBouncer that cannot be installed is an error: that test never skips.
set -euo pipefail
if command -v pgbouncer >/dev/null 2>&1 || [ -x /usr/sbin/pgbouncer ]; then
  exit 0
fi
if [ "$(id -u)" = "0" ]; then
  AS_ROOT=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  AS_ROOT=(sudo -n)
else
  echo "pgbouncer is missing and we cannot become root: install Debian's 'pgbouncer' package" >&2
  exit 1
fi
"${AS_ROOT[@]}" apt-get update -qq >/dev/null
"${AS_ROOT[@]}" env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y -qq --no-install-recommends pgbouncer >/dev/null
[ -x /usr/sbin/pgbouncer ]
