import json

import pytest
import torch

from nas.decilm.configuration_decilm import DeciLMConfig, ffn_mult_to_intermediate_size, intermediate_size_to_ffn_mult
from nas.space import GQA, NO_OP, SWIGLU, AttentionVariant, BlockVariant, FFNVariant


def test_width_rule_matches_released_configs():
    assert ffn_mult_to_intermediate_size(5.25, 8192) == 28672
    assert ffn_mult_to_intermediate_size(4.875, 16384) == 53248
    assert ffn_mult_to_intermediate_size(1.0, 8192) == 5632
    assert intermediate_size_to_ffn_mult(28672, 8192) == 5.25
    with pytest.raises(ValueError, match="not representable"):
        intermediate_size_to_ffn_mult(300, 128)


def test_config_round_trip_and_validation():
    blocks = [{"attention": {"n_heads_in_group": 2}, "ffn": {"ffn_mult": 6.0}},
              {"attention": {"no_op": True}, "ffn": {"no_op": True}}]
    cfg = DeciLMConfig(vocab_size=64, hidden_size=128, num_hidden_layers=2, num_attention_heads=4, block_configs=blocks)
    assert cfg.block_configs[1].attention.no_op and cfg.block_configs[0].attention.n_heads_in_group == 2
    d = cfg.to_dict()
    assert d["model_type"] == "nemotron-nas" and d["num_key_value_heads"] is None and d["intermediate_size"] is None
    assert d["block_configs"][0]["ffn"]["ffn_mult"] == 6.0 and d["block_configs"][1]["ffn"]["no_op"] is True
    assert DeciLMConfig(**d).to_dict() == d
    assert (cfg.num_kv_heads(0), cfg.num_kv_heads(1), cfg.ffn_intermediate_size(0)) == (2, 0, 512)
    with pytest.raises(ValueError, match="does not divide"):
        DeciLMConfig(hidden_size=128, num_hidden_layers=1, num_attention_heads=4,
                     block_configs=[{"attention": {"n_heads_in_group": 3}, "ffn": {"ffn_mult": 6.0}}])


REMOTE_LOAD = """
import sys, torch
from transformers import AutoModelForCausalLM
m = AutoModelForCausalLM.from_pretrained(sys.argv[1], trust_remote_code=True, local_files_only=True)
ids, mask = torch.load(sys.argv[2])
with torch.no_grad():
    torch.save((type(m).__module__, m(input_ids=ids, attention_mask=mask).logits), sys.argv[3])
"""


@torch.no_grad()
def test_llama_conversion_is_identity_and_saved_child_loads_with_remote_code(llama_dir, parent_dir, batch, tmp_path):
    """The saved directory alone is enough: a fresh interpreter outside the repo loads it
    through auto_map and the copied modeling file, with the Llama parent's exact logits."""
    import subprocess
    import sys

    from core.checkpoint import load_hf

    llama, _ = load_hf(llama_dir)
    torch.save((batch.input_ids, batch.attention_mask), tmp_path / "in.pt")
    subprocess.run([sys.executable, "-c", REMOTE_LOAD, parent_dir, str(tmp_path / "in.pt"), str(tmp_path / "out.pt")],
                   cwd=tmp_path, check=True, capture_output=True,
                   env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "HF_HUB_OFFLINE": "1"})
    module, remote_logits = torch.load(tmp_path / "out.pt")
    assert module.startswith("transformers_modules")  # the copied file, not reforge's
    a = llama(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    keep = batch.attention_mask.bool()
    assert torch.equal(a[keep], remote_logits[keep])
    cfg = json.loads(open(f"{parent_dir}/config.json").read())
    assert cfg["auto_map"]["AutoConfig"] == "configuration_decilm.DeciLMConfig"
    assert cfg["architectures"] == ["DeciLMForCausalLM"]


def test_auto_classes_resolve_in_process_without_remote_code(parent_dir):
    from transformers import AutoConfig, AutoModelForCausalLM

    import nas.format  # noqa: F401  registers nemotron-nas

    assert type(AutoConfig.from_pretrained(parent_dir)).__module__ == "nas.decilm.configuration_decilm"
    model = AutoModelForCausalLM.from_pretrained(parent_dir, local_files_only=True)
    assert type(model).__module__ == "nas.decilm.modeling_decilm"


@torch.no_grad()
def test_kv_cache_decoding_matches_full_forward(parent, batch):
    ids = batch.input_ids[:1, :20]
    full = parent(input_ids=ids).logits
    out = parent(input_ids=ids[:, :12], use_cache=True)
    step = parent(input_ids=ids[:, 12:13], past_key_values=out.past_key_values, use_cache=True)
    assert torch.allclose(step.logits[:, -1], full[:, 12], atol=1e-5)


def hetero_variants():
    return [BlockVariant(AttentionVariant(GQA, 2), FFNVariant(SWIGLU, 512)),
            BlockVariant(AttentionVariant(GQA, 1), FFNVariant(SWIGLU, 256)),
            BlockVariant(AttentionVariant(NO_OP), FFNVariant(SWIGLU, 256)),
            BlockVariant(AttentionVariant(GQA, 2), FFNVariant(NO_OP))]


def test_heterogeneous_child_same_greedy_logprobs_in_vllm_and_hf(parent, tok, tmp_path):
    """vLLM's own DeciLM implementation and ours (via remote code) agree on a child with
    fewer KV heads, no-op attention, no-op FFN and narrower FFNs."""
    from transformers import AutoModelForCausalLM

    from core.engines.base import SamplingSettings
    from core.engines.factory import EngineSettings, make_engine
    from nas.assemble import SubblockStore, assemble_child
    from nas.data import math_prompts
    from nas.format import save_decilm

    child = assemble_child(SubblockStore(parent), hetero_variants())
    child_dir = save_decilm(child, tok, tmp_path / "child")
    prompts, _ = math_prompts(tok, 3)
    engine = make_engine(str(child_dir), EngineSettings(engine="vllm", max_model_len=256))
    try:
        comps = engine.generate(prompts, SamplingSettings(temperature=0.0, max_tokens=12))
    finally:
        engine.shutdown()
    hf = AutoModelForCausalLM.from_pretrained(str(child_dir), trust_remote_code=True, local_files_only=True).eval()
    for c in comps:
        seq = torch.tensor([c.prompt_ids + c.token_ids])
        with torch.no_grad():
            logp = torch.log_softmax(hf(input_ids=seq).logits[0].float(), -1)
        n = len(c.prompt_ids)
        ref = [float(logp[n - 1 + k, t]) for k, t in enumerate(c.token_ids)]
        assert max(abs(a - b) for a, b in zip(ref, c.logprobs)) < 1e-3
        assert [int(logp[n - 1 + k].argmax()) for k in range(len(c.token_ids))] == c.token_ids
