"""`reforge launch slurm` builds the sbatch submission (no Slurm needed for these)."""
import shlex

import pytest

from launch.cli import main


def test_dry_run_prints_gpu_and_container_flags(capsys):
    assert main(["slurm", "--dry-run", "--no-check-config", "--nodes", "4", "--gpus-per-node", "8", "--exclusive",
                 "--partition", "gpu", "--time", "04:00:00", "--container-image", "nvcr.io/org/reforge:1",
                 "--container-mounts", "/lustre:/lustre", "recipes/ultra_grpo.py", "eval.modes=[on,off]"]) == 0
    words = shlex.split(capsys.readouterr().out)
    env = dict(w.split("=", 1) for w in words if w.startswith("REFORGE_"))
    assert env["REFORGE_ENTRYPOINT"] == "python recipes/ultra_grpo.py 'eval.modes=[on,off]'"  # commas travel intact
    assert env["REFORGE_GPUS_PER_NODE"] == "8"
    assert env["REFORGE_SRUN_ARGS"] == "--container-image=nvcr.io/org/reforge:1 --container-mounts=/lustre:/lustre"
    sbatch = words[words.index("sbatch"):]
    assert {"--nodes=4", "--gpus-per-node=8", "--exclusive", "--partition=gpu", "--time=04:00:00"} <= set(sbatch)
    assert sbatch[-1].endswith("launch/slurm/ray_cluster.sbatch")


def test_bad_override_fails_before_submitting():
    with pytest.raises(SystemExit, match="key 'steps'"):
        main(["slurm", "--dry-run", "recipes/ultra_grpo.py", "steps=many"])


def test_recipe_or_command_not_both():
    with pytest.raises(SystemExit, match="not both"):
        main(["slurm", "--dry-run", "--command", "true", "recipes/ultra_grpo.py"])
