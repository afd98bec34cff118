"""Weight sync trainer -> vLLM-CPU generator in Ray actors, and its parity check."""
import pytest
import torch

from core.chat import with_system_prompt
from core.engines.base import SamplingSettings
from core.tokenization import encode_prompt
from core.training import TrainConfig
from rl.actors import GeneratorGroup, PlacementConfig, PolicyGroup
from rl.batch import RolloutBatch
from rl.generator import GeneratorConfig
from rl.losses import ClippedPolicyLoss, PolicyLossConfig
from rl.weight_sync import SyncParityError, parity_diff, sync_weights


@pytest.fixture(scope="module")
def groups(ray_local, tiny_model_dir):
    placement = PlacementConfig(policy_num_cpus=1, policy_threads=1)
    policy = PolicyGroup(tiny_model_dir, TrainConfig(lr=1e-2, schedule="constant", warmup_steps=0), placement,
                         keep_reference=True, micro_batch_size=8)
    gens = GeneratorGroup(tiny_model_dir, GeneratorConfig(engine="vllm", max_model_len=256), placement, seed=0)
    yield policy, gens
    gens.shutdown()
    policy.shutdown()


def _rollout(gens, tok) -> RolloutBatch:
    prompts = [encode_prompt(tok, with_system_prompt([{"role": "user", "content": q}], "on"))
               for q in ("Ana has 3 pens.", "Ben has 7 cards. How many?")]
    comps = gens.generate(prompts, SamplingSettings(n=2, temperature=1.0, max_tokens=12, seed=3))
    seqs = [c.prompt_ids + c.token_ids for c in comps]
    return RolloutBatch(seqs, [len(c.prompt_ids) for c in comps], [1.0, -1.0, 0.5, -0.5],
                        [[1] * len(c.token_ids) for c in comps], [c.logprobs for c in comps])


def test_generator_is_vllm_and_matches_trainer_before_training(groups, hf_engine):
    policy, gens = groups
    assert gens.kind == "vllm"
    batch = _rollout(gens, hf_engine.tokenizer)
    diff, _ = parity_diff(policy, gens, batch)
    assert diff < 1e-4
    # the generator's own sampling logprobs agree with the trainer too
    trainer = policy.logprobs(batch)
    assert max(abs(a - b) for ra, rb in zip(trainer, batch.generator_logprobs) for a, b in zip(ra, rb)) < 1e-3


def test_parity_holds_after_an_update_and_sync(groups, hf_engine):
    policy, gens = groups
    batch = _rollout(gens, hf_engine.tokenizer)
    batch.old_logprobs = policy.logprobs(batch)
    stale, _ = parity_diff(policy, gens, batch)  # before the first update they agree
    stats = policy.train(batch, ClippedPolicyLoss.for_batch(PolicyLossConfig(), batch.loss_masks))
    assert stats["grad_norm"] > 0
    moved, where = parity_diff(policy, gens, batch)
    assert moved > 1e-3 > stale, where  # the trainer moved; the generator has not yet
    report = sync_weights(policy, gens, bucket_mb=0.5, probe=batch, tolerance=1e-3)
    assert report.max_logprob_diff < 1e-4
    n_params = sum(v.numel() for v in ray_state(policy).values())
    assert report.buckets > 1 and report.bytes == 4 * n_params  # float32, every weight once


def test_parity_failure_stops_with_a_diagnostic(groups, hf_engine):
    policy, gens = groups
    batch = _rollout(gens, hf_engine.tokenizer)
    broken = {k: v for k, v in ray_state(policy).items()}
    name = next(k for k in broken if k.endswith("mlp.down_proj.weight"))
    broken[name] = broken[name] + 0.5 * torch.randn_like(broken[name])
    gens.update_weights([broken])
    with pytest.raises(SyncParityError, match=r"engine 0, probe \d+, token \d+"):
        sync_weights(policy, gens, bucket_mb=64, probe=batch, tolerance=1e-30)
    # a correct sync repairs it
    assert sync_weights(policy, gens, bucket_mb=64, probe=batch, tolerance=1e-3).max_logprob_diff < 1e-4


def ray_state(policy):
    import ray

    return ray.get(policy.workers[0].full_state_dict.remote())


def test_lora_policy_syncs_merged_weights_and_keeps_its_base_as_reference(groups, hf_engine, tiny_model_dir):
    from sft.config import AdapterConfig

    _, gens = groups
    adapter = AdapterConfig(method="lora", rank=4, alpha=8.0, target_modules=["q_proj", "v_proj", "down_proj"])
    lora = PolicyGroup(tiny_model_dir, TrainConfig(lr=1e-2, schedule="constant", warmup_steps=0),
                       PlacementConfig(policy_num_cpus=1, policy_threads=1), keep_reference=True,
                       micro_batch_size=8, adapter=adapter)
    try:
        state = ray_state(lora)  # merged, under the plain HF names
        assert not [k for k in state if "lora_" in k or "base_layer" in k or k.startswith("base_model.")]
        assert set(state) == set(ray_state(groups[0]))
        sync_weights(lora, gens, bucket_mb=64, probe=None, tolerance=1e-3)  # the base: a fresh adapter is a no-op
        batch = _rollout(gens, hf_engine.tokenizer)
        base = lora.logprobs(batch, model="reference")
        batch.old_logprobs = lora.logprobs(batch)
        assert batch.old_logprobs == base
        assert lora.train(batch, ClippedPolicyLoss.for_batch(PolicyLossConfig(), batch.loss_masks))["grad_norm"] > 0
        moved = lora.logprobs(batch)
        assert max(abs(a - b) for ra, rb in zip(moved, base) for a, b in zip(ra, rb)) > 1e-3
        assert lora.logprobs(batch, model="reference") == base  # the reference (adapters off) never moves
        # the generator, given the merged weights, reproduces the adapted policy
        assert sync_weights(lora, gens, bucket_mb=0.5, probe=batch, tolerance=1e-3).max_logprob_diff < 1e-4
    finally:
        lora.shutdown()
        sync_weights(groups[0], gens, bucket_mb=64, probe=None, tolerance=1e-3)


def test_the_parity_probe_fits_the_engine_window_even_when_an_episode_filled_it():
    from rl.weight_sync import probe_from

    batch = RolloutBatch([list(range(10)), list(range(4)), list(range(7))], [3, 2, 3])
    probe = probe_from(batch, 2, max_model_len=8)
    assert probe.sequences == [list(range(7)), list(range(4))]  # cut to 7 ids: room for one more
    assert probe.prompt_lens == [3, 2]
