from dataclasses import dataclass, field

import pytest

from core.config import MISSING, ConfigError, load_config, parse_cli, to_yaml


@dataclass
class Optim:
    lr: float = 1e-3
    steps: int = 10


@dataclass
class Cfg:
    name: str = MISSING
    optim: Optim = field(default_factory=Optim)
    modes: list[str] = field(default_factory=lambda: ["on", "off"])


def test_overrides_apply_over_file(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("name: base\noptim:\n  lr: 0.5\n")
    cfg = load_config(Cfg, f, ["optim.steps=7", "modes=[on]"])
    assert cfg == Cfg(name="base", optim=Optim(lr=0.5, steps=7), modes=["on"])


def test_unknown_key_names_key_and_file(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("name: x\noptim:\n  stepz: 3\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: key 'optim\.stepz'"):
        load_config(Cfg, f)


def test_wrong_type_names_key():
    with pytest.raises(ConfigError, match=r"key 'optim\.steps'.*Integer"):
        load_config(Cfg, None, ["name=a", "optim.steps=abc"])


def test_missing_required_value_names_key(tmp_path):
    f = tmp_path / "empty.yaml"
    f.write_text("optim:\n  lr: 0.1\n")
    with pytest.raises(ConfigError, match=r"empty\.yaml: key 'name': required value is missing"):
        load_config(Cfg, f)


def test_yaml_round_trip(tmp_path):
    cfg = load_config(Cfg, None, ["name=rt", "optim.lr=0.25"])
    f = tmp_path / "rt.yaml"
    f.write_text(to_yaml(cfg))
    assert load_config(Cfg, f) == cfg


def test_cli_exits_nonzero_before_work(capsys):
    with pytest.raises(SystemExit) as e:
        parse_cli(Cfg, ["name=a", "nope=1"], prog="recipe")
    assert e.value.code == 2
    assert "key 'nope'" in capsys.readouterr().err


def test_cli_show_config_lists_every_setting(capsys):
    with pytest.raises(SystemExit) as e:
        parse_cli(Cfg, ["name=a", "--show-config"], prog="recipe")
    assert e.value.code == 0
    out = capsys.readouterr().out
    for key in ("name: a", "lr: 0.001", "steps: 10", "modes:"):
        assert key in out


def test_file_placeholder_marks_a_value_required(tmp_path):
    f = tmp_path / "scale.yaml"
    f.write_text("name: ???\noptim:\n  lr: 0.1\n")
    with pytest.raises(ConfigError, match=r"scale\.yaml: key 'name': required value is missing"):
        load_config(Cfg, f)
    assert load_config(Cfg, f, ["name=given"]).name == "given"


@dataclass
class Choosy:
    mode: str = "a"

    def __post_init__(self):
        from core.config import check_choice

        check_choice("mode", self.mode, ("a", "b"))


def test_schema_validation_names_key_and_source(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("mode: z\n")
    with pytest.raises(ConfigError, match=r"c\.yaml: key 'mode': 'z' is not one of \['a', 'b'\]"):
        load_config(Choosy, f)


def test_bad_override_is_named_not_the_file(tmp_path):
    """The file is fine; the bad value came from the command line, so the error names the override."""
    f = tmp_path / "c.yaml"
    f.write_text("mode: a\n")
    with pytest.raises(ConfigError, match=r"^command-line override 'mode=z': key 'mode': 'z' is not one of"):
        load_config(Choosy, f, ["mode=z"])
    with pytest.raises(ConfigError, match=r"^command-line override 'optim\.steps=abc': key 'optim\.steps'"):
        load_config(Cfg, None, ["name=a", "optim.steps=abc"])
    with pytest.raises(ConfigError, match=r"^command-line override 'optim\.stepz=3': key 'optim\.stepz'"):
        load_config(Cfg, None, ["name=a", "optim.stepz=3"])
    with pytest.raises(ConfigError, match=r"^command-line override 'name=\?\?\?': key 'name': required"):
        load_config(Cfg, None, ["name=???"])


def test_bad_file_value_still_names_the_file_next_to_overrides(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("mode: z\n")
    with pytest.raises(ConfigError, match=r"c\.yaml: key 'mode': 'z' is not one of"):
        load_config(Choosy, f, [])
    g = tmp_path / "n.yaml"
    g.write_text("optim:\n  lr: 0.1\n")
    with pytest.raises(ConfigError, match=r"n\.yaml: key 'name': required value is missing"):
        load_config(Cfg, g, ["optim.steps=3"])
