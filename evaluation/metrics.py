"""Sample-level metrics over n completions per prompt: pass@k, mean@n, majority-vote cons@k.

pass@k uses the unbiased estimator of Chen et al. (2021): with n samples of which c are
correct, the chance that a random k-subset holds at least one correct sample is
1 - C(n-c, k) / C(n, k). The binomials overflow floats for the n used in practice, so it
is computed as the product 1 - prod_{i=n-c+1}^{n} (1 - k / i), which is exact and stable.
"""
from __future__ import annotations

from collections import Counter
from typing import Hashable, Sequence

import numpy as np


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k for one prompt with n samples, c of them correct (needs k <= n)."""
    if not 0 <= c <= n:
        raise ValueError(f"need 0 <= c <= n, got c={c}, n={n}")
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= n, got k={k}, n={n}")
    if n - c < k:  # every k-subset contains a correct sample
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def mean_at_n(scores: Sequence[float]) -> float:
    """Mean score of one prompt's n samples: the paper's "mean pass@1 over n samples"."""
    if not scores:
        raise ValueError("mean@n of zero samples")
    return float(np.mean(scores))


def majority_vote(answers: Sequence[Hashable | None]) -> int | None:
    """Index of the first sample carrying the most frequent answer; None answers do not vote.

    Ties go to the answer seen first, so the vote is deterministic for a given sample order.
    Returns None when no sample has an answer.
    """
    counts = Counter(a for a in answers if a is not None)
    if not counts:
        return None
    top = max(counts.values())
    return next(i for i, a in enumerate(answers) if a is not None and counts[a] == top)


def cons_at_k(answers: Sequence[Hashable | None], correct: Sequence[bool], k: int) -> float:
    """Majority-vote accuracy over the first k samples (1.0 if the winning answer is correct).

    Samples are i.i.d., so the first k are a random k-subset: averaged over prompts this
    estimates cons@k without bias. `answers` are normalised extracted answers (None when a
    sample has none); a prompt with no answer among its first k scores 0.
    """
    if len(answers) != len(correct):
        raise ValueError("answers and correct differ in length")
    if not 1 <= k <= len(answers):
        raise ValueError(f"need 1 <= k <= n, got k={k}, n={len(answers)}")
    winner = majority_vote(answers[:k])
    return float(winner is not None and bool(correct[winner]))


def valid_ks(ks: Sequence[int], n: int) -> list[int]:
    """The requested k values a run with n samples per prompt can report."""
    return sorted({k for k in ks if 1 <= k <= n})
