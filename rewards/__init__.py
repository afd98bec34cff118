"""reforge rewards: the plugin API (register, resolve, run safely, combine, pool) and the
built-in rewards. The RewardFn contract is in `registry.py`; where rewards sit among the roles, docs/architecture.md."""
from .combine import BatchScores, CombinedReward, RewardComponent, parse_components
from .metrics import RewardMetrics
from .pool import RewardPool
from .registry import ENTRY_POINT_GROUP, RewardFn, get_reward, registered, reward
from .runner import RewardRunner
from .sample import RewardResult, RewardSample

__all__ = ["BatchScores", "CombinedReward", "ENTRY_POINT_GROUP", "RewardComponent",
           "RewardFn", "RewardMetrics", "RewardPool", "RewardResult", "RewardRunner",
           "RewardSample", "get_reward", "parse_components", "registered", "reward"]
