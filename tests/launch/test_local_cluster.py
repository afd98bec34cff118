"""`launch/local_cluster.sh stop` ends only the head it started: another Ray head on the
same machine keeps running (Ray's machine-wide stop command would end both)."""
import shutil
import tempfile
from pathlib import Path

import pytest

from netns import key_values, run_isolated, unavailable_reason

ROOT = Path(__file__).resolve().parents[2]

# The other head: its own ports everywhere two raylets on one host would collide.
SCENARIO = r"""
RAY=$ROOT/.venv/bin/ray
python3 -c "import secrets; print(secrets.token_hex(16))" > "$RAY_AUTH_TOKEN_PATH"
setsid "$RAY" start --head --block --port 6390 --dashboard-port 8270 --include-dashboard true \
  --ray-client-server-port 10101 --dashboard-agent-listen-port 52400 --dashboard-agent-grpc-port 52401 \
  --runtime-env-agent-port 52402 --metrics-export-port 52403 --node-manager-port 52404 \
  --object-manager-port 52405 --min-worker-port 20000 --max-worker-port 20999 \
  --num-cpus 1 --disable-usage-stats > "$WORK/other.log" 2>&1 < /dev/null &
OTHER=$!
until "$RAY" health-check --address 127.0.0.1:6390 2>/dev/null; do
  kill -0 $OTHER || { tail -20 "$WORK/other.log"; exit 1; }; sleep 1
done
bash "$ROOT/launch/local_cluster.sh" start
echo "STATUS_AFTER_START=$(bash "$ROOT/launch/local_cluster.sh" status)"
SID=$(cat "$REFORGE_LOCAL_CLUSTER_DIR/sid")
bash "$ROOT/launch/local_cluster.sh" stop
echo "STATE_DIR_LEFT=$([ -e "$REFORGE_LOCAL_CLUSTER_DIR" ] && echo yes || echo no)"
echo "OURS_LEFT=$(ps -eo sid= | awk -v s=$SID '$1 == s' | wc -l)"
echo "OTHER_PROCESSES=$(ps -eo sid= | awk -v s=$OTHER '$1 == s' | wc -l)"
"$RAY" health-check --address 127.0.0.1:6390 && echo "OTHER_HEALTHY=yes" || echo "OTHER_HEALTHY=no"
kill -TERM $OTHER; wait $OTHER || true
"""


def test_stop_ends_only_its_own_head():
    if reason := unavailable_reason():
        pytest.skip(reason)
    work = Path(tempfile.mkdtemp(prefix="rf-lc-", dir="/tmp"))  # short: Ray's socket paths must fit 107 bytes
    env = {"ROOT": str(ROOT), "WORK": str(work), "RAY_TMPDIR": str(work), "RAY_AUTH_MODE": "token",
           "RAY_AUTH_TOKEN_PATH": str(work / "token"), "REFORGE_LOCAL_CLUSTER_DIR": str(work / "local")}
    try:
        out = run_isolated(SCENARIO, env, timeout=300)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    kv = key_values(out.stdout)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert kv["STATUS_AFTER_START"].startswith("running"), kv
    assert kv["OURS_LEFT"] == "0" and kv["STATE_DIR_LEFT"] == "no", kv
    assert int(kv["OTHER_PROCESSES"]) >= 3 and kv["OTHER_HEALTHY"] == "yes", kv
