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
from rl.logprobs import PACKING
from rl.losses import PolicyLossConfig
from rl.weight_transport import TRANSPORTS
from sft.config import AdapterConfig


@dataclass
class DataConfig:
    """Prompts for RL. Empty `train_file` = the synthetic math set built on the fly."""

    train_file: str = field(default="", metadata={"help": (
        "task rows JSONL (core/data/schema.py); empty = synthetic math")})
    test_file: str = field(default="", metadata={"help": "held-out task rows JSONL; empty = synthetic (another seed)"})
    synthetic_train_prompts: int = field(default=512, metadata={"help": "synthetic math prompts to train on"})
    synthetic_test_prompts: int = field(default=128, metadata={"help": "synthetic held-out math prompts"})
    synthetic_levels: list[int] = field(default_factory=lambda: [1, 2, 3, 4], metadata={"help": (
        "difficulty levels (1-4) of the synthetic math prompts")})
    reasoning_modes: list[str] = field(default_factory=lambda: ["on"], metadata={"help": (
        "reasoning modes (system prompt `detailed thinking on|off`) the training prompts are asked in")})
    on_malformed_row: str = field(default="skip", metadata={"help": (
        "a row that fails validation: skip (counted) | raise")})
    seed: int = field(default=0, metadata={"help": "seed of the synthetic prompts"})


@dataclass
class RolloutConfig:
    """How each GRPO step samples."""

    prompts_per_step: int = field(default=32, metadata={"help": "prompts sampled per GRPO step"})
    samples_per_prompt: int = field(default=8, metadata={"help": "G, the group size: completions per prompt"})
    temperature: float = field(default=1.0, metadata={"help": "sampling temperature of the rollouts"})
    top_p: float = field(default=1.0, metadata={"help": "nucleus sampling of the rollouts; 1 = off"})
    max_tokens: int = field(default=96, metadata={"help": "completion tokens per sample; longer ones are truncated"})
    dynamic_sampling: bool = field(default=True, metadata={"help": "drop zero-variance groups and refill"})
    max_refill_rounds: int = field(default=2, metadata={"help": "dynamic sampling: extra generate rounds to refill"})
    overlong_masking: bool = field(default=True, metadata={"help": (
        "truncated samples (hit max_tokens) contribute no loss")})


@dataclass
class AlgorithmConfig(PolicyLossConfig):
    """GRPO's loss, advantage and micro-batch settings. It *is* the loss config: the loss
    fields (clip_low, clip_high, kl_coef, aggregation, tis_cap) are declared, with their
    help, in `rl.losses.PolicyLossConfig`, and the trainer hands this section to the loss."""

    advantage: str = field(default="std", metadata={"help": (
        "std: (r - group mean) / group std | no_std: r - group mean (Dr. GRPO) | loo: leave-one-out baseline")})
    updates_per_rollout: int = field(default=2, metadata={"help": (
        "the rollout is split into this many mini-batches, one optimizer step each (the paper uses 2)")})
    micro_batch_size: int = field(default=64, metadata={"help": (
        "sequences per forward/backward; micro-batches group similar lengths")})
    micro_batch_tokens: int = field(default=0, metadata={"help": (
        "also cap a micro-batch's tokens (padded: count x longest; packed: real tokens); 0 = no cap")})
    packing: str = field(default="auto", metadata={"help": (
        "padding-free micro-batches: each micro-batch's sequences packed into rows with position ids restarting per "
        "sequence and attention kept inside it (rl/batch.py), for log-probs and training | auto: where the model "
        "can (not with Mamba layers) | on: an error where it cannot | off: right-padded to the longest")})
    old_logprobs: str = field(default="trainer", metadata={"help": (
        "where pi_old comes from: trainer (one extra forward over the rollout) | generator (the sampling "
        "log-probs: exact when the sync parity check holds them within tolerance, float32 on CPU; not with "
        "bf16/fp8 generation)")})

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("algorithm.advantage", self.advantage, ("std", "no_std", "loo"))
        check_choice("algorithm.old_logprobs", self.old_logprobs, ("trainer", "generator"))
        check_choice("algorithm.packing", self.packing, PACKING)


