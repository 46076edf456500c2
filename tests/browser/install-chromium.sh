#!/usr/bin/env bash
# Installs Debian's chromium for the browser tests, if it is missing. Playwright's own
# browser download needs the open internet, which CI does not have; Debian's package does.
# As root it uses apt-get directly; otherwise password-less sudo if there is one. Under
# CI=true a Chromium that cannot be installed is an error (the browser tests must run there);
# elsewhere the tests skip with the reason.
set -euo pipefail
if [ -x /usr/bin/chromium ] || command -v chromium >/dev/null 2>&1; then
  exit 0
fi
if ! . "$(dirname "${BASH_SOURCE[0]}")/../support/apt.sh"; then
  echo "chromium is missing and we cannot become root: install Debian's 'chromium' package" >&2
  [ "${CI:-}" = "true" ] && exit 1
  exit 0
fi
apt_install chromium fonts-dejavu-core
command -v chromium >/dev/null
