"""Interrupted + resumed training reproduces the uninterrupted losses and weights exactly."""
import torch

from core.checkpoint import load_hf
from core.data.synth import math_rows
from core.training import TrainConfig, build_backend
from sft.batching import BatchPlan
from sft.checkpoint import latest_checkpoint, load_checkpoint
from sft.packing import encode_rows, pack_documents
from sft.trainer import fit

STEPS = 6


def _setup(tiny_dir):
    model, tok = load_hf(tiny_dir)
    rows = pack_documents(encode_rows(tok, math_rows(30, seed=2)), 256, tok.pad_token_id)
    cfg = TrainConfig(lr=2e-3, warmup_steps=2, total_steps=STEPS, weight_decay=0.1)
    # 5 rows per step over 13 rows: the resumed run crosses an epoch boundary (reshuffle)
    return build_backend(cfg, model), rows, BatchPlan(len(rows), rows_per_micro=2, grad_accum=2, seed=7)


def test_resume_reproduces_uninterrupted_run(tiny_dir, tmp_path):
    torch.manual_seed(0)
    backend, rows, plan = _setup(tiny_dir)
    full = [s.loss for s in fit(backend, rows, plan, STEPS)]
    final = backend.full_state_dict()

    torch.manual_seed(0)
    backend, rows, plan = _setup(tiny_dir)
    first = fit(backend, rows, plan, STEPS, checkpoint_dir=tmp_path, checkpoint_every=3, stop_after=3)
    torch.rand(5)  # the interrupted process's RNG moves on; resume must restore it

    backend, rows, plan = _setup(tiny_dir)  # a fresh process: base weights, new optimizer
    start = load_checkpoint(latest_checkpoint(tmp_path), backend)
    assert start == 3
    second = fit(backend, rows, plan, STEPS, start_step=start)
    assert [s.loss for s in first + second] == full
    resumed = backend.full_state_dict()
    assert all(torch.equal(final[k], resumed[k]) for k in final)
    assert full[-1] < full[0]