@dataclass
class FilterConfig:
    """Pass-rate prefilter (LN-Ultra drops prompts its SFT model already solves >= 75%)."""

    enabled: bool = field(default=True, metadata={"help": "estimate pass rates before training and drop easy prompts"})
    samples: int = field(default=8, metadata={"help": "samples per prompt for the pass-rate estimate"})
    max_pass_rate: float = field(default=0.75, metadata={"help": "drop prompts solved at this rate or more"})
    temperature: float = field(default=1.0, metadata={"help": "sampling temperature of the estimate"})
    min_pass_rate: float = field(default=0.0, metadata={"help": (
        "> 0 also drops prompts no sample solved (the paper keeps them)")})
    reward: str = field(default="", metadata={"help": (
        "The reward whose pass rate is estimated; empty = reward.accuracy_reward. Name the training reward when it "
        "is stricter than the accuracy check, so \"solved\" means \"would score\".")})

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_pass_rate < self.max_pass_rate <= 1.0:
            raise ValueError(f"keys 'filter.min_pass_rate', 'filter.max_pass_rate': need 0 <= min < max <= 1, "
                             f"got {self.min_pass_rate} and {self.max_pass_rate}")


@dataclass
class RewardConfig:
    """Reward functions by name with weights; the accuracy reward decides "correct"."""

    functions: dict[str, float] = field(default_factory=lambda: {"math": 1.0, "format": 0.2}, metadata={"help": (
        "reward name (registry, module:function or entry point) -> weight; the reward is the weighted sum")})
    accuracy_reward: str = field(default="math", metadata={"help": "the function whose score decides \"correct\""})
    timeout_s: float = field(default=10.0, metadata={"help": "per-sample scoring time limit; a timeout scores 0"})
    backend: str = field(default="ray", metadata={"help": (
        "ray (a pool of reward actors) | local (in the driver process)")})
    num_actors: int = field(default=1, metadata={"help": "reward actors in the pool (backend: ray)"})
    num_workers: int = field(default=2, metadata={"help": "concurrent calls per actor"})

    def __post_init__(self) -> None:
        check_choice("reward.backend", self.backend, ("ray", "local"))


@dataclass
class SyncConfig:
    """Trainer -> generator weight sync and its parity check."""

    transport: str = field(default="object_store", metadata={"help": (
        "object_store: buckets through Ray's object store | collective: a torch.distributed broadcast from the "
        "policy to every engine worker (gloo on CPU, NCCL on GPU); see rl/weight_transport.py")})
    bucket_mb: float = field(default=64.0, metadata={"help": (
        "gathered and sent at a time: bounds the extra memory of a sync on both sides")})
    parity_check: bool = field(default=True, metadata={"help": (
        "after each sync, compare probe log-probs trainer vs generators")})
    parity_tolerance: float = field(default=1e-3, metadata={"help": "max |logprob diff| on the probe, float32"})
    probe_sequences: int = field(default=4, metadata={"help": "fixed sequences of the parity probe"})

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

    every_steps: int = field(default=10, metadata={"help": "held-out evaluation every N steps (and before and after)"})
    max_tokens: int = field(default=128, metadata={"help": "completion tokens per held-out answer"})
    modes: list[str] = field(default_factory=lambda: ["on"], metadata={"help": "reasoning modes evaluated (on | off)"})
    samples: int = field(default=0, metadata={"help": (
        "sampled answers per prompt for the mean accuracy; 0 = greedy only")})
    temperature: float = field(default=0.6, metadata={"help": "temperature of the sampled evaluation"})
    top_p: float = field(default=0.95, metadata={"help": "top-p of the sampled evaluation"})


@dataclass
class AsyncRolloutConfig:
    """Asynchronous GRPO (docs/async_grpo.md): the next rollouts are generated while the
    policy trains, by a policy at most `max_staleness` versions old.

    Policy version v = the policy after v steps. With max_staleness k the rollout of step s
    is sampled by version max(0, s-1-k) and trained against version s-1 (a fixed schedule,
    so runs reproduce and resume exactly). Stale samples are reweighted by truncated
    importance sampling against the generator's own log-probs (`algorithm.tis_cap`, required
    for k >= 1, with `algorithm.old_logprobs: trainer`); tokens whose ratio passes
    `mask_cap` carry no loss.
    """

    max_staleness: int | None = field(default=None, metadata={"help": (
        "null = off: each rollout is generated in the loop's own thread (the synchronous loop) | 0 = generated "
        "in the producer thread, fully on-policy (equal to off, metric for metric) | k >= 1 = step s's update "
        "overlaps the generation of step s+k's rollout, sampled by a policy k versions older")})
    mask_cap: float = field(default=0.0, metadata={"help": (
        "a token whose pi_old / pi_generator ratio is above mask_cap or below 1/mask_cap gets no loss (too far "
        "off-policy to correct); 0 = off")})

    def __post_init__(self) -> None:
        if self.max_staleness is not None and self.max_staleness < 0:
            raise ValueError(f"key 'async_rollout.max_staleness': must be null or >= 0, got {self.max_staleness}")
        if self.mask_cap and self.mask_cap <= 1.0:
            raise ValueError(f"key 'async_rollout.mask_cap': must be 0 (off) or > 1, got {self.mask_cap}")


