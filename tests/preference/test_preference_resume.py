"""Resume of online RPO and of GRPO + RPO interleaved (core.checkpointer): a run started from
the uninterrupted run's mid-run checkpoint, in a fresh run directory with fresh actors,
reproduces that run's next step (rollout rewards, preference loss and statistics, GRPO
metrics). Real vLLM-CPU generators, policy workers in Ray actors and the rewards pool."""
import json
from pathlib import Path

import pytest

from core.config import parse_cli
from core.run_dir import RunDir
from rl.preference.config import PreferenceConfig
from rl.preference.pipeline import run

ROOT = Path(__file__).resolve().parents[2]


def _compared(record: dict) -> list[str]:
    """Every figure of a step but wall-clock times and float-noise parity diffs."""
    return sorted(k for k, v in record.items() if isinstance(v, (int, float)) and not k.startswith("time/")
                  and "seconds" not in k and "diff" not in k)


@pytest.fixture(scope="module")
def ray_local():
    import ray

    from core.ray_utils import init_ray

    if ray.is_initialized():
        ray.shutdown()
    init_ray(num_cpus=4)
    yield ray
    ray.shutdown()


def _run(config: str, run_dir: Path, *overrides: str) -> dict:
    cfg = parse_cli(PreferenceConfig, [f"config={ROOT / config}", f"run_dir={run_dir}", "logging.tensorboard=false",
                                       *overrides])
    rd = RunDir.create(run_dir.parent, "x", str(run_dir))
    return run(cfg, rd)


def _records(run_dir: Path) -> dict[int, dict]:
    out: dict[int, dict] = {}
    for rec in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines()):
        if "final" not in rec:
            out.setdefault(rec["step"], {}).update(rec)
    return out


def _assert_same_step(full: dict, resumed: dict, step: int) -> None:
    keys = _compared(full[step])
    assert keys and keys == _compared(resumed[step])
    for k in keys:
        assert resumed[step][k] == pytest.approx(full[step][k], rel=1e-4, abs=1e-6), (step, k)


@pytest.mark.slow
def test_online_rpo_resumes_at_an_iteration_end_and_reproduces_the_next_step(ray_local, tiny_model_dir, tmp_path):
    args = [f"model={tiny_model_dir}", "online.iterations=2", "online.steps_per_iteration=1",
            "online.prompts_per_step=4", "online.samples_per_prompt=4", "online.oversample=1.0",
            "online.eval_prompts=4", "online.max_tokens=24", "data.synthetic_test_per_kind=4",
            "online.prompts=if", "reward.functions={by_type: 1.0}", "reward.accuracy_reward=by_type",
            "reward.backend=local", "checkpoint_every=1"]
    config = "recipes/configs/super_rpo_online_tiny.yaml"
    full = _run(config, tmp_path / "full", *args)
    ckpt = tmp_path / "full" / "checkpoints" / "step_1"
    assert (ckpt / "checkpoint.json").is_file() and not (tmp_path / "full" / "checkpoints" / "step_2").exists()
    resumed = _run(config, tmp_path / "resumed", *args, f"resume={ckpt}")
    a, b = _records(tmp_path / "full"), _records(tmp_path / "resumed")
    assert 1 not in b  # nothing before the checkpoint was re-run
    _assert_same_step(a, b, 2)
    for key in ("reward_mean_by_iteration", "eval_prompt_rewards_first", "eval_prompt_rewards_last", "reward_gain"):
        assert resumed[key] == pytest.approx(full[key], rel=1e-4, abs=1e-6), key


@pytest.mark.slow
def test_interleaved_grpo_rpo_resumes_with_the_hook_state(ray_local, tiny_model_dir, tmp_path):
    """The preference hook's block count and its offline pair stream's position come back with
    the GRPO checkpoint: step 3's preference batch is the third, as in the uninterrupted run."""
    args = [f"model={tiny_model_dir}", "grpo.steps=3", "grpo.checkpoint_every=2", "interleave.every_grpo_steps=1",
            "interleave.preference_steps=1", "grpo.rollout.prompts_per_step=4", "grpo.rollout.max_tokens=24",
            "grpo.eval.max_tokens=24", "grpo.data.synthetic_test_prompts=4", "grpo.reward.backend=local",
            "data.synthetic_math=8", "data.synthetic_if=8", "data.synthetic_tool=8",
            "data.synthetic_test_per_kind=4", "batch_size=8"]
    config = "recipes/configs/super_rpo_interleaved_tiny.yaml"
    full = _run(config, tmp_path / "full", *args)
    ckpt = tmp_path / "full" / "checkpoints" / "step_2"
    resumed = _run(config, tmp_path / "resumed", *args, f"grpo.resume={ckpt}")
    a, b = _records(tmp_path / "full"), _records(tmp_path / "resumed")
    assert "pref/loss" in a[3] and b[3]["pref/blocks"] == 3
    _assert_same_step(a, b, 3)
    assert resumed["preference_blocks"] == 1 and full["preference_blocks"] == 3
