"""Two gloo processes give the single-process losses (same global batch)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

WORKER = Path(__file__).with_name("dist_worker.py")
ROOT = Path(__file__).resolve().parents[2]


def _torchrun(tiny_dir, tmp_path, backend, stage):
    out = tmp_path / f"{backend}{stage}.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(WORKER), str(tiny_dir), str(out), backend, str(stage), "1"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def single(tiny_dir):
    sys.path.insert(0, str(WORKER.parent))
    from dist_worker import run

    losses, b = run(str(tiny_dir), "none", 0, grad_accum=2)
    full = b.full_state_dict()
    return {"losses": losses, "weight_sum": float(sum(v.double().sum() for v in full.values())),
            "n_weights": len(full)}


def test_fsdp2_two_processes_match_single(tiny_dir, tmp_path, single):
    got = _torchrun(tiny_dir, tmp_path, "fsdp2", 0)
    assert got["world_size"] == 2
    assert got["losses"] == pytest.approx(single["losses"], abs=1e-5)
    assert single["losses"][-1] < single["losses"][0]
    # the gathered full state dict has every HF-named weight, with the trained values
    assert got["n_weights"] == single["n_weights"]
    assert got["weight_sum"] == pytest.approx(single["weight_sum"], rel=1e-5)


@pytest.mark.slow  # ~1.5 min: deepspeed import + engine set-up in two processes
def test_deepspeed_zero2_two_processes_match_single(tiny_dir, tmp_path, single):
    pytest.importorskip("deepspeed")
    got = _torchrun(tiny_dir, tmp_path, "deepspeed", 2)
    assert got["losses"] == pytest.approx(single["losses"], abs=1e-5)
    assert got["weight_sum"] == pytest.approx(single["weight_sum"], rel=1e-5)
