"""pass@k against brute-force enumeration; cons@k and mean@n on constructed cases."""
from __future__ import annotations

import itertools
import math

import pytest

from evaluation.metrics import cons_at_k, majority_vote, mean_at_n, pass_at_k, valid_ks


def brute_pass_at_k(outcomes: list[bool], k: int) -> float:
    """Fraction of all k-subsets of the samples that contain a correct one."""
    subsets = list(itertools.combinations(outcomes, k))
    return sum(any(s) for s in subsets) / len(subsets)


@pytest.mark.parametrize("n", [1, 2, 5, 8, 10])
def test_pass_at_k_equals_enumeration(n):
    for c in range(n + 1):
        outcomes = [True] * c + [False] * (n - c)
        for k in range(1, n + 1):
            assert pass_at_k(n, c, k) == pytest.approx(brute_pass_at_k(outcomes, k), abs=1e-12)


def test_pass_at_k_closed_forms():
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)  # pass@1 is the fraction correct
    assert pass_at_k(4, 1, 2) == pytest.approx(0.5)  # 3 of the 6 pairs hold the correct one
    assert pass_at_k(8, 0, 8) == 0.0
    assert pass_at_k(8, 1, 8) == 1.0


def test_pass_at_k_is_stable_for_large_n():
    # C(1000, 500) overflows a float; the product form stays exact.
    exact = 1 - math.comb(1000 - 7, 500) / math.comb(1000, 500)
    assert pass_at_k(1000, 7, 500) == pytest.approx(exact, rel=1e-12)
    assert 0.99 < pass_at_k(1000, 7, 500) < 1.0


def test_pass_at_k_rejects_bad_arguments():
    with pytest.raises(ValueError):
        pass_at_k(4, 5, 1)
    with pytest.raises(ValueError):
        pass_at_k(4, 1, 5)


def test_mean_at_n():
    assert mean_at_n([1, 0, 1, 1]) == 0.75
    assert mean_at_n([0.5]) == 0.5
    with pytest.raises(ValueError):
        mean_at_n([])


def test_majority_vote_ties_and_abstentions():
    assert majority_vote(["3", "4", "4", "3"]) == 0  # tie: the answer seen first wins
    assert majority_vote([None, "7", None, "8", "8"]) == 3
    assert majority_vote([None, None]) is None


def test_cons_at_k_constructed_cases():
    answers = ["12", "12", "7", "7", "7", None]
    correct = [True, True, False, False, False, False]
    assert cons_at_k(answers, correct, 1) == 1.0
    assert cons_at_k(answers, correct, 2) == 1.0
    assert cons_at_k(answers, correct, 4) == 1.0  # 2-2 tie, "12" came first
    assert cons_at_k(answers, correct, 5) == 0.0  # "7" has the majority
    assert cons_at_k(answers, correct, 6) == 0.0  # None does not vote
    # A correct minority loses even though pass@k would count it.
    assert cons_at_k(["1", "2", "2"], [True, False, False], 3) == 0.0
    assert cons_at_k([None, None], [False, False], 2) == 0.0
    with pytest.raises(ValueError):
        cons_at_k(["1"], [True], 2)


def test_valid_ks():
    assert valid_ks([1, 4, 8, 16], 8) == [1, 4, 8]
    assert valid_ks([16, 1, 1], 1) == [1]