@dataclass
class GRPOConfig:
    """GRPO with vLLM generators in Ray actors. `model` empty = the tiny SFT policy."""

    model: str = field(default="", metadata={"help": (
        "HF model directory of the starting policy; empty = the tiny SFT policy")})
    steps: int = field(default=40, metadata={"help": "GRPO steps (one rollout each)"})
    seed: int = field(default=0, metadata={"help": "seed of sampling, shuffling and initialisation"})
    run_dir: str = field(default="", metadata={"help": "empty = runs/ultra_grpo-<time>"})
    resume: str = field(default="auto", metadata={"help": (
        "auto (latest checkpoint in run_dir) | never | a checkpoint path")})
    checkpoint_every: int = field(default=10, metadata={"help": (
        "resume state every N steps (core/checkpointer.py); 0 = none")})
    ray_address: str = field(default="", metadata={"help": (
        "empty = connect to a running cluster if RAY_ADDRESS is set, else start one")})
    data: DataConfig = field(default_factory=DataConfig, metadata={"help": "the prompts"})
    rollout: RolloutConfig = field(default_factory=RolloutConfig, metadata={"help": "how each step samples"})
    algorithm: AlgorithmConfig = field(default_factory=AlgorithmConfig, metadata={"help": (
        "the loss (rl/losses.py takes this section as it is), advantages and micro-batching")})
    filter: FilterConfig = field(default_factory=FilterConfig, metadata={"help": "the pass-rate prefilter"})
    curriculum: CurriculumConfig = field(default_factory=CurriculumConfig, metadata={"help": "prompt order"})
    reward: RewardConfig = field(default_factory=RewardConfig, metadata={"help": "scoring"})
    generator: GeneratorConfig = field(default_factory=GeneratorConfig, metadata={"help": "the generation engines"})
    placement: PlacementConfig = field(default_factory=PlacementConfig, metadata={"help": (
        "policy ranks and Ray resources")})
    train: TrainConfig = field(default_factory=lambda: TrainConfig(lr=2e-5, warmup_steps=0, schedule="constant",
                                                                   grad_clip=1.0),
                               metadata={"help": "optimizer, schedule and training backend of the policy"})
    adapter: AdapterConfig = field(default_factory=AdapterConfig, metadata={"help": (
        "none = full fine-tuning; lora = adapters on a frozen base, which is then the KL reference (no second "
        "copy); generators and checkpoints get the merged weights.")})
    sync: SyncConfig = field(default_factory=SyncConfig, metadata={"help": "weight sync to the generators"})
    eval: EvalConfig = field(default_factory=EvalConfig, metadata={"help": "held-out accuracy"})
    environment: EnvironmentConfig = field(default_factory=EnvironmentConfig, metadata={"help": (
        "Multi-turn episodes (tools, feedback): empty `environment.name` = single-turn rollouts.")})
    async_rollout: AsyncRolloutConfig = field(default_factory=AsyncRolloutConfig, metadata={"help": (
        "generation overlapping the update, with a bound on how stale a sample may be (docs/async_grpo.md)")})
    logging: LoggingConfig = field(default_factory=LoggingConfig, metadata={"help": "metrics output"})

    def __post_init__(self) -> None:
        check_adapter(self.adapter)
        if self.filter.reward and self.filter.reward not in self.reward.functions:
            raise ValueError(f"key 'filter.reward': {self.filter.reward!r} is not one of reward.functions "
                             f"{sorted(self.reward.functions)}")
        if self.async_rollout.max_staleness and self.algorithm.tis_cap is None:
            raise ValueError("keys 'async_rollout.max_staleness', 'algorithm.tis_cap': stale samples are corrected by "
                             "truncated importance sampling; set algorithm.tis_cap (e.g. 2.0) with max_staleness >= 1")
        if self.async_rollout.max_staleness and self.algorithm.old_logprobs != "trainer":
            raise ValueError("keys 'async_rollout.max_staleness', 'algorithm.old_logprobs': with max_staleness >= 1 "
                             "pi_old must be the trainer's recompute (old_logprobs: trainer); the generator's "
                             "log-probs are an older policy's")
        if self.environment.name and self.filter.enabled:
            raise ValueError("keys 'environment.name', 'filter.enabled': the pass-rate prefilter estimates single-turn "
                             "pass rates; set filter.enabled: false with an environment")
