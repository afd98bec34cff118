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

    train_file: str = ""
    test_file: str = ""  # held-out pairs for pref_accuracy; empty = synthetic (other seed)
    format: str = "auto"  # auto | reforge | nemo_aligner | nemo_rl (rl/preference/data.py)
    on_malformed_row: str = "skip"  # skip (counted, reported) | raise
    max_len: int = 512  # prompt + longer response, tokens; longer pairs are left out and counted
    synthetic_math: int = 256  # math pairs: right vs miscomputed last step
    synthetic_if: int = 256  # instruction-following pairs: constraint met vs broken
    synthetic_tool: int = 192  # When2Call-style items (1-2 pairs each)
    synthetic_test_per_kind: int = 64  # held-out items per kind
    seed: int = 0

    def __post_init__(self):
        check_choice("data.format", self.format, PAIR_FORMATS)
        check_choice("data.on_malformed_row", self.on_malformed_row, ("skip", "raise"))


@dataclass
class OnlineConfig:
    """Iterative online RPO (LN-Super): sample K responses per prompt from the current
    policy, score them, pair them, train; the reference is reset to the policy at the start
    of every iteration."""

    iterations: int = 2
    steps_per_iteration: int = 10
    prompts_per_step: int = 16
    samples_per_prompt: int = 4  # K
    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = 96
    pairing: str = "all_pairs"  # all_pairs | best_vs_worst
    min_reward_gap: float = 0.0  # a pair needs r_chosen - r_rejected > this (ties carry no preference)
    max_pairs_per_prompt: int = 0  # 0 = no cap; else the largest reward gaps first
    # > 1: sample ceil(oversample x prompts_per_step) prompts and train on the first
    # prompts_per_step groups whose rewards differ (a flat group gives no pairs); 1 = off
    oversample: float = 1.0
    prompts: str = "math"  # synthetic prompts when prompt_file is empty: math | if | tool | mix
    # synthetic math levels (1-4) of the training *and* held-out eval prompts (math and mix)
    levels: list[int] = field(default_factory=lambda: [1, 2, 3, 4])
    prompt_file: str = ""  # task rows JSONL (core.data.schema) with reward specs
    synthetic_prompts: int = 512
    eval_prompts: int = 64  # held-out prompts for the mean reward of own samples
    eval_samples: int = 4
    # iteration: LN-Super's iterative RPO (the reference anchors a whole iteration); step: reset
    # before every step, so all-pairs rpo_sq is RLOO (METHODS §3.1) and nothing anchors the policy
    reset_reference: str = "iteration"

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

    every_grpo_steps: int = 5
    preference_steps: int = 2
    source: str = "offline"  # offline (the pair data) | online (sample with the GRPO generators)

    def __post_init__(self):
        check_choice("interleave.source", self.source, INTERLEAVE_SOURCES)


@dataclass
class PreferenceConfig:
    """DPO / IPO / SimPO / RPO: offline from pairs, iterative online, or interleaved with GRPO."""

    mode: str = "offline"  # offline | online | interleaved
    model: str = ""  # HF dir; empty = the tiny SFT policy (built on demand)
    seed: int = 0
    run_dir: str = ""  # empty = runs/super_rpo-<time>
    ray_address: str = ""  # online / interleaved / backend=ray: empty = start a local Ray
    backend: str = "local"  # offline: local (one process, core.training backend) | ray (PolicyGroup)
    steps: int = 120  # offline optimizer steps
    batch_size: int = 32  # pairs per optimizer step (global)
    micro_batch_size: int = 32  # pairs per forward (chosen + rejected rows: twice as many)
    eval_every: int = 40  # offline: held-out pair accuracy every N steps
    # resume state (run_dir/checkpoints/step_N, core.checkpointer): offline every N steps, online every N
    # iterations, interleaved: grpo.checkpoint_every; 0 = none
    checkpoint_every: int = 0
    resume: str = "auto"  # auto (latest complete checkpoint in run_dir) | never | a path; interleaved: grpo.resume
    cpu_threads: int = 0  # torch threads in this process on CPU; 0 = torch's default (1 helps on a busy machine)
    loss: PreferenceLossConfig = field(default_factory=lambda: PreferenceLossConfig("dpo", beta=0.1))
    train: TrainConfig = field(default_factory=lambda: TrainConfig(lr=3e-4, warmup_steps=5, schedule="constant",
                                                                   grad_clip=1.0))
    data: PairDataConfig = field(default_factory=PairDataConfig)
    online: OnlineConfig = field(default_factory=OnlineConfig)
    interleave: InterleaveConfig = field(default_factory=InterleaveConfig)
    grpo: GRPOConfig = field(default_factory=GRPOConfig)  # the GRPO side of an interleaved run
    reward: RewardConfig = field(default_factory=RewardConfig)  # online scoring
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    placement: PlacementConfig = field(default_factory=PlacementConfig)
    sync: SyncConfig = field(default_factory=SyncConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)

    def __post_init__(self):
        check_choice("mode", self.mode, MODES)
        check_choice("backend", self.backend, BACKENDS)
