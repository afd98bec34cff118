"""GRPO config keys that are checked before any actor starts."""
import pytest

from core.config import ConfigError, load_config
from rl.config import GRPOConfig


def test_generator_dtype_is_float32_or_bfloat16_and_a_wrong_one_names_the_key():
    assert load_config(GRPOConfig, None, ["generator.dtype=bfloat16"]).generator.dtype == "bfloat16"
    with pytest.raises(ConfigError, match="generator.dtype"):
        load_config(GRPOConfig, None, ["generator.dtype=fp8"])
