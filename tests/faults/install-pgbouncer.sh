#!/usr/bin/env bash
# Installs Debian's PgBouncer for the pooling fault test (tests/faults/test_pgbouncer.py), if
# it is missing. As root it uses apt-get directly; otherwise password-less sudo if there is
# one. A PgBouncer that cannot be installed is an error: that test never skips.
set -euo pipefail
if command -v pgbouncer >/dev/null 2>&1 || [ -x /usr/sbin/pgbouncer ]; then
  exit 0
fi
if ! . "$(dirname "${BASH_SOURCE[0]}")/../support/apt.sh"; then
  echo "pgbouncer is missing and we cannot become root: install Debian's 'pgbouncer' package" >&2
  exit 1
fi
apt_install pgbouncer
[ -x /usr/sbin/pgbouncer ]
