"""GRPO config keys that are checked before any actor starts."""
import pytest

from core.config import ConfigError, load_config
from rl.config import GRPOConfig


def test_generator_dtype_is_float32_or_bfloat16_and_a_wrong_one_names_the_key():
    assert load_config(GRPOConfig, None, ["generator.dtype=bfloat16"]).generator.dtype == "bfloat16"
    with pytest.raises(ConfigError, match="generator.dtype"):
        load_config(GRPOConfig, None, ["generator.dtype=fp8"])


def test_an_environment_needs_the_single_turn_prefilter_off_and_an_unknown_one_names_the_key():
    cfg = load_config(GRPOConfig, None, ["environment.name=tools", "filter.enabled=false"])
    assert cfg.environment.name == "tools" and cfg.environment.tools == ["calculator"]
    with pytest.raises(ConfigError, match="filter.enabled"):
        load_config(GRPOConfig, None, ["environment.name=tools"])
    with pytest.raises(ConfigError, match="environment.max_turns"):
        load_config(GRPOConfig, None, ["environment.name=tools", "filter.enabled=false", "environment.max_turns=0"])
