"""reforge rewards: the plugin API (register, resolve, run safely, combine, pool) and the
built-in rewards. See DESIGN.md "Roles and their interfaces" for the RewardFn contract."""
from .combine import BatchScores, CombinedReward, RewardComponent, parse_components
from .metrics import RewardMetrics
from .pool import RewardPool
from .registry import ENTRY_POINT_GROUP, RewardFn, get_reward, registered, reward
from .runner import RewardRunner
from .sample import RewardResult, RewardSample

__all__ = ["BatchScores", "CombinedReward", "ENTRY_POINT_GROUP", "RewardComponent",
           "RewardFn", "RewardMetrics", "RewardPool", "RewardResult", "RewardRunner",
           "RewardSample", "get_reward", "parse_components", "registered", "reward"]
