from nas.costs import attention_params, ffn_params, kv_bytes_per_token, monotone_in_size
from nas.library import BlockLibrary
from nas.search import Budget, build_library, mip_problem
from nas.space import GQA, NO_OP, SWIGLU, AttentionVariant, FFNVariant, SearchSpace, parent_variant


def test_analytic_params_match_the_modules(parent):
    layer, cfg = parent.model.layers[0], parent.config
    v = parent_variant(cfg, 0)
    attn = sum(p.numel() for p in layer.self_attn.parameters()) + layer.input_layernorm.weight.numel()
    ffn = sum(p.numel() for p in layer.mlp.parameters()) + layer.post_attention_layernorm.weight.numel()
    assert attention_params(cfg, v.attention) == attn and ffn_params(cfg, v.ffn) == ffn
    assert kv_bytes_per_token(cfg, AttentionVariant(GQA, 2), 2) == 2 * 2 * 32 * 2
    assert kv_bytes_per_token(cfg, AttentionVariant(NO_OP), 2) == 0


def test_monotone_fit_removes_timing_inversions():
    assert monotone_in_size({256: 5.0, 512: 9.0, 768: 7.0, 1024: 12.0}) == {256: 5.0, 512: 8.0, 768: 8.0, 1024: 12.0}
    assert monotone_in_size({1: 1.0, 2: 2.0}) == {1: 1.0, 2: 2.0}


def test_library_json_round_trip_in_puzzle_layout(parent, tmp_path):
    from nas.costs import SubblockCosts

    cfg = parent.config
    space = SearchSpace.from_parent(cfg)
    costs = SubblockCosts({"gqa2": 2.0, "gqa1": 1.5}, {"swiglu512": 3.0, "swiglu256": 2.0}, {"gqa2": 9.0, "gqa1": 8.0},
                          {"swiglu512": 7.0, "swiglu256": 5.0}, 4.0, 20.0, {"batch_size": 64})
    scores = [{v: {"kl_div": 0.1 * k, "lm_loss": 1.0} for k, v in enumerate(space.block_variants(i))} for i in range(4)]
    lib = build_library(cfg, space, costs, scores)
    path = lib.save(tmp_path / "block_library.json")
    raw = __import__("json").loads(path.read_text())
    key = "attention = 2 kv heads (parent * 100%)\t&&\tffn = intermediate size 512 (parent * 100%)"
    assert set(raw) == {"layer_0", "layer_1", "layer_2", "layer_3"} and key in raw["layer_0"]
    assert raw["layer_0"][key]["stats"]["runtime_ms"] == 5.0 and "kl_div" in raw["layer_0"][key]["metrics"]
    again = BlockLibrary.load(path)
    assert again.to_json() == lib.to_json() and again.info["batch_size"] == 64
    problem, keys = mip_problem(again, Budget(decode_ms=4.0 + 4 * 3.5, memory_mib=100.0), 64, 128)
    assert [c.name for c in problem.constraints] == ["decode_ms", "memory_mib"]
    assert problem.constraints[0].offset == 4.0
    assert len(keys[0]) == 2 * 3 and len(keys[1]) == 3 * 3  # layer 0 never drops attention (vLLM)
