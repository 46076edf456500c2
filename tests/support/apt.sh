# Sourced by the install-*.sh scripts (tests/faults, tests/browser): what each needs to put a
# missing Debian package on the machine. Sourcing sets AS_ROOT to the command prefix that
# runs as root (nothing when we are root, `sudo -n` when password-less sudo works) and
# returns 0, or returns 1 when we cannot become root (the caller says what is missing).
# `apt_install PACKAGE...` then installs quietly, without recommends.
apt_install() {
  "${AS_ROOT[@]}" apt-get update -qq >/dev/null
  "${AS_ROOT[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
if [ "$(id -u)" = "0" ]; then
  AS_ROOT=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  AS_ROOT=(sudo -n)
else
  return 1
fi
