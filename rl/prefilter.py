"""Pass-rate estimation and the prefilter (METHODS §1.6).

Each prompt's pass rate is the fraction of k samples from the starting policy that the
accuracy reward (or `filter.reward`) accepts. Prompts at or above the threshold teach little and are dropped;
so, optionally, are prompts below a floor: a prompt no sample solved gives a group with no
reward variance, which dynamic sampling discards after paying for its generation. The rest
keep their pass rate as the curriculum's difficulty.
"""
from __future__ import annotations

from dataclasses import dataclass

from core.data.schema import Row
from core.engines.base import SamplingSettings
from rl.rollout import generate_and_score


@dataclass
class PassRates:
    rows: list[Row]
    pass_rates: list[float]
    dropped: int


def estimate_pass_rates(generators, scorer, tokenizer, rows: list[Row], samples: int, temperature: float,
                        max_tokens: int, solved_by: str, seed: int) -> list[float]:
    """Mean score of reward function `solved_by` (0/1 checks: the fraction solved) per prompt."""
    sampling = SamplingSettings(n=samples, temperature=temperature, top_p=1.0, max_tokens=max_tokens, seed=seed)
    groups, _ = generate_and_score(generators, scorer, tokenizer, rows, sampling, solved_by)
    return [sum(g.accuracy) / len(g.accuracy) for g in groups]


def prefilter(rows: list[Row], pass_rates: list[float], max_pass_rate: float, min_pass_rate: float = 0.0) -> PassRates:
    """Keeps the prompts with min_pass_rate <= pass rate < max_pass_rate."""
    keep = [i for i, p in enumerate(pass_rates) if min_pass_rate <= p < max_pass_rate]
    if not keep:
        raise ValueError(f"the pass-rate prefilter dropped every prompt (none in [{min_pass_rate}, {max_pass_rate})); "
                         "widen filter.min_pass_rate / filter.max_pass_rate or use other prompts")
    return PassRates([rows[i] for i in keep], [pass_rates[i] for i in keep], len(rows) - len(keep))
