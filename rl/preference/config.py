"""The preference stage's configuration (recipes/super_rpo.py; `--show-config` prints it).

Defaults are the tiny offline run on 2 CPU cores; recipes/configs/super_rpo_*.yaml hold the
online, interleaved and real-scale (LN-Super online RPO, LN-Nano offline RPO) settings.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from core.config import check_choice
from core.metrics import LoggingConfig
from core.training import TrainConfig
from rl.actors import PlacementConfig
from rl.config import GRPOConfig, RewardConfig, SyncConfig
from rl.generator import GeneratorConfig
from rl.preference.data import FORMATS
from rl.logprobs import PACKING
from rl.preference.losses import PreferenceLossConfig

MODES = ("offline", "online", "interleaved")
BACKENDS = ("local", "ray")
PAIR_FORMATS = FORMATS
PAIRINGS = ("all_pairs", "best_vs_worst")
REFERENCE_RESETS = ("iteration", "step")
ONLINE_PROMPTS = ("math", "if", "tool", "mix")
INTERLEAVE_SOURCES = ("offline", "online")


@dataclass
class PairDataConfig:
    """Preference pairs. Empty `train_file` = the tiny synthetic mix (math, IF, tool calls)."""

    train_file: str = field(default="", metadata={"help": (
        "preference pairs JSONL (format below); empty = the synthetic mix")})
    test_file: str = field(default="", metadata={"help": (
        "held-out pairs for pref_accuracy; empty = synthetic (other seed)")})
    format: str = field(default="auto", metadata={"help": (
        "auto | reforge | nemo_aligner | nemo_rl (rl/preference/data.py)")})
    on_malformed_row: str = field(default="skip", metadata={"help": "skip (counted, reported) | raise"})
    max_len: int = field(default=512, metadata={"help": (
        "prompt + longer response, tokens; longer pairs are left out and counted")})
    synthetic_math: int = field(default=256, metadata={"help": "math pairs: right vs miscomputed last step"})
    synthetic_if: int = field(default=256, metadata={"help": "instruction-following pairs: constraint met vs broken"})
    synthetic_tool: int = field(default=192, metadata={"help": "When2Call-style items (1-2 pairs each)"})
    synthetic_test_per_kind: int = field(default=64, metadata={"help": "held-out items per kind"})
    seed: int = field(default=0, metadata={"help": "seed of the synthetic pairs"})

    def __post_init__(self):
        check_choice("data.format", self.format, PAIR_FORMATS)
        check_choice("data.on_malformed_row", self.on_malformed_row, ("skip", "raise"))


@dataclass
class OnlineConfig:
    """Iterative online RPO (LN-Super): sample K responses per prompt from the current
    policy, score them, pair them, train; the reference is reset to the policy at the start
    of every iteration."""

    iterations: int = field(default=2, metadata={"help": (
        "online iterations (the reference is reset at the start of each)")})
    steps_per_iteration: int = field(default=10, metadata={"help": (
        "optimizer steps per iteration (each samples fresh responses)")})
    prompts_per_step: int = field(default=16, metadata={"help": "prompts sampled per step"})
    samples_per_prompt: int = field(default=4, metadata={"help": "K: responses sampled per prompt"})
    temperature: float = field(default=1.0, metadata={"help": "sampling temperature of the responses"})
    top_p: float = field(default=1.0, metadata={"help": "nucleus sampling of the responses; 1 = off"})
    max_tokens: int = field(default=96, metadata={"help": "response tokens per sample"})
    pairing: str = field(default="all_pairs", metadata={"help": "all_pairs | best_vs_worst"})
    min_reward_gap: float = field(default=0.0, metadata={"help": (
        "a pair needs r_chosen - r_rejected > this (ties carry no preference)")})
    max_pairs_per_prompt: int = field(default=0, metadata={"help": "0 = no cap; else the largest reward gaps first"})
    oversample: float = field(default=1.0, metadata={"help": (
        "> 1: sample ceil(oversample x prompts_per_step) prompts and train on the first prompts_per_step groups "
        "whose rewards differ (a flat group gives no pairs); 1 = off")})
    prompts: str = field(default="math", metadata={"help": (
        "synthetic prompts when prompt_file is empty: math | if | tool | mix")})
    levels: list[int] = field(default_factory=lambda: [1, 2, 3, 4], metadata={"help": (
        "synthetic math levels (1-4) of the training *and* held-out eval prompts (math and mix)")})
    prompt_file: str = field(default="", metadata={"help": "task rows JSONL (core.data.schema) with reward specs"})
    synthetic_prompts: int = field(default=512, metadata={"help": (
        "synthetic training prompts when prompt_file is empty")})
    eval_prompts: int = field(default=64, metadata={"help": "held-out prompts for the mean reward of own samples"})
    eval_samples: int = field(default=4, metadata={"help": "samples per held-out prompt for the mean reward"})
    reset_reference: str = field(default="iteration", metadata={"help": (
        "iteration: LN-Super's iterative RPO (the reference anchors a whole iteration); step: reset before every "
        "step, so all-pairs rpo_sq is RLOO (METHODS §3.1) and nothing anchors the policy")})

    def __post_init__(self):
        check_choice("online.pairing", self.pairing, PAIRINGS)
        check_choice("online.reset_reference", self.reset_reference, REFERENCE_RESETS)
        check_choice("online.prompts", self.prompts, ONLINE_PROMPTS)
        if not self.levels or any(lv not in (1, 2, 3, 4) for lv in self.levels):
            raise ValueError(f"key 'online.levels': synthetic math levels are 1-4, got {self.levels}")
        if self.oversample < 1.0:
            raise ValueError(f"key 'online.oversample': must be >= 1, got {self.oversample}")
        if self.samples_per_prompt < 2:
            raise ValueError(f"key 'online.samples_per_prompt': pairs need >= 2 samples, got {self.samples_per_prompt}")


@dataclass
class InterleaveConfig:
    """Preference steps inside one GRPO run, on the same policy workers: after every
    `every_grpo_steps` GRPO steps, `preference_steps` preference steps (reference reset to
    the policy first), then the generators are re-synced."""

    every_grpo_steps: int = field(default=5, metadata={"help": "preference steps run after every this many GRPO steps"})
    preference_steps: int = field(default=2, metadata={"help": "preference optimizer steps each time"})
    source: str = field(default="offline", metadata={"help": (
        "offline (the pair data) | online (sample with the GRPO generators)")})

    def __post_init__(self):
        check_choice("interleave.source", self.source, INTERLEAVE_SOURCES)


@dataclass
class PreferenceConfig:
    """DPO / IPO / SimPO / RPO: offline from pairs, iterative online, or interleaved with GRPO."""

    mode: str = field(default="offline", metadata={"help": "offline | online | interleaved"})
    model: str = field(default="", metadata={"help": "HF dir; empty = the tiny SFT policy (built on demand)"})
    seed: int = field(default=0, metadata={"help": "seed of data, sampling and initialisation"})
    run_dir: str = field(default="", metadata={"help": "empty = runs/super_rpo-<time>"})
    ray_address: str = field(default="", metadata={"help": (
        "online / interleaved / backend=ray: empty = start a local Ray")})
    backend: str = field(default="local", metadata={"help": (
        "offline: local (one process, core.training backend) | ray (PolicyGroup)")})
    steps: int = field(default=120, metadata={"help": "offline optimizer steps"})
    batch_size: int = field(default=32, metadata={"help": "pairs per optimizer step (global)"})
    micro_batch_size: int = field(default=32, metadata={"help": (
        "pairs per forward (chosen + rejected rows: twice as many)")})
    packing: str = field(default="auto", metadata={"help": (
        "padding-free micro-batches: each micro-batch's sequences packed into rows with position ids restarting per "
        "sequence and attention kept inside it (rl/batch.py), for log-probs and training | auto: where the model "
        "can (not with Mamba layers) | on: an error where it cannot | off: right-padded to the longest")})
    eval_every: int = field(default=40, metadata={"help": "offline: held-out pair accuracy every N steps"})
    checkpoint_every: int = field(default=0, metadata={"help": (
        "resume state (run_dir/checkpoints/step_N, core.checkpointer): offline every N steps, online every N "
        "iterations, interleaved: grpo.checkpoint_every; 0 = none")})
    resume: str = field(default="auto", metadata={"help": (
        "auto (latest complete checkpoint in run_dir) | never | a path; interleaved: grpo.resume")})
    cpu_threads: int = field(default=0, metadata={"help": (
        "torch threads in this process on CPU; 0 = torch's default (1 helps on a busy machine)")})
    loss: PreferenceLossConfig = field(default_factory=lambda: PreferenceLossConfig("dpo", beta=0.1), metadata={
        "help": "the preference objective (rl/preference/losses.py takes this section as it is)"})
    train: TrainConfig = field(default_factory=lambda: TrainConfig(lr=3e-4, warmup_steps=5, schedule="constant",
                                                                   grad_clip=1.0),
                               metadata={"help": "optimizer, schedule and training backend of the policy"})
    data: PairDataConfig = field(default_factory=PairDataConfig, metadata={"help": (
        "the preference pairs (offline / interleaved offline)")})
    online: OnlineConfig = field(default_factory=OnlineConfig, metadata={"help": "iterative online RPO"})
    interleave: InterleaveConfig = field(default_factory=InterleaveConfig, metadata={"help": (
        "preference steps inside a GRPO run")})
    grpo: GRPOConfig = field(default_factory=GRPOConfig, metadata={"help": "the GRPO side of an interleaved run"})
    reward: RewardConfig = field(default_factory=RewardConfig, metadata={"help": "online scoring"})
    generator: GeneratorConfig = field(default_factory=GeneratorConfig, metadata={"help": (
        "the generation engines (online / interleaved)")})
    placement: PlacementConfig = field(default_factory=PlacementConfig, metadata={"help": (
        "policy ranks and Ray resources")})
    sync: SyncConfig = field(default_factory=SyncConfig, metadata={"help": "weight sync to the generators"})
    logging: LoggingConfig = field(default_factory=LoggingConfig, metadata={"help": "metrics output"})

    def __post_init__(self):
        check_choice("mode", self.mode, MODES)
        check_choice("backend", self.backend, BACKENDS)
        check_choice("packing", self.packing, PACKING)
