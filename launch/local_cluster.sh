#!/usr/bin/env bash
# Start (or stop) a one-machine Ray head with the dashboard, for `ray job submit`.
#   launch/local_cluster.sh start | stop | status
# `start` runs `ray start --head --block` as the leader of a new session and records its PID
# in $REFORGE_LOCAL_CLUSTER_DIR (default /tmp/reforge-local-cluster-$UID). `stop` ends only
# the processes of that session -- the head's GCS, raylet, dashboard and workers -- by PID.
# It never runs Ray's machine-wide stop command, which ends every Ray process on the machine, a user's
# other clusters included.
# Knobs: RAY_NUM_CPUS (4), RAY_PORT (6379), RAY_DASHBOARD_PORT (8265), RAY_START_ARGS
# (extra `ray start` flags, e.g. the agent ports when another raylet runs on this machine).
# Ray 2.60 turns on token auth: the CLI needs RAY_AUTH_MODE=token against this head.
set -euo pipefail
cd "$(dirname "$0")/.."
export RAY_AUTH_MODE=token
# Workers run the jobs' compute: normal priority, not the raylet's default nice 15.
export RAY_worker_niceness=0
RAY="$PWD/.venv/bin/ray"
STATE="${REFORGE_LOCAL_CLUSTER_DIR:-/tmp/reforge-local-cluster-$(id -u)}"
PORT="${RAY_PORT:-6379}"

# PIDs of the processes in session $1 (a session id is its leader's PID).
session_pids() {
  local stat
  for stat in /proc/[0-9]*/stat; do
    # Field 6 is the session id; the command name (field 2) may hold spaces, so cut after ')'.
    awk -v sid="$1" '{ sub(/^.*\) /, ""); if ($4 == sid) print FILENAME }' "$stat" 2>/dev/null
  done | sed -n 's#^/proc/\([0-9]*\)/stat$#\1#p'
}

head_alive() { [ -f "$STATE/sid" ] && [ -n "$(session_pids "$(cat "$STATE/sid")")" ]; }

case "${1:-start}" in
  start)
    if head_alive; then echo "local Ray head already running (session $(cat "$STATE/sid"))" >&2; exit 1; fi
    mkdir -p "$STATE"
    # `ray start` needs a token under token auth; Ray's local default is ~/.ray/auth_token.
    if [ -z "${RAY_AUTH_TOKEN:-}${RAY_AUTH_TOKEN_PATH:-}" ] && [ ! -s "$HOME/.ray/auth_token" ]; then
      "$RAY" get-auth-token --generate >/dev/null
    fi
    # setsid: the head and everything it spawns share one new session, which `stop` ends.
    PATH="$PWD/.venv/bin:$PATH" setsid "$RAY" start --head --block --port "$PORT" \
      --include-dashboard true --dashboard-host 127.0.0.1 --dashboard-port "${RAY_DASHBOARD_PORT:-8265}" \
      --num-cpus "${RAY_NUM_CPUS:-4}" --disable-usage-stats ${RAY_START_ARGS:-} \
      >"$STATE/ray.log" 2>&1 </dev/null &
    echo $! >"$STATE/sid"
    for _ in $(seq 120); do
      if ! kill -0 "$(cat "$STATE/sid")" 2>/dev/null; then
        echo "ray start exited; its log ($STATE/ray.log):" >&2; tail -20 "$STATE/ray.log" >&2; exit 1
      fi
      if "$RAY" health-check --address "127.0.0.1:$PORT" >/dev/null 2>&1; then
        echo "Ray head up: ray job submit --address http://127.0.0.1:${RAY_DASHBOARD_PORT:-8265} ..."
        exit 0
      fi
      sleep 1
    done
    echo "Ray head not healthy after 120 s; see $STATE/ray.log" >&2; "$0" stop; exit 1 ;;
  stop)
    [ -f "$STATE/sid" ] || { echo "no local Ray head recorded in $STATE" >&2; exit 0; }
    sid="$(cat "$STATE/sid")"
    kill -TERM "$sid" 2>/dev/null || true  # `ray start --block` stops its own processes on SIGTERM
    for _ in $(seq 30); do [ -z "$(session_pids "$sid")" ] && break; sleep 1; done
    pids="$(session_pids "$sid")"
    [ -z "$pids" ] || kill -KILL $pids 2>/dev/null || true
    rm -rf "$STATE"
    echo "local Ray head stopped" ;;
  status) if head_alive; then echo "running (session $(cat "$STATE/sid"))"; else echo "stopped"; exit 1; fi ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
