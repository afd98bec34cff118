"""Generators and policy workers on different simulated nodes (ray.cluster_utils.Cluster)."""
import pytest


@pytest.fixture(scope="module")
def cluster():
    import ray
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        ray.shutdown()
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    c.add_node(num_cpus=2, resources={"rollout": 1})
    c.add_node(num_cpus=2, resources={"train": 2})
    ray.init(address=c.address)
    yield c
    ray.shutdown()
    c.shutdown()


def test_roles_land_on_distinct_nodes_and_sync_across_them(cluster, tiny_model_dir, hf_engine):
    from core.chat import with_system_prompt
    from core.engines.base import SamplingSettings
    from core.tokenization import encode_prompt
    from core.training import TrainConfig
    from rl.actors import GeneratorGroup, PlacementConfig, PolicyGroup
    from rl.batch import RolloutBatch
    from rl.generator import GeneratorConfig
    from rl.losses import ClippedPolicyLoss, PolicyLossConfig
    from rl.weight_sync import sync_weights

    placement = PlacementConfig(policy_world_size=2, policy_num_cpus=0.5, policy_threads=1,
                                policy_resources={"train": 1}, generator_resources={"rollout": 1})
    policy = PolicyGroup(tiny_model_dir, TrainConfig(lr=1e-2, schedule="constant", warmup_steps=0, backend="fsdp2"),
                         placement, keep_reference=False, micro_batch_size=4)
    gens = GeneratorGroup(tiny_model_dir, GeneratorConfig(engine="vllm", max_model_len=256, num_cpus_per_engine=1),
                          placement, seed=0)
    try:
        policy_nodes, gen_nodes = set(policy.node_ids()), set(gens.node_ids())
        assert len(policy_nodes) == 1 and len(gen_nodes) == 1 and policy_nodes != gen_nodes
        prompt = encode_prompt(hf_engine.tokenizer, with_system_prompt([{"role": "user", "content": "Kim has 4 coins."}], "on"))
        comps = gens.generate([prompt], SamplingSettings(n=4, temperature=1.0, max_tokens=10, seed=1))
        batch = RolloutBatch([c.prompt_ids + c.token_ids for c in comps], [len(prompt)] * 4, [1.0, -1.0, 1.0, -1.0],
                             [[1] * len(c.token_ids) for c in comps])
        batch.old_logprobs = policy.logprobs(batch)  # FSDP2 over gloo: two ranks, one shard each
        stats = policy.train(batch, ClippedPolicyLoss.for_batch(PolicyLossConfig(), batch.loss_masks))
        assert stats["grad_norm"] > 0 and stats["tokens"] == sum(len(c.token_ids) for c in comps)
        report = sync_weights(policy, gens, bucket_mb=1, probe=batch, tolerance=1e-3)
        assert report.max_logprob_diff < 1e-4
    finally:
        gens.shutdown()
        policy.shutdown()
