#!/usr/bin/env bash
# Installs Debian's chromium for the browser tests, if it is missing. Playwright's own
# browser download needs the open internet, which CI does not have; Debian's package does.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" != "0" ]; then
  echo "chromium is missing and we are not root: install Debian's 'chromium' package" >&2
  [ "${CI:-}" = "true" ] && exit 1
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
command -v chromium >/dev/null
