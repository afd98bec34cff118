"""Ray on a real Slurm: two slurmd nodes on this host in a private network namespace.

`reforge launch slurm --wait` runs a short GRPO run of the tiny default with the generator
on the head node and the policy on the worker node (custom resources), and returns 0; a
command that exits 3 makes the batch job exit 3; afterwards nothing the test started runs.
"""
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest

import minislurm
from netns import key_values, run_isolated, unavailable_reason

ROOT = Path(__file__).resolve().parents[2]
PY = f"{ROOT}/.venv/bin/python"

# A couple of small steps (test_grpo_e2e's sizes), on the synthetic arithmetic tasks.
GRPO_ARGS = ("steps=2 checkpoint_every=100 rollout.prompts_per_step=4 rollout.samples_per_prompt=4 "
             "rollout.max_tokens=16 rollout.max_refill_rounds=1 rollout.overlong_masking=false "
             "rollout.dynamic_sampling=false filter.enabled=false reward.backend=local algorithm.kl_coef=0 "
             "eval.every_steps=0 eval.max_tokens=16 eval.samples=0 data.synthetic_train_prompts=16 "
             "data.synthetic_test_prompts=8 generator.max_model_len=256 placement.policy_threads=1 "
             "'placement.generator_resources={rollout: 1}' 'placement.policy_resources={train: 1}' "
             "logging.tensorboard=false")

SCENARIO = minislurm.START + r"""
set +e
cd "$ROOT"
t0=$SECONDS
eval "$PY -m launch.cli slurm --nodes 2 --cpus-per-node 2 --wait --job-dir $SLURM_DIR/grpo \
  --head-resources '{\"rollout\": 1}' --worker-resources '{\"train\": 1}' recipes/ultra_grpo.py model=$MODEL $GRPO_ARGS"
echo "GRPO_RC=$?"
echo "GRPO_SECONDS=$((SECONDS - t0))"
t0=$SECONDS
$PY -m launch.cli slurm --nodes 2 --cpus-per-node 2 --wait --job-dir "$SLURM_DIR/fail" \
  --command 'python -c "import sys; print(\"failing on purpose\"); sys.exit(3)"'
echo "FAIL_RC=$?"
echo "FAIL_SECONDS=$((SECONDS - t0))"
t0=$SECONDS
$PY -m launch.cli slurm --nodes 2 --cpus-per-node 2 --wait --job-dir "$SLURM_DIR/dead" --worker-resources 'not json'   --command true
echo "DEAD_RC=$?"
echo "DEAD_SECONDS=$((SECONDS - t0))"
echo "RAY_LEFT=$(ps -eo comm= | grep -c -E 'raylet|gcs_server|ray::|srun|slurmstepd')"
echo "TMP_LEFT=$(ls -d "$SLURM_DIR"/rr-* 2>/dev/null | wc -l)"
""" + minislurm.STOP + r"""
echo "DAEMONS_LEFT=$(ps -eo comm= | grep -c -E 'munged|slurmctld|slurmd')"
"""


@pytest.mark.slow
def test_grpo_on_two_slurm_nodes_and_exit_code(tiny_model_dir):
    if reason := unavailable_reason() or minislurm.unavailable_reason():
        pytest.skip(reason)
    work = tempfile.mkdtemp(prefix="rf-sl-", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    minislurm.write_conf(work, cpus=2)
    env = {"ROOT": str(ROOT), "PY": PY, "SLURM_DIR": work, "MODEL": tiny_model_dir, "GRPO_ARGS": GRPO_ARGS,
           "REFORGE_RAY_TMP": work, "PATH": f"/usr/sbin:{os.environ['PATH']}"}
    try:
        t0 = time.time()
        out = run_isolated(SCENARIO, env, timeout=840)
        print(f"slurm scenario: {time.time() - t0:.0f} s in all")
        kv = key_values(out.stdout)
        print({k: v for k, v in kv.items() if k.endswith(("_RC", "_SECONDS", "_LEFT"))})
        for out_file in sorted(Path(work).glob("*/sbatch-*.out")):  # the script's own timeline
            print(out_file.parent.name, *[ln for ln in out_file.read_text().splitlines() if ln.startswith("[ray_cluster")],
                  sep="\n  ")
        grpo, fail = Path(work, "grpo"), Path(work, "fail")
        report = out.stdout[-4000:] + out.stderr[-2000:] + "".join(p.read_text()[-3000:] for p in grpo.glob("sbatch-*.out"))
        assert kv.get("GRPO_RC") == "0", report

        actors = json.loads((grpo / "ray_actors.json").read_text())
        by_node = {}
        for a in actors:
            if a["class_name"] != "JobSupervisor":
                by_node.setdefault(a["node_ip"], set()).add(a["class_name"])
        assert set(by_node) == {"127.0.0.1", "127.0.0.2"}, actors  # head n1, worker n2
        assert any("Policy" in c for c in by_node["127.0.0.2"]) and not any("Policy" in c for c in by_node["127.0.0.1"])
        runs = list((grpo / "runs").glob("ultra_grpo*/metrics.jsonl"))
        steps = [r for r in map(json.loads, runs[0].read_text().splitlines()) if "reward_mean" in r]
        assert len(steps) == 2 and (runs[0].parent / "summary.json").exists()
        assert {"n1.out", "n2.out", "n1", "n2", "job.log"} <= {p.name for p in [*grpo.glob("logs/*"), grpo / "job.log"]}
        assert list(grpo.glob("logs/n2/raylet*")), "the worker's Ray logs were not saved"
        assert not (grpo / "ray_token").exists()

        assert kv.get("FAIL_RC") == "3", out.stdout[-3000:]
        assert "failing on purpose" in (fail / "job.log").read_text()
        dead_log = "".join(p.read_text() for p in Path(work, "dead").glob("sbatch-*.out"))
        assert kv.get("DEAD_RC") == "1" and "node n2 left the cluster while it was starting" in dead_log, dead_log
        assert int(kv["DEAD_SECONDS"]) < 120  # REFORGE_RAY_START_TIMEOUT is 300 s
        assert kv["RAY_LEFT"] == "0" and kv["TMP_LEFT"] == "0" and kv["DAEMONS_LEFT"] == "0", kv
    finally:
        shutil.rmtree(work, ignore_errors=True)
    # The namespace is gone with the script; nothing on the host still refers to its files.
    stray = [p for p in Path("/proc").glob("[0-9]*/cmdline") if work.encode() in _read(p)]
    assert not stray, stray


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""
