#!/bin/sh
# Installs bubblewrap for the code sandbox, then checks that some backend contains untrusted
# code on this machine (`reforge sandbox doctor --no-battery`). It never degrades silently:
# it waits (bounded) for the package manager's lock, retries, and exits non-zero with the
# command to run when no backend can isolate code.
#   usage: sh launch/install_sandbox.sh [PYTHON]     (PYTHON: the venv's python, for the check)
#   REFORGE_APT_LOCK_WAIT  seconds to wait for the apt/dpkg lock per attempt (default 300)
#   REFORGE_SANDBOX_BACKEND=none  accept a machine without isolation (unsafe, loudly)
set -u
PY=${1:-python3}
LOCK_WAIT=${REFORGE_APT_LOCK_WAIT:-300}
ATTEMPTS=3
RETRY_SLEEP=${REFORGE_APT_RETRY_SLEEP:-5}   # seconds; the n-th retry waits n times this
say() { echo "install_sandbox: $*" >&2; }

install_bwrap() {
  command -v bwrap >/dev/null 2>&1 && return 0
  if [ "$(id -u)" != "0" ]; then
    say "bubblewrap is not installed and this is not root, so it cannot be installed here"
    return 1
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    say "bubblewrap is not installed and there is no apt-get to install it with"
    return 1
  fi
  log=$(mktemp)
  n=1
  while [ "$n" -le "$ATTEMPTS" ]; do
    if apt-get -o DPkg::Lock::Timeout="$LOCK_WAIT" install -y -q bubblewrap >"$log" 2>&1 \
       && command -v bwrap >/dev/null 2>&1; then
      say "installed $(bwrap --version)"
      rm -f "$log"
      return 0
    fi
    say "attempt $n/$ATTEMPTS to install bubblewrap failed: $(tail -n 1 "$log")"
    apt-get -o DPkg::Lock::Timeout="$LOCK_WAIT" update -q >"$log" 2>&1 \
      || say "apt-get update failed: $(tail -n 1 "$log")"
    [ "$n" -lt "$ATTEMPTS" ] && sleep $((n * RETRY_SLEEP))
    n=$((n + 1))
  done
  rm -f "$log"
  return 1
}

install_bwrap
bwrap_ok=$?
# The check runs with the default (auto) choice: does any backend contain code here?
if REFORGE_SANDBOX_BACKEND=auto "$PY" -m rewards.cli sandbox doctor --no-battery >/dev/null 2>&1; then
  [ "$bwrap_ok" -eq 0 ] || say "NOTE: bubblewrap is missing; the sandbox will use its hardened" \
    "unshare backend, which contains code here (see: reforge sandbox doctor)"
  exit 0
fi
if [ "${REFORGE_SANDBOX_BACKEND:-}" = "none" ]; then
  say "WARNING: no sandbox backend isolates code on this machine; continuing only because" \
    "REFORGE_SANDBOX_BACKEND=none asks to run untrusted code WITHOUT isolation"
  exit 0
fi
say "FAILED: no sandbox backend can contain untrusted code on this machine."
REFORGE_SANDBOX_BACKEND=auto "$PY" -m rewards.cli sandbox doctor --no-battery >&2
say "to fix: as root run   apt-get install bubblewrap   (or your distribution's bubblewrap"
say "package; on Ubuntu 24.04+ unprivileged user namespaces must also be allowed), then run"
say "make install   again and check with   reforge sandbox doctor"
say "to run untrusted code WITHOUT isolation instead (unsafe): export REFORGE_SANDBOX_BACKEND=none"
exit 1
