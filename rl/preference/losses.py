"""Preference losses (METHODS §3.1), written with logsigmoid so large gaps stay finite.

Inputs are per-pair sequence log-probabilities (summed over response tokens) of the policy
and the reference, the response token counts, and the explicit rewards r*. With
a = β·Δπ (the implicit-reward gap, Δπ = log-ratio(chosen) − log-ratio(rejected)) and
b = η·(r*_chosen − r*_rejected) (the target gap):

    dpo         −log σ(a)                         (= rpo_bwd_kl with b → +∞)
    ipo         (Δπ − 1/(2β))²                    (NeMo-Aligner's form)
    simpo       −log σ(β·(ℓ̄_c − ℓ̄_r) − γ)          (no reference; ℓ̄ = mean token log-prob)
    rpo_sq      (a − b)²
    rpo_bwd_kl  KL(Bern(σ(b)) ‖ Bern(σ(a)))
    rpo_fwd_kl  KL(Bern(σ(a)) ‖ Bern(σ(b)))

The config keys follow NeMo-Aligner's `model.dpo.*` so its configs carry over.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

LOSSES = ("dpo", "ipo", "simpo", "rpo_sq", "rpo_fwd_kl", "rpo_bwd_kl")
REFERENCE_FREE = ("simpo",)


@dataclass
class PreferenceLossConfig:
    """One preference objective. NeMo-Aligner names in brackets."""

    preference_loss: str = field(default="dpo", metadata={"help": (
        "dpo | ipo | simpo | rpo_sq | rpo_fwd_kl | rpo_bwd_kl [preference_loss]")})
    beta: float = field(default=0.1, metadata={"help": (
        "KL penalty β: scale of the implicit reward [ref_policy_kl_penalty]")})
    eta: float = field(default=1.0, metadata={"help": "reward scale η on the target gap, rpo_* only [gt_reward_scale]"})
    average_log_probs: bool = field(default=False, metadata={"help": (
        "mean instead of sum over response tokens [preference_average_log_probs]")})
    simpo_margin: float = field(default=0.0, metadata={"help": "SimPO's target margin γ"})
    preference_weight: float = field(default=1.0, metadata={"help": (
        "weight of the preference term [preference_loss_weight]")})
    sft_weight: float = field(default=0.0, metadata={"help": "weight of −log π(chosen) [sft_loss_weight]"})
    sft_average_log_probs: bool | None = field(default=None, metadata={"help": (
        "None = same as average_log_probs [sft_average_log_probs]")})

    def __post_init__(self):
        from core.config import check_choice  # here: the policy worker imports this module without OmegaConf

        check_choice("loss.preference_loss", self.preference_loss, LOSSES)
        if self.beta <= 0:
            raise ValueError(f"key 'loss.beta': must be > 0, got {self.beta}")
        if self.sft_weight < 0 or self.preference_weight < 0:
            raise ValueError("key 'loss.sft_weight' / 'loss.preference_weight': weights must be >= 0")

    @property
    def needs_reference(self) -> bool:
        return self.preference_loss not in REFERENCE_FREE


@dataclass(frozen=True)
class PairLoss:
    """A preference objective as the policy worker takes it: the config plus the number of
    real pairs in the *global* batch (each rank divides its weighted pair-loss sum by it)."""

    cfg: PreferenceLossConfig
    pair_normalizer: float


@dataclass
class PairLogprobs:
    """Per-pair tensors [B]. Reference sums may be None for reference-free losses."""

    chosen: torch.Tensor  # Σ log π(chosen tokens)
    rejected: torch.Tensor
    chosen_tokens: torch.Tensor  # response token counts
    rejected_tokens: torch.Tensor
    ref_chosen: torch.Tensor | None = None
    ref_rejected: torch.Tensor | None = None
    chosen_reward: torch.Tensor | None = None  # r*; None = NeMo-Aligner's defaults 1 / 0
    rejected_reward: torch.Tensor | None = None


@dataclass
class PreferenceLossOutput:
    loss: torch.Tensor  # [B] weighted total per pair; callers sum and divide by the global pair count
    preference: torch.Tensor  # [B]
    sft: torch.Tensor  # [B]
    chosen_reward: torch.Tensor  # [B] implicit rewards (detached)
    rejected_reward: torch.Tensor

    def stats(self, weights: torch.Tensor | None = None) -> dict[str, float]:
        """Sums over the pairs (divide by the pair count to average across micro-batches);
        `weights` [B] (0 for the padding pairs of a shard) weigh each pair."""
        w = torch.ones_like(self.loss) if weights is None else weights.to(self.loss.device)
        margin = self.chosen_reward - self.rejected_reward

        def total(x: torch.Tensor) -> float:
            return float((x.detach() * w).sum())

        return {"loss": total(self.loss), "preference_loss": total(self.preference), "sft_loss": total(self.sft),
                "accuracy": total((margin > 0).float()), "margin": total(margin),
                "chosen_reward": total(self.chosen_reward), "rejected_reward": total(self.rejected_reward)}


def _reduce(logp_sum: torch.Tensor, tokens: torch.Tensor, average: bool) -> torch.Tensor:
    return logp_sum / tokens.clamp(min=1) if average else logp_sum


def bernoulli_kl(logit_p: torch.Tensor, logit_q: torch.Tensor) -> torch.Tensor:
    """KL(Bern(σ(p)) ‖ Bern(σ(q))) from logits, stable for large |p|, |q|."""
    lp, lnp = F.logsigmoid(logit_p), F.logsigmoid(-logit_p)
    lq, lnq = F.logsigmoid(logit_q), F.logsigmoid(-logit_q)
    return lp.exp() * (lp - lq) + lnp.exp() * (lnp - lnq)


def preference_loss(x: PairLogprobs, cfg: PreferenceLossConfig) -> PreferenceLossOutput:
    beta = cfg.beta
    if cfg.preference_loss == "simpo":
        chosen_r = beta * x.chosen / x.chosen_tokens.clamp(min=1)
        rejected_r = beta * x.rejected / x.rejected_tokens.clamp(min=1)
        pref = -F.logsigmoid(chosen_r - rejected_r - cfg.simpo_margin)
    else:
        if x.ref_chosen is None or x.ref_rejected is None:
            raise ValueError(f"{cfg.preference_loss} needs reference log-probs")
        avg = cfg.average_log_probs
        ratio_c = _reduce(x.chosen - x.ref_chosen, x.chosen_tokens, avg)
        ratio_r = _reduce(x.rejected - x.ref_rejected, x.rejected_tokens, avg)
        chosen_r, rejected_r = beta * ratio_c, beta * ratio_r
        a = chosen_r - rejected_r
        r_c = x.chosen_reward if x.chosen_reward is not None else torch.ones_like(a)
        r_r = x.rejected_reward if x.rejected_reward is not None else torch.zeros_like(a)
        b = cfg.eta * (r_c - r_r)
        if cfg.preference_loss == "dpo":
            pref = -F.logsigmoid(a)
        elif cfg.preference_loss == "ipo":
            pref = (ratio_c - ratio_r - 1.0 / (2.0 * beta)) ** 2
        elif cfg.preference_loss == "rpo_sq":
            pref = (a - b) ** 2
        elif cfg.preference_loss == "rpo_bwd_kl":
            pref = bernoulli_kl(b, a)
        else:  # rpo_fwd_kl
            pref = bernoulli_kl(a, b)
    sft_avg = cfg.average_log_probs if cfg.sft_average_log_probs is None else cfg.sft_average_log_probs
    sft = -_reduce(x.chosen, x.chosen_tokens, sft_avg)
    total = cfg.preference_weight * pref + (cfg.sft_weight * sft if cfg.sft_weight else 0.0)
    return PreferenceLossOutput(total, pref, sft, chosen_r.detach(), rejected_r.detach())
