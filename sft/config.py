"""The SFT recipe's settings (`recipes/nano_sft.py --show-config` prints them all)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from core.chat import ChatSettings
from core.data.layouts import Layout
from core.config import check_choice
from core.engines.factory import ENGINES
from core.metrics import LoggingConfig
from core.training import TrainConfig
from sft.mixing import MixConfig


@dataclass
class ModelConfig:
    base: str = ""  # HF directory to fine-tune; empty = the embedded tiny model (built and cached)
    preset: str = "tiny"  # core.presets name used when base is empty
    attn_implementation: str = "sdpa"  # sdpa | eager (both take the packed block mask)
    # toggle placement / texts and think tags, saved into the trained checkpoint's tokenizer;
    # unset = keep the base checkpoint's (docs/your_own_model.md)
    chat: Optional[ChatSettings] = None


@dataclass
class DataConfig:
    train_files: list[str] = field(default_factory=list)  # rows with responses (JSONL, parquet, save_to_disk dir[::split]); empty = synthetic
    layout: Layout = field(default_factory=Layout)  # how their rows map to messages (core.data.layouts)
    on_error: str = "raise"  # malformed rows: raise | skip (counted)
    synthetic_math: int = 4000  # math problems, each rendered in both modes
    synthetic_code: int = 1000  # code tasks, each in both modes
    math_levels: list[int] = field(default_factory=lambda: [1, 2, 3, 4])
    seed: int = 0
    mix: MixConfig = field(default_factory=MixConfig)


@dataclass
class PackingConfig:
    pack_len: int = 512  # tokens per packed row
    rows_per_micro: int = 16  # packed rows per micro-batch per rank


@dataclass
class AdapterConfig:
    method: str = "none"  # none (full fine-tuning) | lora (peft) | tied_lora (sft.tied_lora)
    rank: int = 8
    alpha: float = 16.0  # lora only; Tied-LoRA uses alpha = rank (no scaling)
    dropout: float = 0.0  # lora only
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    tied_preset: str = "tl6"  # lora | vera | tl5 | tl6 (METHODS §4)


@dataclass
class EvalConfig:
    enabled: bool = True
    math_per_mode: int = 200  # held-out problems per level mix, asked in each mode
    code_per_mode: int = 40
    seed: int = 9999  # held-out problems come from another seed; train-set duplicates are removed
    max_tokens: int = 128
    engine: str = "vllm"  # auto | vllm | hf (core.engines.factory: vllm where it does not import is an error)

    def __post_init__(self) -> None:
        check_choice("eval.engine", self.engine, ENGINES)


@dataclass
class SFTConfig:
    """Supervised fine-tuning with the reasoning on/off toggle (Llama-Nemotron §4)."""

    name: str = "nano-sft"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    packing: PackingConfig = field(default_factory=PackingConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(lr=3e-3, min_lr=3e-4, warmup_ratio=0.05))
    epochs: float = 3.0  # > 0: total_steps = epochs * steps per epoch (overrides train.total_steps)
    adapter: AdapterConfig = field(default_factory=AdapterConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    checkpoint_every: int = 0  # optimizer steps between resume checkpoints; 0 = only the final one
    resume: str = ""  # "" = fresh, "auto" = latest checkpoint in run_dir, or a checkpoint path
    run_dir: str = ""  # explicit run directory (needed to resume); empty = runs/<name>-<time>
    publish_to: str = "sft-tiny"  # also copy the final HF checkpoint here (relative: under reforge_home())
    cpu_threads: int = 0  # torch threads on CPU; 0 = torch's default. 1 is faster on a busy shared machine
    logging: LoggingConfig = field(default_factory=LoggingConfig)
