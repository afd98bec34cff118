"""GRPO configuration: a typed tree that reads like the method's documentation.

Defaults are the tiny CPU run; `recipes/configs/ultra_grpo_*.yaml` hold the tiny and the
real-scale (LN-Ultra: 72 prompts x 16 samples, temperature 1, top-p 1, global batch 576,
2 updates per rollout) settings.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from core.config import check_choice
from core.metrics import LoggingConfig
from core.training import TrainConfig
from rl.actors import PlacementConfig
from rl.curriculum import CurriculumConfig
from rl.environment import EnvironmentConfig
from rl.generator import GeneratorConfig
from rl.lora import check_adapter
from rl.weight_transport import TRANSPORTS
from sft.config import AdapterConfig


@dataclass
class DataConfig:
    """Prompts for RL. Empty `train_file` = the synthetic math set built on the fly."""

    train_file: str = ""
    test_file: str = ""
    synthetic_train_prompts: int = 512
    synthetic_test_prompts: int = 128
    synthetic_levels: list[int] = field(default_factory=lambda: [1, 2, 3, 4])
    reasoning_modes: list[str] = field(default_factory=lambda: ["on"])
    on_malformed_row: str = "skip"  # skip | raise
    seed: int = 0


@dataclass
class RolloutConfig:
    """How each GRPO step samples."""

    prompts_per_step: int = 32
    samples_per_prompt: int = 8  # G, the group size
    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = 96
    dynamic_sampling: bool = True  # drop zero-variance groups and refill
    max_refill_rounds: int = 2
    overlong_masking: bool = True  # truncated samples contribute no loss


@dataclass
class AlgorithmConfig:
    """GRPO's loss and advantage settings."""

    advantage: str = "std"  # std | no_std | loo
    clip_low: float = 0.2
    clip_high: float = 0.28
    kl_coef: float = 0.0  # k3 KL to the reference, in the loss
    aggregation: str = "token_mean"  # token_mean | seq_mean
    updates_per_rollout: int = 2  # the paper uses 2: the rollout is split into this many optimizer steps
    micro_batch_size: int = 64  # sequences per forward/backward; micro-batches group similar lengths
    micro_batch_tokens: int = 0  # also cap a micro-batch's padded tokens (count x longest); 0 = no cap
    # Where pi_old comes from: "trainer" recomputes it (one extra forward over the rollout);
    # "generator" reuses the sampling logprobs, exact when the sync parity check holds them
    # within tolerance (float32 on CPU), not with bf16/fp8 generation.
    old_logprobs: str = "trainer"
    tis_cap: float | None = None  # truncated importance sampling for generator/trainer mismatch

    def __post_init__(self) -> None:
        check_choice("algorithm.advantage", self.advantage, ("std", "no_std", "loo"))
        check_choice("algorithm.aggregation", self.aggregation, ("token_mean", "seq_mean"))
        check_choice("algorithm.old_logprobs", self.old_logprobs, ("trainer", "generator"))


@dataclass
class FilterConfig:
    """Pass-rate prefilter (LN-Ultra drops prompts its SFT model already solves >= 75%)."""

    enabled: bool = True
    samples: int = 8
    max_pass_rate: float = 0.75
    temperature: float = 1.0
    min_pass_rate: float = 0.0  # > 0 also drops prompts no sample solved (the paper keeps them)
    # The reward whose pass rate is estimated; empty = reward.accuracy_reward. Name the training
    # reward when it is stricter than the accuracy check, so "solved" means "would score".
    reward: str = ""

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_pass_rate < self.max_pass_rate <= 1.0:
            raise ValueError(f"keys 'filter.min_pass_rate', 'filter.max_pass_rate': need 0 <= min < max <= 1, "
                             f"got {self.min_pass_rate} and {self.max_pass_rate}")


@dataclass
class RewardConfig:
    """Reward functions by name with weights; the accuracy reward decides "correct"."""

    functions: dict[str, float] = field(default_factory=lambda: {"math": 1.0, "format": 0.2})
    accuracy_reward: str = "math"
    timeout_s: float = 10.0
    backend: str = "ray"  # ray (a pool of reward actors) | local (in the driver process)
    num_actors: int = 1
    num_workers: int = 2  # concurrent calls per actor

    def __post_init__(self) -> None:
        check_choice("reward.backend", self.backend, ("ray", "local"))


@dataclass
class SyncConfig:
    """Trainer -> generator weight sync and its parity check."""

    # object_store: buckets through Ray's object store | collective: a torch.distributed broadcast from the
    # policy to every engine worker (gloo on CPU, NCCL on GPU); see rl/weight_transport.py
    transport: str = "object_store"
    bucket_mb: float = 64.0  # gathered and sent at a time: bounds the extra memory of a sync on both sides
    parity_check: bool = True
    parity_tolerance: float = 1e-3  # max |logprob diff| on the probe, float32
    probe_sequences: int = 4

    def __post_init__(self) -> None:
        check_choice("sync.transport", self.transport, TRANSPORTS)


@dataclass
class EvalConfig:
    """Held-out accuracy before, during and after training.

    Always greedy (`heldout_accuracy_<mode>`); with `samples` > 0 also the mean accuracy of
    that many samples per prompt at the Llama-Nemotron `on` protocol (temperature 0.6, top-p
    0.95: `heldout_mean_accuracy_<mode>`), which has a smaller standard error per prompt and
    is what the paper reports.
    """

    every_steps: int = 10
    max_tokens: int = 128
    modes: list[str] = field(default_factory=lambda: ["on"])
    samples: int = 0
    temperature: float = 0.6
    top_p: float = 0.95


@dataclass
class GRPOConfig:
    """GRPO with vLLM generators in Ray actors. `model` empty = the tiny SFT policy."""

    model: str = ""
    steps: int = 40
    seed: int = 0
    run_dir: str = ""  # empty = runs/ultra_grpo-<time>
    resume: str = "auto"  # auto (latest checkpoint in run_dir) | never | a checkpoint path
    checkpoint_every: int = 10
    ray_address: str = ""  # empty = connect to a running cluster if RAY_ADDRESS is set, else start one
    data: DataConfig = field(default_factory=DataConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    algorithm: AlgorithmConfig = field(default_factory=AlgorithmConfig)
    filter: FilterConfig = field(default_factory=FilterConfig)
    curriculum: CurriculumConfig = field(default_factory=CurriculumConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    placement: PlacementConfig = field(default_factory=PlacementConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(lr=2e-5, warmup_steps=0, schedule="constant",
                                                                   grad_clip=1.0))
    # none = full fine-tuning; lora = adapters on a frozen base, which is then the KL reference
    # (no second copy); generators and checkpoints get the merged weights.
    adapter: AdapterConfig = field(default_factory=AdapterConfig)
    sync: SyncConfig = field(default_factory=SyncConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    # Multi-turn episodes (tools, feedback): empty `environment.name` = single-turn rollouts.
    environment: EnvironmentConfig = field(default_factory=EnvironmentConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)

    def __post_init__(self) -> None:
        check_adapter(self.adapter)
        if self.filter.reward and self.filter.reward not in self.reward.functions:
            raise ValueError(f"key 'filter.reward': {self.filter.reward!r} is not one of reward.functions "
                             f"{sorted(self.reward.functions)}")
        if self.environment.name and self.filter.enabled:
            raise ValueError("keys 'environment.name', 'filter.enabled': the pass-rate prefilter estimates single-turn "
                             "pass rates; set filter.enabled: false with an environment")
