"""Typed settings of the Puzzle pipeline (recipes/configs/puzzle_*.yaml)."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class CostConfig:
    batch_size: int = field(default=64, metadata={"help": (
        "the decode scenario: throughput at this batch (Puzzle measured at 256)")})
    prompt_len: int = field(default=64, metadata={"help": "prompt tokens of the measured requests"})
    decode_tokens: int = field(default=32, metadata={"help": "generated tokens per measured request"})
    repeats: int = field(default=2, metadata={"help": "timed repeats per model and round (fastest kept)"})
    rounds: int = field(default=1, metadata={"help": "round-robin passes over the measured models; best round kept"})
    dtype: str = field(default="float32", metadata={"help": (
        "serving dtype (bfloat16 on GPUs); also sets the analytic memory")})
    cpu_threads: str = field(default="all", metadata={"help": (
        "vLLM-CPU OpenMP cores: all, or one core such as 0 (its CPU-time figures are contention-free)")})


@dataclass
class BudgetConfig:
    """Constraints for the MIP; a field left null is not constrained."""

    speedup: float | None = field(default=1.7, metadata={"help": (
        "decode-step budget = parent's predicted step / speedup")})
    decode_ms: float | None = field(default=None, metadata={"help": "absolute decode-step budget (overrides speedup)"})
    prefill_ms: float | None = field(default=None, metadata={"help": (
        "prefill time budget in ms (null = unconstrained)")})
    memory_mib: float | None = field(default=None, metadata={"help": (
        "memory budget in MiB: weights + KV cache at seq_len (null = unconstrained)")})
    num_params: float | None = field(default=None, metadata={"help": "parameter budget (null = unconstrained)"})
    throughput_tokens_per_s: float | None = field(default=None, metadata={"help": (
        "minimum decode throughput in tokens/s (null = unconstrained)")})
    seq_len: int = field(default=128, metadata={"help": "prefill + generation, for the KV-cache memory term"})


@dataclass
class PuzzleConfig:
    """Puzzle NAS: parent -> block library (init + BLD) -> scores + measured costs -> MIP
    -> child -> global KD -> served comparison. `python recipes/puzzle_nas.py`."""

    run_dir: str | None = field(default=None, metadata={"help": (
        "run directory; null = a new puzzle_nas-<time> directory under the runs root")})
    torch_threads: int = field(default=0, metadata={"help": (
        "0: torch's default; 1 wastes less CPU on a crowded shared machine")})
    parent_dir: str | None = field(default=None, metadata={"help": (
        "a trained Llama or nemotron-nas checkpoint; null: the tiny NAS parent")})
    parent_steps: int = field(default=80, metadata={"help": (
        "training of the tiny NAS parent (cached under REFORGE_HOME)")})
    seed: int = field(default=0, metadata={"help": "seed of data, initialisation and search"})
    calib_samples: int = field(default=32, metadata={"help": (
        "math problems for the activation statistics that initialise pruned blocks")})
    score_samples: int = field(default=8, metadata={"help": (
        "held-out problems on which each block variant is scored (KL to the parent)")})
    ffn_fractions: list[float] = field(default_factory=lambda: [1.0, 0.75, 0.5, 0.25], metadata={"help": (
        "FFN widths of the library's variants, as fractions of the parent's")})
    linear_variants: bool = field(default=False, metadata={"help": (
        "vLLM ignores replace_with_linear: keep off for a vLLM-served child")})
    bld_steps: int = field(default=40, metadata={"help": "blockwise local distillation steps per block variant"})
    bld_lr: float = field(default=1e-3, metadata={"help": "learning rate of blockwise local distillation"})
    bld_coupled: bool = field(default=False, metadata={"help": (
        "train attention and FFN variants of a layer together (coupled BLD) instead of one at a time")})
    use_ray: bool = field(default=True, metadata={"help": (
        "run the BLD jobs as Ray tasks (false: one after another in this process)")})
    cost: CostConfig = field(default_factory=CostConfig, metadata={"help": "how decode / prefill costs are measured"})
    budget: BudgetConfig = field(default_factory=BudgetConfig, metadata={"help": "the MIP's constraints"})
    batch_sizes: list[int] = field(default_factory=lambda: [64], metadata={"help": (
        "decode batch sizes the budget must hold at")})
    metric: str = field(default="kl_div", metadata={"help": "block score the MIP minimises (kl_div | lm_loss)"})
    num_solutions: int = field(default=1, metadata={"help": "distinct architectures the MIP returns"})
    diversity: float = field(default=0.8, metadata={"help": (
        "each further solution shares at most this share of layer choices with earlier ones")})
    gkd_steps: int = field(default=60, metadata={"help": "global knowledge distillation steps of the child"})
    gkd_lr: float = field(default=3e-4, metadata={"help": "learning rate of global knowledge distillation"})
    gkd_samples: int = field(default=1000, metadata={"help": "math problems distilled on in global KD"})
    eval_samples: int = field(default=100, metadata={"help": (
        "held-out math problems for the parent vs child accuracy (greedy)")})
    served_rounds: int = field(default=2, metadata={"help": (
        "round-robin passes of the served (vLLM) parent vs child comparison")})


@dataclass
class MinitronSSMConfig:
    """Minitron-SSM on a NemotronH hybrid: parent -> activation importance -> candidate
    children under a parameter budget, ranked by KL before distillation -> short KD of the
    best few -> full logit KD of the winner (and of a random-pruned child of the same
    shape) -> MiniPuzzle layer search -> served comparison. `python recipes/minitron_ssm.py`."""

    run_dir: str | None = field(default=None, metadata={"help": (
        "run directory; null = a new minitron_ssm-<time> directory under the runs root")})
    torch_threads: int = field(default=1, metadata={"help": "torch threads in this process; 0 = torch's default"})
    parent_dir: str | None = field(default=None, metadata={"help": (
        "a trained NemotronH checkpoint; null: the tiny hybrid parent")})
    parent_preset: str = field(default="tiny-hybrid", metadata={"help": "core/tiny_hybrid.py"})
    parent_steps: int = field(default=300, metadata={"help": (
        "training of the tiny hybrid parent (cached under REFORGE_HOME)")})
    parent_lr: float = field(default=3e-3, metadata={"help": "learning rate of the tiny parent's training"})
    parent_batch_size: int = field(default=16, metadata={"help": "batch size of the tiny parent's training"})
    parent_train_rows: int = field(default=4000, metadata={"help": (
        "synthetic math problems the tiny parent is trained on (part of its cache key)")})
    seed: int = field(default=0, metadata={"help": "seed of data, initialisation and candidate order"})
    calib_samples: int = field(default=64, metadata={"help": "importance (activations)"})
    score_samples: int = field(default=16, metadata={"help": "depth scores, candidate ranking, MiniPuzzle scores"})
    param_ratio: float = field(default=0.55, metadata={"help": "child parameters <= param_ratio x parent"})
    min_param_ratio: float = field(default=0.4, metadata={"help": "candidates smaller than this are not considered"})
    hidden_sizes: list[int] = field(default_factory=lambda: [256, 224, 192, 160], metadata={"help": (
        "candidate embedding (hidden) widths of the child")})
    mamba_heads: list[int] = field(default_factory=lambda: [16, 12, 8], metadata={"help": "multiples of n_groups"})
    mamba_head_dims: list[int] = field(default_factory=lambda: [32], metadata={"help": (
        "candidate Mamba head dimensions")})
    ffn_sizes: list[int] = field(default_factory=lambda: [1024, 768, 512], metadata={"help": (
        "candidate FFN intermediate sizes")})
    layers_dropped: list[int] = field(default_factory=lambda: [0, 2, 4], metadata={"help": (
        "by logit-NMSE, never attention")})
    min_speedup: float = field(default=0.0, metadata={"help": (
        "latency budget: the child must serve in vLLM this many times faster than the parent, in decode and "
        "in prefill (measured: confirm_candidates; or predicted: nas.serving_cost); 0 = off")})
    confirm_candidates: int = field(default=6, metadata={"help": (
        "with min_speedup: at most this many of the best candidates by KL (the Mamba widths in turn) "
        "are served in vLLM next to the parent and kept only at the budget measured; 0 = predict instead "
        "(per-block times at the parent and at the smallest grid widths; a candidate predicted below the "
        "budget is dropped before the KL ranking)")})
    confirm_margin: float = field(default=0.0, metadata={"help": (
        "with confirm_candidates: a served candidate is kept only at min_speedup x (1 + this) measured, for "
        "the speed ratio a second engine process may measure lower")})
    top_candidates: int = field(default=3, metadata={"help": "short KD for this many, best KL first"})
    short_kd_steps: int = field(default=20, metadata={"help": (
        "KD steps of each top candidate before the winner is picked")})
    kd_steps: int = field(default=200, metadata={"help": "total KD steps of the chosen child (short KD included)"})
    kd_lr: float = field(default=1e-3, metadata={"help": "learning rate of logit KD"})
    kd_batch_size: int = field(default=16, metadata={"help": "sequences per KD step"})
    kd_samples: int = field(default=2000, metadata={"help": "math problems in the KD data"})
    random_baseline: bool = field(default=True, metadata={"help": "a random-pruned child of the same shape, same KD"})
    minipuzzle: bool = field(default=True, metadata={"help": "run the MiniPuzzle layer search after KD"})
    minipuzzle_memory_ratio: float = field(default=0.8, metadata={"help": (
        "MiniPuzzle budget: this share of the parent's memory")})
    eval_samples: int = field(default=200, metadata={"help": (
        "held-out math problems for the accuracy comparison (greedy)")})
    cost: CostConfig = field(
        default_factory=lambda: CostConfig(batch_size=64, prompt_len=64, decode_tokens=32), metadata={"help": (
            "how serving costs are measured")})
    served_rounds: int = field(default=2, metadata={"help": (
        "round-robin passes of the served (vLLM) comparisons: the finalists' confirmation and the final one")})

    def __post_init__(self) -> None:
        if self.confirm_margin < 0:
            raise ValueError(f"key 'confirm_margin': must be >= 0, got {self.confirm_margin}")
