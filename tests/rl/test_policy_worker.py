"""The policy worker without Ray: chunked log-probs, zero-weight shard padding, and a
2-rank FSDP2 group (gloo) that must reproduce the single-rank step exactly, sample for
sample, while each rank holds only its shard of the policy and the reference."""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from core.checkpoint import load_hf
from rl.batch import RolloutBatch, model_inputs, shard_batch, unshard
from rl.logprobs import response_logprobs
from rl.preference.batch import PairBatch, shard_pairs

HERE = Path(__file__).parent


def _unchunked(model, x):
    """The path this replaces: full [B, L, V] fp32 logits, log_softmax, gather."""
    logits = model(input_ids=x.input_ids, attention_mask=x.attention_mask).logits.float()
    resp = logits.gather(1, x.response_positions()[:, :, None].expand(-1, -1, logits.shape[-1]))
    logp_all = F.log_softmax(resp, dim=-1)
    return logp_all.gather(-1, x.targets[:, :, None])[:, :, 0], -(logp_all.exp() * logp_all).sum(-1)


def test_chunked_logprobs_entropy_and_gradients_equal_the_full_logits_path(tiny_model_dir):
    model, _ = load_hf(tiny_model_dir)
    g = torch.Generator().manual_seed(1)
    seqs = [torch.randint(3, model.config.vocab_size, (n,), generator=g).tolist() for n in (9, 14, 5)]
    x = model_inputs(seqs, [4, 6, 2], pad_id=0)
    want_logp, want_ent = _unchunked(model, x)
    (want_logp * x.response_mask).sum().backward()
    want_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    for chunk in (1, 5, 10_000):  # one token per chunk, chunks across rows, one chunk
        logp, ent = response_logprobs(model, x, chunk_tokens=chunk)
        m = x.response_mask
        torch.testing.assert_close(logp * m, want_logp * m, rtol=0, atol=1e-5)
        torch.testing.assert_close(ent * m, want_ent * m, rtol=0, atol=1e-5)
        assert not ent.requires_grad
        (logp * m).sum().backward()
        for p, want in zip(model.parameters(), want_grads):
            torch.testing.assert_close(p.grad, want, rtol=1e-4, atol=1e-5)
        model.zero_grad()
    assert type(model.lm_head).__name__ == "Linear"  # the head is put back


def test_shards_pad_with_zero_weight_rows_and_unshard_restores_order():
    b = RolloutBatch([[1, 2, 3], [1, 4], [1, 5, 6, 7], [1, 8], [1, 9, 9]], [1] * 5, [1.0, 2, 3, 4, 5],
                     [[1, 1], [1], [1, 0, 1], [1], [1, 1]])
    shards = shard_batch(b, 3)
    assert [len(s) for s in shards] == [2, 2, 2]
    assert sum(sum(map(sum, s.loss_masks)) for s in shards) == sum(map(sum, b.loss_masks))  # counted tokens equal
    assert shards[2].loss_masks[-1] == [0, 0]  # the one padding row: a copy of the last sample, weight 0
    assert unshard([s.sequences for s in shards], len(b)) == b.sequences
    pairs = PairBatch([[1]] * 3, [[2]] * 3, [[3]] * 3, [1.0] * 3, [0.0] * 3)
    ps = shard_pairs(pairs, 2)
    assert [p.weights for p in ps] == [[1.0, 1.0], [1.0, 0.0]]
    assert sum(float(p.pair_weights().sum()) for p in ps) == len(pairs)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_ranks(model_dir: str, out: Path, world: int) -> list[dict]:
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(HERE.parents[1]), "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, str(HERE / "policy_ranks.py"), model_dir, str(out), str(r), str(world),
                               str(port)], env=env) for r in range(world)]
    try:
        for p in procs:
            assert p.wait(timeout=300) == 0
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return [json.loads(Path(f"{out}.rank{r}.json").read_text()) for r in range(world)]


def test_two_fsdp2_ranks_match_one_rank_hold_half_the_weights_and_resume_exactly(tiny_model_dir, tmp_path):
    one = _run_ranks(tiny_model_dir, tmp_path / "one", 1)[0]
    two = _run_ranks(tiny_model_dir, tmp_path / "two", 2)
    assert [r["rows"] for r in two] == [3, 3]  # 5 samples + 1 zero-weight padding row
    loss_tokens = 7 + 4 + 9 + 11  # sample 3 is masked out
    for step in range(2):
        assert one["steps"][step]["tokens"] == loss_tokens
        assert sum(r["steps"][step]["tokens"] for r in two) == loss_tokens  # nothing dropped, nothing twice
        assert sum(r["steps"][step]["loss"] for r in two) == pytest.approx(one["steps"][step]["loss"], rel=1e-4)
        assert two[0]["steps"][step]["grad_norm"] == pytest.approx(one["steps"][step]["grad_norm"], rel=1e-4)
    assert one["steps"][1]["kl"] > 0  # the second step has moved away from the reference
    kl_two = sum(r["steps"][1]["kl"] * r["steps"][1]["tokens"] for r in two) / loss_tokens
    assert kl_two == pytest.approx(one["steps"][1]["kl"], rel=1e-3)
    for key in ("ref", "after"):
        merged = unshard([r[key] for r in two], 5)
        for a, b in zip(merged, one[key]):
            assert a == pytest.approx(b, abs=2e-5), key
    for r in two + [one]:
        assert r["snapshot"] == r["after"]  # a snapshot reference is the policy, copied shard by shard
        for key in ("loss", "grad_norm", "kl", "tokens"):  # resume (sharded DCP state on 2 ranks) is exact
            assert r["resumed_third"][key] == pytest.approx(r["third"][key], rel=1e-6, abs=1e-9), key
    assert (tmp_path / "two.state" / "train_state").is_dir()  # each rank wrote its own shards
    exported = [load_hf(tmp_path / f"{name}.hf")[0].state_dict() for name in ("one", "two")]
    assert len(list((tmp_path / "two.hf").glob("model-*-of-*.safetensors"))) > 1
    assert set(exported[0]) == set(exported[1])
    for key, value in exported[0].items():  # the 2-rank export, gathered shard by shard, is the same policy
        torch.testing.assert_close(exported[1][key], value, rtol=1e-4, atol=1e-6)
    assert one["local_numel"] == one["numel"]
    for r in two:  # each rank allocates about half of the policy (sharded load: never the full model)
        assert r["local_numel"] <= 0.55 * r["numel"]


def test_chunked_head_swaps_inside_a_peft_wrapper(tiny_model_dir):
    from sft.adapters import apply_adapter
    from sft.config import AdapterConfig

    model, _ = load_hf(tiny_model_dir)
    lora = apply_adapter(model, AdapterConfig(method="lora", rank=4, alpha=8.0))
    x = model_inputs([[5, 6, 7, 8, 9], [5, 6, 7]], [2, 1], pad_id=0)
    logp, _ = response_logprobs(lora, x, chunk_tokens=3)
    assert logp.shape == x.targets.shape
    torch.testing.assert_close(logp * x.response_mask, _unchunked(lora, x)[0] * x.response_mask, rtol=0, atol=1e-5)
