#!/bin/sh
# Installs bubblewrap for the code sandbox when running as root on Debian/Ubuntu.
# Without it the sandbox falls back to `unshare` (util-linux), which is always present.
if command -v bwrap >/dev/null 2>&1; then exit 0; fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  (apt-get install -y -qq bubblewrap >/dev/null 2>&1 || (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq bubblewrap >/dev/null 2>&1)) \
    || echo "install_sandbox: bubblewrap not installed; the sandbox will use unshare" >&2
fi
exit 0
