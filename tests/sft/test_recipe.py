"""The recipe end to end at toy size (HF engine for speed; the default uses vLLM)."""
import json
import subprocess
import sys
from pathlib import Path

from core.checkpoint import load_hf
from core.config import load_config
from sft.config import SFTConfig
from sft.default_policy import TINY_POLICY, ensure_tiny_sft_policy
from sft.pipeline import run_sft

ROOT = Path(__file__).resolve().parents[2]


def test_show_config_lists_every_setting():
    proc = subprocess.run([sys.executable, str(ROOT / "recipes" / "nano_sft.py"), "--show-config"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    for key in ("pack_len:", "on_fraction:", "tied_preset:", "zero_stage:", "warmup_ratio:", "publish_to:"):
        assert key in proc.stdout
    bad = subprocess.run([sys.executable, str(ROOT / "recipes" / "nano_sft.py"), "train.lrr=1"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "lrr" in bad.stderr


def test_tiny_run_writes_checkpoint_summary_and_publishes(tiny_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("REFORGE_HOME", str(tmp_path / "home"))
    cfg = load_config(SFTConfig, None, [
        f"model.base={tiny_dir}", "data.synthetic_math=40", "data.synthetic_code=8", "epochs=0",
        "train.total_steps=4", "packing.rows_per_micro=2", "eval.math_per_mode=8", "eval.code_per_mode=4",
        "eval.engine=hf", "eval.max_tokens=24", "checkpoint_every=3", "adapter.method=tied_lora",
        f"run_dir={tmp_path / 'run'}", "publish_to=policy", "logging.tensorboard=false"])
    summary = run_sft(cfg)
    on_disk = json.loads((tmp_path / "run" / "summary.json").read_text())
    for key in ("accuracy_on", "accuracy_off", "checkpoint", "seconds_total", "accuracy_on_math_l4"):
        assert key in on_disk
    assert 0.0 <= on_disk["accuracy_on"] <= 1.0
    assert summary["published"] == str(tmp_path / "home" / "policy")
    model, _ = load_hf(on_disk["checkpoint"])  # merged: a plain Llama, no adapter weights
    assert not any("tied_lora" in k for k in model.state_dict())
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["step"] for x in lines] == [1, 2, 3, 4]
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()) == ["step_3", "step_4"]


def test_default_policy_returns_the_published_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setenv("REFORGE_HOME", str(tmp_path))
    (tmp_path / TINY_POLICY).mkdir()
    (tmp_path / TINY_POLICY / "config.json").write_text("{}")
    assert ensure_tiny_sft_policy() == tmp_path / TINY_POLICY
