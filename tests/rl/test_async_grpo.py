"""Asynchronous GRPO on real components (vLLM-CPU generator and policy worker in Ray actors):
`max_staleness: 0` is the synchronous loop metric for metric, the staleness bound holds
for every sample trained on, and an async run resumes exactly (its rollouts generated but
not yet trained travel in the checkpoint)."""
import json

import pytest
import torch
from test_grpo_e2e import KEYS, _cfg, _DriverKilled, _kill_after, _run, _steps


def _records(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def _learning_figures(record):
    """Everything but wall-clock times and the async bookkeeping."""
    return {k: v for k, v in record.items()
            if k not in ("time", "sync_seconds") and not k.startswith(("time/", "async/"))}


def test_max_staleness_0_is_the_synchronous_loop(ray_local, tiny_model_dir, tmp_path):
    runs = {}
    for name, k in (("sync", None), ("async0", 0)):
        cfg = _cfg(tiny_model_dir, tmp_path / name, steps=2)
        cfg.eval.samples = 0
        cfg.async_rollout.max_staleness = k
        _run(cfg)
        runs[name] = _records(tmp_path / name)
    sync, async0 = runs["sync"], runs["async0"]
    assert len(sync) == len(async0) == 4  # before, steps 1-2, final
    for a, b in zip(sync, async0):
        assert _learning_figures(a) == _learning_figures(b), a["step"]
    for rec in async0[1:3]:  # the producer path ran, fully on-policy
        assert rec["async/staleness_max"] == 0 and rec["async/sample_version_min"] == rec["async/policy_version"]
        assert "async/staleness_max" not in sync[rec["step"]]


def _async_cfg(model, run_dir, k):
    cfg = _cfg(model, run_dir, steps=4)
    cfg.eval.samples = 0
    cfg.async_rollout.max_staleness = k
    cfg.algorithm.tis_cap, cfg.async_rollout.mask_cap = 2.0, 20.0
    return cfg


@pytest.fixture(scope="module")
def async_run(ray_local, tiny_model_dir, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("async") / "full"
    _run(_async_cfg(tiny_model_dir, run_dir, k=1))
    return run_dir


def test_no_sample_older_than_the_bound_is_trained_on(async_run):
    steps = _steps(async_run)
    assert sorted(steps) == [1, 2, 3, 4]
    for s, rec in steps.items():
        assert rec["async/policy_version"] == s - 1
        # the schedule: step s trains on samples of version max(0, s - 2), so at most 1 behind
        assert rec["async/sample_version_min"] == rec["async/sample_version_max"] == max(0, s - 2)
        assert rec["async/policy_version"] - rec["async/sample_version_min"] <= 1
        assert rec["async/staleness_max"] == min(1, s - 1)
        assert 0 <= rec["async/masked_token_fraction"] <= 1
        assert rec["time/trainer_wait"] >= 0 and rec["time/generator_wait"] >= 0
        assert rec["sync_max_logprob_diff"] < 1e-3  # parity against the version the engine holds
        assert rec["tokens"] > 0 and rec["grad_norm"] > 0
    # a stale rollout: the generator's log-probs are an older policy's than the trainer's recompute
    assert steps[3]["generator_trainer_logprob_diff"] > 1e-3


def test_async_run_resumes_exactly(async_run, tiny_model_dir, tmp_path):
    run_dir = tmp_path / "resumed"
    with pytest.raises(_DriverKilled):
        _run(_async_cfg(tiny_model_dir, run_dir, k=1), hooks=[_kill_after(3)])  # dies after the step-2 checkpoint
    saved = torch.load(run_dir / "checkpoints" / "step_2" / "components.pt", weights_only=False)["async_rollouts"]
    assert sorted(saved["ready"]) == [3] and saved["ready"][3].version == 1 and saved["next_step"] == 4
    _run(_async_cfg(tiny_model_dir, run_dir, k=1))  # resume=auto: trains on the saved rollout 3, generates 4
    full, resumed = _steps(async_run), _steps(run_dir)
    for step in (3, 4):
        for key in KEYS + ("kl", "async/sample_version_min", "generator_trainer_logprob_diff"):
            assert resumed[step][key] == pytest.approx(full[step][key], rel=1e-4, abs=1e-6), (step, key)
