"""The GRPO policy loss: clipped surrogate with separate low/high clip, k3 KL to the
reference, token-mean or sequence-mean aggregation, optional truncated importance weights.

All inputs are per-token tensors [batch, time] over response tokens with a 0/1 `mask`
(padding, and overlong samples when overlong masking is on, are 0).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

AGGREGATIONS = ("token_mean", "seq_mean")


@dataclass
class PolicyLossConfig:
    """The loss settings of GRPO. `rl.config.AlgorithmConfig` extends this class, so the
    recipe's `algorithm` section is passed to the loss as it is (no copy of its fields)."""

    clip_low: float = field(default=0.2, metadata={"help": "lower clip: the ratio is kept >= 1 - clip_low"})
    clip_high: float = field(default=0.28, metadata={"help": (
        "upper clip: the ratio is kept <= 1 + clip_high ('clip-higher', DAPO); equal to clip_low = the PPO clip")})
    kl_coef: float = field(default=0.0, metadata={"help": (
        "weight of the k3 KL to the reference in the loss; > 0 keeps a frozen reference on the policy workers")})
    aggregation: str = field(default="token_mean", metadata={"help": (
        "token_mean: every loss token of the global batch weighs the same | seq_mean: each sequence's mean, "
        "then the mean over sequences")})
    tis_cap: float | None = field(default=None, metadata={"help": (
        "truncated importance sampling: weight tokens by min(pi_old / pi_generator, tis_cap) to correct "
        "generator/trainer mismatch; null = off")})

    def __post_init__(self) -> None:
        if self.aggregation not in AGGREGATIONS:  # core.config.check_choice would pull in OmegaConf here
            raise ValueError(f"key 'algorithm.aggregation': {self.aggregation!r} is not one of {list(AGGREGATIONS)}")


@dataclass(frozen=True)
class ClippedPolicyLoss:
    """GRPO's objective as the policy worker takes it: the config (the recipe's
    `algorithm` section, or any `PolicyLossConfig`) plus the normalisers of the *global*
    batch (every rank and micro-batch divides by the same counts)."""

    cfg: PolicyLossConfig
    token_normalizer: float  # loss tokens in the global batch (token_mean)
    seq_normalizer: float  # sequences in the global batch (seq_mean)

    @classmethod
    def for_batch(cls, cfg: PolicyLossConfig, loss_masks: list[list[int]]) -> "ClippedPolicyLoss":
        """Normalisers counted on the whole, unpadded batch (before `shard_batch`)."""
        return cls(cfg, float(sum(sum(m) for m in loss_masks)) or 1.0, float(len(loss_masks)) or 1.0)


def k3_kl(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Schulman's k3 estimator of KL(pi || ref) per token: r - log r - 1 with r = ref/pi.
    Non-negative and unbiased when tokens are sampled from pi."""
    log_ratio = ref_logp - logp
    return torch.exp(log_ratio) - log_ratio - 1.0


def aggregate(per_token: torch.Tensor, mask: torch.Tensor, mode: str, token_normalizer: float | None = None,
              seq_normalizer: float | None = None) -> torch.Tensor:
    """Reduce per-token values to a scalar.

    token_mean divides the masked sum by the number of loss tokens in the *global* batch
    (pass `token_normalizer` when this micro-batch is one of several); seq_mean averages
    each sequence over its own tokens and then over the global number of sequences.
    """
    if mode == "token_mean":
        denom = token_normalizer if token_normalizer is not None else mask.sum().clamp(min=1.0)
        return (per_token * mask).sum() / denom
    if mode == "seq_mean":
        per_seq = (per_token * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
        denom = seq_normalizer if seq_normalizer is not None else max(per_token.shape[0], 1)
        return per_seq.sum() / denom
    raise ValueError(f"aggregation must be one of {AGGREGATIONS}, got {mode!r}")


def policy_loss(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor,
                cfg: PolicyLossConfig, ref_logp: torch.Tensor | None = None,
                generator_logp: torch.Tensor | None = None, token_normalizer: float | None = None,
                seq_normalizer: float | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """Loss to minimise and its statistics. `advantages` is [batch] (one per sample)."""
    adv = advantages[:, None].expand_as(logp)
    ratio = torch.exp(logp - old_logp)
    surr = ratio * adv
    surr_clipped = torch.clamp(ratio, 1.0 - cfg.clip_low, 1.0 + cfg.clip_high) * adv
    per_token = -torch.minimum(surr, surr_clipped)
    if cfg.tis_cap is not None and generator_logp is not None:
        # The generator sampled with its own numerics; reweight towards the trainer's policy.
        weight = torch.exp(old_logp - generator_logp).clamp(max=cfg.tis_cap).detach()
        per_token = per_token * weight
    kl = k3_kl(logp, ref_logp) if ref_logp is not None else torch.zeros_like(logp)
    if cfg.kl_coef:
        per_token = per_token + cfg.kl_coef * kl
    loss = aggregate(per_token, mask, cfg.aggregation, token_normalizer, seq_normalizer)
    with torch.no_grad():
        n = mask.sum().clamp(min=1.0)
        clipped = ((surr_clipped < surr) & (mask > 0)).float().sum() / n
        stats = {
            "clip_fraction": float(clipped),
            "kl": float((kl * mask).sum() / n),
            "ratio_mean": float((ratio * mask).sum() / n),
        }
    return loss, stats
