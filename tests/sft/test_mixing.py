from pathlib import Path

from core.config import load_config
from core.data.synth import code_rows, math_rows
from sft.config import SFTConfig
from sft.mixing import DomainMix, MixConfig, mix, prompt_key

CONFIGS = Path(__file__).resolve().parents[2] / "recipes" / "configs"


def _rows():
    return math_rows(40, seed=1) + code_rows(10, seed=1)  # 80 math rows, 20 code rows


def test_domain_weights_and_on_fraction():
    cfg = MixConfig(num_samples=60, domains={"math": DomainMix(2.0, 0.25), "code": DomainMix(1.0, 1.0)})
    out, counts = mix(_rows(), cfg)
    assert counts == {"math": {"on": 10, "off": 30}, "code": {"on": 20, "off": 0}}
    assert len(out) == 60
    assert sum(r["reasoning"] == "on" and r["reward"]["type"] == "code" for r in out) == 20


def test_paired_off_samples_reuse_the_on_prompts():
    cfg = MixConfig(num_samples=40, domains={"math": DomainMix(1.0, 0.5)}, paired=True)
    out, _ = mix(_rows(), cfg)
    on = {prompt_key(r) for r in out if r["reasoning"] == "on"}
    off = {prompt_key(r) for r in out if r["reasoning"] == "off"}
    assert len(on) == 20 and on == off
    unpaired, _ = mix(_rows(), MixConfig(num_samples=40, domains={"math": DomainMix(1.0, 0.5)}, paired=False))
    on_u = {prompt_key(r) for r in unpaired if r["reasoning"] == "on"}
    off_u = {prompt_key(r) for r in unpaired if r["reasoning"] == "off"}
    assert len(on_u & off_u) < 20


def test_upsampling_repeats_a_small_domain():
    out, counts = mix(_rows(), MixConfig(num_samples=100, domains={"code": DomainMix(1.0, 0.5)}))
    assert counts["code"] == {"on": 50, "off": 50}
    assert len({r["id"] for r in out}) == 20  # every code row, repeated


def test_table2_mix_renormalises_over_present_domains():
    cfg = load_config(SFTConfig, CONFIGS / "sft_nano_stage2.yaml")
    assert cfg.data.mix.domains["science"].on_fraction == 1.0
    mixcfg = cfg.data.mix
    mixcfg.num_samples = 1000
    _, counts = mix(math_rows(500, seed=2) + code_rows(100, seed=2), mixcfg)
    math_n = sum(counts["math"].values())
    code_n = sum(counts["code"].values())
    assert math_n + code_n == 1000
    assert abs(math_n / 1000 - 22066397 / (22066397 + 10108883)) < 0.002
    assert counts["math"]["on"] == round(math_n * 0.10085)
    assert counts["science"] == {"on": 0, "off": 0}


def test_every_shipped_sft_config_loads():
    paths = sorted(CONFIGS.glob("sft_*.yaml")) + sorted(CONFIGS.glob("nano_sft*.yaml"))
    assert len(paths) >= 6
    for p in paths:  # the real-scale examples leave the checkpoint to the user (`model.base: ???`)
        cfg = load_config(SFTConfig, p, ["model.base=/models/user-checkpoint"])
        assert cfg.train.backend in ("none", "fsdp2", "deepspeed")
    assert load_config(SFTConfig, CONFIGS / "nano_sft_tiny.yaml") == SFTConfig()
