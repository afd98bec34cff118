import torch

from nas.accuracy import score_math
from nas.assemble import SubblockStore, assemble_child
from nas.gkd import GKDConfig, distill, gkd_loss
from nas.scoring import kl_and_lm_loss, reference, score_block
from nas.space import GQA, NO_OP, AttentionVariant, BlockVariant, FFNVariant, parent_variant


def test_replace_one_block_equals_the_full_child(parent, batch):
    store = SubblockStore(parent)
    ref = reference(parent, batch)
    par = [parent_variant(parent.config, i) for i in range(4)]
    assert score_block(parent, store, ref, 1, par[1])["kl_div"] < 1e-6
    swapped = BlockVariant(AttentionVariant(GQA, 1), FFNVariant(NO_OP))
    s = score_block(parent, store, ref, 2, swapped)
    child = assemble_child(store, par[:2] + [swapped] + par[3:])
    with torch.no_grad():
        full = kl_and_lm_loss(ref.parent_logp, child(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits,
                              batch.attention_mask, batch.labels)
    assert s["kl_div"] > 1e-4
    assert abs(s["kl_div"] - full["kl_div"]) < 1e-5 and abs(s["lm_loss"] - full["lm_loss"]) < 1e-5


def test_gkd_is_zero_on_the_parent_and_recovers_a_child(parent, batch):
    with torch.no_grad():
        out = parent(input_ids=batch.input_ids, attention_mask=batch.attention_mask, output_hidden_states=True)
    loss, parts = gkd_loss(out, out, batch.attention_mask, GKDConfig())
    assert abs(float(loss)) < 1e-5
    noop = BlockVariant(AttentionVariant(NO_OP), parent_variant(parent.config, 2).ffn)
    child = assemble_child(SubblockStore(parent), [parent_variant(parent.config, i) if i != 2 else noop for i in range(4)])
    hist = distill(child, parent, batch, GKDConfig(steps=15, batch_size=4, lr=1e-3), log=lambda _: None)
    assert sum(h["loss"] for h in hist[-3:]) < sum(h["loss"] for h in hist[:3])


def test_score_math():
    assert score_math("<think>2 + 3 = 5.</think>The answer is \\boxed{5}.", "5") == 1.0
    assert score_math("<think>x</think>The answer is \\boxed{10/4}.", "5/2") == 1.0
    assert score_math("The answer is \\boxed{5}.", "5") == 0.0  # no think block closed
    assert score_math("<think>\\boxed{5}</think>no box", "5") == 0.0
    assert score_math("<think></think>\\boxed{x}", "5") == 0.0
