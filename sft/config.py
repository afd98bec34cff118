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
    base: str = field(default="", metadata={"help": (
        "HF dir to fine-tune (relative, not here: under reforge_home()); empty = the embedded tiny model")})
    preset: str = field(default="tiny", metadata={"help": "core.presets name used when base is empty"})
    attn_implementation: str = field(default="sdpa", metadata={"help": (
        "sdpa | eager (both take the packed block mask)")})
    chat: Optional[ChatSettings] = field(default=None, metadata={"help": (
        "toggle placement / texts and think tags, saved into the trained checkpoint's tokenizer; unset = keep the "
        "base checkpoint's (docs/your_own_model.md)")})


@dataclass
class DataConfig:
    train_files: list[str] = field(default_factory=list, metadata={"help": (
        "rows with responses (JSONL, parquet, save_to_disk dir[::split]); empty = synthetic")})
    layout: Layout = field(default_factory=Layout, metadata={"help": (
        "how their rows map to messages (core.data.layouts)")})
    on_error: str = field(default="raise", metadata={"help": "malformed rows: raise | skip (counted)"})
    synthetic_math: int = field(default=4000, metadata={"help": "math problems, each rendered in both modes"})
    synthetic_code: int = field(default=1000, metadata={"help": "code tasks, each in both modes"})
    synthetic_tool_math: int = field(default=0, metadata={"help": (
        "math problems solved with calculator calls (sft/tool_traces.py), both modes")})
    tools_shown: str = field(default="specs", metadata={"help": (
        "how tool traces list the tools: specs | signatures; the GRPO environment must match "
        "(environment.tools_shown)")})
    math_levels: list[int] = field(default_factory=lambda: [1, 2, 3, 4], metadata={"help": (
        "difficulty levels (1-4) of the synthetic math problems")})
    seed: int = field(default=0, metadata={"help": "seed of the synthetic data"})
    mix: MixConfig = field(default_factory=MixConfig, metadata={"help": "how many samples to draw from each domain"})

    def __post_init__(self) -> None:
        from rl.turns import TOOLS_SHOWN

        if self.tools_shown not in TOOLS_SHOWN:
            raise ValueError(f"key 'data.tools_shown': expected one of {TOOLS_SHOWN}, got {self.tools_shown!r}")


@dataclass
class PackingConfig:
    pack_len: int = field(default=512, metadata={"help": "tokens per packed row"})
    rows_per_micro: int = field(default=16, metadata={"help": "packed rows per micro-batch per rank"})


@dataclass
class AdapterConfig:
    method: str = field(default="none", metadata={"help": (
        "none (full fine-tuning) | lora (peft) | tied_lora (sft.tied_lora)")})
    rank: int = field(default=8, metadata={"help": "adapter rank r"})
    alpha: float = field(default=16.0, metadata={"help": "lora only; Tied-LoRA uses alpha = rank (no scaling)"})
    dropout: float = field(default=0.0, metadata={"help": "lora only"})
    target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"], metadata={"help": (
            "linear layers that get adapters")})
    tied_preset: str = field(default="tl6", metadata={"help": "lora | vera | tl5 | tl6 (METHODS §4)"})


@dataclass
class EvalConfig:
    enabled: bool = field(default=True, metadata={"help": (
        "held-out accuracy of the base and the trained model, in each mode")})
    math_per_mode: int = field(default=200, metadata={"help": "held-out problems per level mix, asked in each mode"})
    code_per_mode: int = field(default=40, metadata={"help": "held-out code tasks, asked in each mode"})
    seed: int = field(default=9999, metadata={"help": (
        "held-out problems come from another seed; train-set duplicates are removed")})
    max_tokens: int = field(default=128, metadata={"help": "generation budget per held-out answer"})
    engine: str = field(default="vllm", metadata={"help": (
        "auto | vllm | hf (core.engines.factory: vllm where it does not import is an error)")})

    def __post_init__(self) -> None:
        check_choice("eval.engine", self.engine, ENGINES)


@dataclass
class SFTConfig:
    """Supervised fine-tuning with the reasoning on/off toggle (Llama-Nemotron §4)."""

    name: str = field(default="nano-sft", metadata={"help": "run name: the run directory is runs/<name>-<time>"})
    model: ModelConfig = field(default_factory=ModelConfig, metadata={"help": "the model to fine-tune"})
    data: DataConfig = field(default_factory=DataConfig, metadata={"help": "the training data"})
    packing: PackingConfig = field(default_factory=PackingConfig, metadata={"help": (
        "packed rows (documents isolated by the block mask)")})
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(lr=3e-3, min_lr=3e-4, warmup_ratio=0.05), metadata={"help": (
            "optimizer, schedule and training backend")})
    epochs: float = field(default=3.0, metadata={"help": (
        "> 0: total_steps = epochs * steps per epoch (overrides train.total_steps)")})
    adapter: AdapterConfig = field(default_factory=AdapterConfig, metadata={"help": "full fine-tuning or adapters"})
    eval: EvalConfig = field(default_factory=EvalConfig, metadata={"help": "the held-out check"})
    checkpoint_every: int = field(default=0, metadata={"help": (
        "optimizer steps between resume checkpoints; 0 = only the final one")})
    resume: str = field(default="", metadata={"help": (
        "\"\" = fresh, \"auto\" = latest checkpoint in run_dir, or a checkpoint path")})
    run_dir: str = field(default="", metadata={"help": (
        "explicit run directory (needed to resume); empty = runs/<name>-<time>")})
    publish_to: str = field(default="sft-tiny", metadata={"help": (
        "also copy the final HF checkpoint here (relative: under reforge_home())")})
    cpu_threads: int = field(default=0, metadata={"help": (
        "torch threads on CPU; 0 = torch's default. 1 is faster on a busy shared machine")})
    logging: LoggingConfig = field(default_factory=LoggingConfig, metadata={"help": "metrics output"})
