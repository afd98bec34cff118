#!/usr/bin/env bash
# One Ray node of a reforge Slurm job; ray_cluster.sbatch runs it with srun, one per node.
#   ray_node.sh head|worker NODE_IP SLOT NUM_CPUS NUM_GPUS
# Runs `ray start --block` with pinned ports. SLOT is this node's index among the job's
# nodes on the same host (0 on a normal cluster): it offsets the per-node ports so two
# raylets on one host do not collide. When the batch script creates $REFORGE_JOB_DIR/stop
# (teardown), or on SIGTERM (scancel, time limit), it stops Ray, copies the node's Ray logs
# to $REFORGE_JOB_DIR/logs/NODE/ and removes its node-local temp dir.
set -uo pipefail
role=$1 ip=$2 slot=$3 cpus=$4 gpus=$5
node="${SLURMD_NODENAME:-$(hostname -s)}"
iface_ip() { ip -4 -o addr show dev "$1" | awk '{ split($4, a, "/"); print a[1]; exit }'; }
[ -n "${REFORGE_RAY_IFACE:-}" ] && ip="$(iface_ip "$REFORGE_RAY_IFACE")"  # e.g. the InfiniBand interface
# Node-local and short: Ray's AF_UNIX socket paths under it must fit in 107 bytes.
tmp="${REFORGE_RAY_TMP:-/tmp}/rr-${SLURM_JOB_ID}-$node"
base=$((REFORGE_RAY_PORT_BASE + slot * 1000))
args=(--node-ip-address "$ip" --temp-dir "$tmp" --num-cpus "$cpus" --num-gpus "$gpus"
      --node-manager-port "$base" --object-manager-port $((base + 1)) --runtime-env-agent-port $((base + 2))
      --dashboard-agent-grpc-port $((base + 3)) --dashboard-agent-listen-port $((base + 4))
      --metrics-export-port $((base + 5)) --min-worker-port $((base + 100)) --max-worker-port $((base + 999))
      --disable-usage-stats --block)
if [ "$role" = head ]; then
  args+=(--head --port "$REFORGE_RAY_GCS_PORT" --include-dashboard true --dashboard-host "$ip"
         --dashboard-port "$REFORGE_RAY_DASHBOARD_PORT" --ray-client-server-port "$REFORGE_RAY_CLIENT_PORT")
  resources="${REFORGE_RAY_HEAD_RESOURCES:-}"
else
  args+=(--address "$REFORGE_RAY_HEAD_IP:$REFORGE_RAY_GCS_PORT")
  resources="${REFORGE_RAY_WORKER_RESOURCES:-}"
fi
[ -n "$resources" ] && args+=(--resources "$resources")
# shellcheck disable=SC2086  # REFORGE_RAY_START_ARGS is a list of extra flags
ray start "${args[@]}" ${REFORGE_RAY_START_ARGS:-} &
pid=$!
trap 'kill -TERM "$pid" 2>/dev/null' TERM INT
# A stop file, not a signal through srun: srun turns a signal to itself into SIGKILL for the step.
while kill -0 "$pid" 2>/dev/null; do
  [ -e "$REFORGE_JOB_DIR/stop" ] && kill -TERM "$pid" 2>/dev/null
  sleep 1
done
wait "$pid"; rc=$?
mkdir -p "$REFORGE_JOB_DIR/logs/$node"
cp -r "$tmp"/session_latest/logs/. "$REFORGE_JOB_DIR/logs/$node/" 2>/dev/null || true
rm -rf "$tmp"
exit "$rc"
