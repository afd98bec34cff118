"""The rewards package's scorer, shared by the evaluation tests."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def scorer():
    from evaluation.scoring import RewardScorer

    return RewardScorer()
