"""Padding-free (packed) micro-batches give the padded path's log-probs, losses and gradients.

Random-weight tiny models: a transformers Llama (packed sequences found by transformers from
restarting position ids; rows as sdpa/eager take them and one row as flash attention's varlen
path takes it), the repository's DeciLM (nas/decilm, an explicit 4D block mask), and the
policy worker end to end (GRPO train step, preference log-probs and DPO steps, packing on vs off).
"""
from __future__ import annotations

import copy
import random

import pytest
import torch

from rl.batch import RolloutBatch, micro_batches, model_inputs, pack_rows
from rl.logprobs import check_packing, packing_layout, response_logprobs
from rl.losses import ClippedPolicyLoss, PolicyLossConfig, policy_loss

TOL = 1e-5


def _llama(attn: str = "sdpa"):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=300, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                      attn_implementation=attn)
    return LlamaForCausalLM(cfg).float()


def _decilm():
    from nas.decilm.configuration_decilm import DeciLMConfig
    from nas.decilm.modeling_decilm import DeciLMForCausalLM

    torch.manual_seed(0)
    blocks = [{"attention": {"n_heads_in_group": 2}, "ffn": {"ffn_mult": 2.0}},
              {"attention": {"replace_with_linear": True}, "ffn": {"ffn_mult": 1.5}}]
    return DeciLMForCausalLM(DeciLMConfig(vocab_size=300, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                          max_position_embeddings=256, block_configs=blocks, pad_token_id=0)).float()


def _sequences(n: int = 9, seed: int = 1) -> tuple[list[list[int]], list[int]]:
    """A realistic spread: prompts of 4-20 tokens, responses of 1-60 tokens."""
    rng = random.Random(seed)
    plens = [rng.randint(4, 20) for _ in range(n)]
    seqs = [[rng.randint(3, 299) for _ in range(p + rng.randint(1, 60))] for p in plens]
    return seqs, plens


