import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from sft.adapters import apply_adapter, merge_adapter, num_trainable
from sft.config import AdapterConfig
from sft.tied_lora import PRESETS, TiedLoRA, apply_tied_lora, formula_params, merge_tied_lora

L, D, R = 3, 64, 4


def _mha_model():
    """num_kv_heads == num_heads, so the fused QKV output is 3d as in the paper."""
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=50, hidden_size=D, intermediate_size=96, num_hidden_layers=L,
                      num_attention_heads=2, num_key_value_heads=2)
    return LlamaForCausalLM(cfg).eval()


@pytest.mark.parametrize("preset,expected", [
    ("lora", 4 * L * D * R), ("tl5", 4 * D * R), ("tl6", 4 * D * R + L * (R + 3 * D)), ("vera", L * (R + 3 * D)),
])
def test_parameter_counts_match_paper_formulas(preset, expected):
    model = _mha_model()
    adapter = apply_tied_lora(model, R, preset)
    assert adapter.num_trainable() == expected == formula_params(preset, L, D, 3 * D, R)
    assert num_trainable(model) == expected  # the base model is frozen


def test_gqa_counts_use_fused_output_size(tiny):
    model, _ = tiny  # 4 heads, 2 kv heads: D_out = 128 + 64 + 64
    adapter = apply_tied_lora(model, 8, "tl6")
    assert adapter.num_trainable() == formula_params("tl6", 6, 128, 256, 8) == 8 * (128 + 256) + 6 * (8 + 256)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_zero_update_at_init_and_merge_equals_adapter_forward(preset):
    model = _mha_model()
    ids = torch.randint(0, 50, (2, 10))
    with torch.no_grad():
        base = model(input_ids=ids).logits
    adapter = apply_tied_lora(model, R, preset)
    with torch.no_grad():
        assert torch.equal(model(input_ids=ids).logits, base)
        for p in (adapter.B, adapter.u, adapter.v):
            p.normal_(0, 0.2)
        adapted = model(input_ids=ids).logits
        assert (adapted - base).abs().max() > 1e-3
        merged = merge_tied_lora(model)
        assert not hasattr(merged, "tied_lora")
        assert type(merged.model.layers[0].self_attn.q_proj) is torch.nn.Linear
        assert torch.allclose(merged(input_ids=ids).logits, adapted, atol=1e-5)


def test_tied_parameters_are_shared_and_only_adapter_trains():
    model = _mha_model()
    adapter = apply_tied_lora(model, R, "tl6")
    qs = [layer.self_attn.q_proj for layer in model.model.layers]
    assert all(q.adapter is adapter for q in qs)
    # the adapter appears once in the state dict, under tied_lora.*
    assert sorted(k for k in model.state_dict() if "tied_lora" in k) == [f"tied_lora.{n}" for n in "ABuv"]
    with torch.no_grad():
        adapter.B.normal_(0, 0.1)
    model(input_ids=torch.randint(0, 50, (1, 6))).logits.sum().backward()
    assert all(p.grad is not None for p in adapter.parameters())
    assert all(p.grad is None for n, p in model.named_parameters() if "tied_lora" not in n)


def test_unknown_preset_is_rejected():
    with pytest.raises(ValueError, match="preset"):
        TiedLoRA(2, 8, 24, 2, "tl9")


def test_peft_lora_merge_matches(tiny):
    model, _ = tiny
    ids = torch.randint(0, 500, (1, 8))
    wrapped = apply_adapter(model, AdapterConfig(method="lora", rank=4))
    assert 0 < num_trainable(wrapped) < 100_000
    with torch.no_grad():
        for n, p in wrapped.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.1)
        adapted = wrapped(input_ids=ids).logits
        merged = merge_adapter(wrapped, AdapterConfig(method="lora"))
        assert torch.allclose(merged(input_ids=ids).logits, adapted, atol=1e-5)
