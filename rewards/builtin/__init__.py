"""Built-in rewards; importing this package registers them (math, math_steps, format, code, if, tool,
reward_model, judge, by_type)."""
from . import by_type, code, format, ifeval, judge, math, math_steps, reward_model, tool  # noqa: F401
