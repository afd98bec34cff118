#!/usr/bin/env bash
# Start (or stop) a one-machine Ray head with the dashboard, for `ray job submit`.
#   launch/local_cluster.sh start   |   launch/local_cluster.sh stop
# Ray 2.60 turns on token auth: the CLI needs RAY_AUTH_MODE=token against this head.
set -euo pipefail
cd "$(dirname "$0")/.."
export RAY_AUTH_MODE=token
# Workers run the jobs' compute: normal priority, not the raylet's default nice 15.
export RAY_worker_niceness=0
RAY=.venv/bin/ray
case "${1:-start}" in
  start) PATH="$PWD/.venv/bin:$PATH" $RAY start --head --include-dashboard true --dashboard-host 127.0.0.1 \
           --num-cpus "${RAY_NUM_CPUS:-4}" --disable-usage-stats ;;
  stop) $RAY stop --force ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
