"""Run a few SFT steps under torchrun (or alone) and write the losses; used by test_distributed.

usage: dist_worker.py MODEL_DIR OUT_JSON BACKEND ZERO_STAGE GRAD_ACCUM
"""
import json
import sys

from core.checkpoint import load_hf
from core.data.synth import code_rows, math_rows
from core.seed import seed_everything
from core.training import TrainConfig, build_backend
from sft.batching import BatchPlan
from sft.packing import encode_rows, pack_documents
from sft.trainer import fit

STEPS = 3


def run(model_dir: str, backend: str, zero_stage: int, grad_accum: int) -> list[float]:
    seed_everything(0)
    model, tok = load_hf(model_dir)
    rows = pack_documents(encode_rows(tok, math_rows(24, seed=5) + code_rows(8, seed=5)), 256,
                          tok.pad_token_id)
    cfg = TrainConfig(lr=3e-3, warmup_steps=1, total_steps=STEPS, backend=backend, zero_stage=zero_stage,
                      grad_accum=grad_accum)
    b = build_backend(cfg, model)
    plan = BatchPlan(len(rows), rows_per_micro=2, grad_accum=grad_accum, world_size=b.world_size)
    return [s.loss for s in fit(b, rows, plan, STEPS)], b


if __name__ == "__main__":
    model_dir, out, backend, stage, accum = sys.argv[1:6]
    losses, b = run(model_dir, backend, int(stage), int(accum))
    full = b.full_state_dict()
    if b.rank == 0:
        json.dump({"losses": losses, "world_size": b.world_size, "n_weights": len(full),
                   "weight_sum": float(sum(v.double().sum() for v in full.values()))}, open(out, "w"))