def _masked_max(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> float:
    return float(((a.detach() - b.detach()).abs() * mask).max())


def test_pack_rows_places_every_sequence_once_within_capacity():
    rng = random.Random(3)
    lengths = [rng.randint(1, 50) for _ in range(40)]
    rows = pack_rows(lengths, max(lengths))
    assert sorted(i for r in rows for i in r) == list(range(40))
    assert all(sum(lengths[i] for i in r) <= max(lengths) for r in rows)
    assert len(rows) < 40  # short sequences share rows
    with pytest.raises(ValueError, match="capacity"):
        pack_rows([5, 9], 8)


@pytest.mark.parametrize("packing", ["rows", "one_row"])
def test_packed_logprobs_equal_padded_on_llama(packing):
    model = _llama().eval()
    seqs, plens = _sequences()
    padded = model_inputs(seqs, plens, pad_id=0)
    packed = model_inputs(seqs, plens, pad_id=0, packing=packing)
    assert packed.input_ids.numel() < padded.input_ids.numel()  # no FLOPs on padding
    assert packed.attention_mask is None and packed.position_ids is not None
    with torch.no_grad():
        a, ea = response_logprobs(model, padded, chunk_tokens=7)
        b, eb = response_logprobs(model, packed, chunk_tokens=7)
    assert _masked_max(a, b, padded.response_mask) < TOL
    assert _masked_max(ea, eb, padded.response_mask) < TOL


def test_packed_logprobs_equal_padded_on_eager_attention():
    model = _llama("eager").eval()
    seqs, plens = _sequences(seed=4)
    with torch.no_grad():
        a, _ = response_logprobs(model, model_inputs(seqs, plens, 0))
        b, _ = response_logprobs(model, model_inputs(seqs, plens, 0, "rows"))
    assert _masked_max(a, b, model_inputs(seqs, plens, 0).response_mask) < TOL


def test_packed_logprobs_equal_padded_on_decilm_with_a_block_mask():
    """DeciLM's modelling code is the repository's own: it gets the 4D block-diagonal mask."""
    model = _decilm().eval()
    assert check_packing(model) == "rows"
    seqs, plens = _sequences(seed=2)
    padded = model_inputs(seqs, plens, 0)
    with torch.no_grad():
        a, _ = response_logprobs(model, padded)
        b, _ = response_logprobs(model, model_inputs(seqs, plens, 0, "rows"))
    assert _masked_max(a, b, padded.response_mask) < TOL


def test_packed_grpo_loss_and_gradients_equal_padded():
    model = _llama()
    seqs, plens = _sequences(seed=5)
    rng = random.Random(0)
    adv = torch.tensor([rng.uniform(-1, 1) for _ in seqs])
    cfg = PolicyLossConfig(kl_coef=0.1)
    grads, losses = [], []
    for packing in ("", "rows"):
        model.zero_grad()
        x = model_inputs(seqs, plens, 0, packing)
        logp, _ = response_logprobs(model, x, chunk_tokens=16)
        old = logp.detach() + 0.05 * torch.sin(torch.arange(logp.numel(), dtype=torch.float32)).reshape(logp.shape)
        loss, _ = policy_loss(logp, old, adv, x.response_mask, cfg, ref_logp=old - 0.1)
        loss.backward()
        losses.append(float(loss))
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    assert abs(losses[0] - losses[1]) < TOL
    assert float((grads[0] - grads[1]).abs().max()) < TOL * max(1.0, float(grads[0].abs().max()))


def test_mamba_models_refuse_packing():
    from transformers import NemotronHConfig, NemotronHForCausalLM

    cfg = NemotronHConfig(vocab_size=128, hidden_size=64, num_hidden_layers=2, hybrid_override_pattern="M*",
                          num_attention_heads=2, num_key_value_heads=1, head_dim=32, mamba_num_heads=4,
                          mamba_head_dim=16, n_groups=1, ssm_state_size=16, intermediate_size=64)
    model = NemotronHForCausalLM(cfg)
    with pytest.raises(ValueError, match="Mamba"):
        packing_layout(model, "on")
    assert packing_layout(model, "auto") == ""  # auto: padded where packing cannot be exact
    assert packing_layout(_llama(), "auto") == "rows" and packing_layout(_llama(), "off") == ""


def test_packed_micro_batches_cap_real_tokens():
    lengths = [2, 2, 2, 20]
    assert micro_batches(lengths, 8, max_tokens=30) == [[0, 1, 2], [3]]  # padded: 4 x 20 > 30
    assert micro_batches(lengths, 8, max_tokens=30, packed=True) == [[0, 1, 2, 3]]  # 26 real tokens


def _rollout(tok_vocab: int, seed: int = 0) -> RolloutBatch:
    seqs, plens = _sequences(n=12, seed=seed)
    seqs = [[t % tok_vocab for t in s] for s in seqs]
    rng = random.Random(seed)
    return RolloutBatch(seqs, plens, advantages=[rng.uniform(-1, 1) for _ in seqs],
                        loss_masks=[[1] * (len(s) - p) for s, p in zip(seqs, plens)])


def test_policy_worker_packed_step_equals_padded(tiny_model_dir):
    """GRPO: same old log-probs, same step statistics and the same weights after the step;
    preference: same summed log-probs of a pair batch."""
    from core.training import TrainConfig
    from rl.policy_worker import PolicyWorker
    from rl.preference.batch import PairBatch

    workers = {p: PolicyWorker(tiny_model_dir, TrainConfig(lr=1e-3, schedule="constant", warmup_steps=0),
                               keep_reference=False, micro_batch_size=5, packing="on" if p else "off")
               for p in (False, True)}
    vocab = workers[False].tokenizer.vocab_size
    batch = _rollout(vocab)
    old = {p: w.logprobs(batch) for p, w in workers.items()}
    assert max(abs(a - b) for ra, rb in zip(old[False], old[True]) for a, b in zip(ra, rb)) < TOL
    batch.old_logprobs = old[False]
    loss = ClippedPolicyLoss.for_batch(PolicyLossConfig(), batch.loss_masks)
    stats = {p: w.train(copy.deepcopy(batch), loss) for p, w in workers.items()}
    for key in ("loss", "tokens", "entropy", "grad_norm"):
        assert abs(stats[False][key] - stats[True][key]) < TOL * max(1.0, abs(stats[False][key])), key
    after = {p: torch.cat([t.detach().flatten() for t in w.backend.model.parameters()]) for p, w in workers.items()}
    assert float((after[False] - after[True]).abs().max()) < TOL

    seqs, plens = _sequences(n=6, seed=7)
    pairs = PairBatch([s[:p] for s, p in zip(seqs, plens)], [[t % vocab for t in s[p:]] for s, p in zip(seqs, plens)],
                      [[(t * 7) % vocab for t in s[p:][:5]] for s, p in zip(seqs, plens)], [1.0] * 6, [0.0] * 6)
    pairs.prompts = [[t % vocab for t in x] for x in pairs.prompts]
    chosen = {p: w.logprobs(pairs) for p, w in workers.items()}
    for side in (0, 1):
        assert max(abs(a - b) for a, b in zip(chosen[False][side], chosen[True][side])) < 1e-4  # sums of ~60 tokens


@pytest.mark.parametrize("dedup", [False, True])
def test_packed_preference_step_equals_padded(tiny_model_dir, dedup):
    """A DPO step (per-pair and each-distinct-sequence-once paths) packed vs padded: same
    statistics and the same weights after the step."""
    from core.training import TrainConfig
    from rl.policy_worker import PolicyWorker
    from rl.preference.batch import PairBatch
    from rl.preference.losses import PreferenceLossConfig
    from rl.preference.worker import preference_train_step

    rng = random.Random(11)
    prompts = [[rng.randint(5, 200) for _ in range(rng.randint(3, 12))] for _ in range(4)]
    samples = [[[rng.randint(5, 200) for _ in range(rng.randint(2, 30))] for _ in range(3)] for _ in prompts]
    pairs = [(i, a, b) for i in range(4) for a in range(3) for b in range(3) if a < b]  # shared responses
    batch = PairBatch([prompts[i] for i, _, _ in pairs], [samples[i][a] for i, a, _ in pairs],
                      [samples[i][b] for i, _, b in pairs], [1.0] * len(pairs), [0.0] * len(pairs))
    loss = PreferenceLossConfig("dpo", beta=0.5, sft_weight=0.1)
    stats, weights = {}, {}
    for packing in ("off", "on"):
        worker = PolicyWorker(tiny_model_dir, TrainConfig(lr=1e-3, schedule="constant", warmup_steps=0),
                              keep_reference=False, micro_batch_size=4, packing=packing)
        worker.snapshot_reference("preference")
        ref = worker.logprobs(batch, "preference")
        batch.ref_chosen, batch.ref_rejected = [[x - 0.1 for x in side] for side in ref]
        stats[packing] = preference_train_step(worker.backend, batch, loss, worker.pad_id, 4, float(len(batch)),
                                               dedup=dedup, packing=worker.packing)
        weights[packing] = torch.cat([p.detach().flatten() for p in worker.backend.model.parameters()])
    for key in ("loss", "preference_loss", "sft_loss", "margin", "grad_norm"):
        assert abs(stats["off"][key] - stats["on"][key]) < 1e-4 * max(1.0, abs(stats["off"][key])), key
    assert float((weights["off"] - weights["on"]).abs().max()) < TOL
