"""engine: auto | vllm | hf. With vLLM made unimportable (a meta-path blocker installed by
sitecustomize, inherited by Ray's workers), `vllm` is an error everywhere an engine is
built, and `auto` is the HF engine; with vLLM present, `auto` is vLLM."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from core.config import ConfigError, load_config
from core.engines.factory import EngineSettings, resolve_engine

REPO = Path(__file__).resolve().parents[2]

BLOCKER = textwrap.dedent('''
    import sys

    class _NoVLLM:
        """Every `import vllm...` fails, as on a machine without vLLM."""

        def find_spec(self, name, path=None, target=None):
            if name == "vllm" or name.startswith("vllm."):
                raise ModuleNotFoundError(f"No module named {name!r}")
            return None

    sys.meta_path.insert(0, _NoVLLM())
''')

WITHOUT_VLLM = textwrap.dedent('''
    import sys

    import ray

    from core.engines.base import SamplingSettings
    from core.engines.factory import EngineSettings, EngineUnavailableError, make_engine, resolve_engine
    from core.engines.hf_engine import HFEngine
    from core.engines.group import EngineGroup
    from evaluation.config import EvalConfig
    from evaluation.engines import make_engine as eval_engine

    model = sys.argv[1]
    try:
        import vllm  # noqa: F401
        raise SystemExit("the blocker did not block vllm")
    except ImportError:
        pass
    assert resolve_engine("auto") == "hf" and resolve_engine("hf") == "hf"
    for build in (lambda: make_engine(model, EngineSettings(engine="vllm")),
                  lambda: eval_engine(EvalConfig(model=model, engine="vllm"))):
        try:
            build()
            raise SystemExit("engine: vllm without vLLM built an engine")
        except EngineUnavailableError as err:
            assert "engine: vllm" in str(err) and "engine: auto" in str(err), err
    engine = make_engine(model, EngineSettings(engine="auto"))
    assert isinstance(engine, HFEngine)
    assert len(engine.generate([[1, 5, 9]], SamplingSettings(temperature=0.0, max_tokens=3))[0].token_ids) >= 1

    # RL's generator actors: the error comes from the actor, with its message
    ray.init(num_cpus=1, include_dashboard=False)
    try:
        try:
            EngineGroup(model, EngineSettings(engine="vllm"))
            raise SystemExit("a vllm generator group started without vLLM")
        except Exception as err:  # Ray wraps the actor's constructor error
            assert "vLLM does not import" in str(err), err
        assert EngineGroup(model, EngineSettings(engine="auto")).kind == "hf"
    finally:
        ray.shutdown()
    print("OK")
''')


def test_vllm_requested_without_vllm_is_an_error(tiny_model_dir, tmp_path):
    (tmp_path / "blocker").mkdir()
    (tmp_path / "blocker" / "sitecustomize.py").write_text(BLOCKER)
    script = tmp_path / "without_vllm.py"
    script.write_text(WITHOUT_VLLM)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path / "blocker"), str(REPO)]))
    out = subprocess.run([sys.executable, str(script), tiny_model_dir], env=env, capture_output=True, text=True,
                         timeout=300, cwd=tmp_path)
    assert out.returncode == 0 and out.stdout.strip().endswith("OK"), out.stdout[-2000:] + out.stderr[-4000:]


def test_auto_is_vllm_where_it_imports():
    pytest.importorskip("vllm")
    assert resolve_engine("auto") == "vllm" and resolve_engine("vllm") == "vllm"


def test_engine_settings_are_checked_with_their_key(tmp_path):
    from rl.config import GRPOConfig

    with pytest.raises(ValueError, match="key 'engine'"):
        EngineSettings(engine="vllm-cpu")
    with pytest.raises(ConfigError, match="generator.engine"):
        load_config(GRPOConfig, overrides=["generator.engine=tensorrt"])


ONE_CORE = textwrap.dedent("""
    import sys
    import torch
    from core.engines.factory import EngineSettings, make_engine
    engine = make_engine(sys.argv[1], EngineSettings(engine="vllm", max_model_len=256, cpu_threads="0"))
    text = engine.llm.generate(["1 + 1 ="], use_tqdm=False)[0].outputs[0].text
    print("threads", torch.get_num_threads(), len(text) > 0)
""")


def test_vllm_cpu_threads_binds_an_in_process_engine(tiny_model_dir, tmp_path):
    """cpu_threads "0" means one OpenMP thread for an in-process vLLM-CPU engine (vLLM's own
    binding reaches only worker processes it spawns; before, a second thread spun on the
    other core and doubled the serving process's CPU time)."""
    pytest.importorskip("vllm")
    script = tmp_path / "one_core.py"
    script.write_text(ONE_CORE)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    env.pop("VLLM_CPU_OMP_THREADS_BIND", None)
    out = subprocess.run([sys.executable, str(script), tiny_model_dir], env=env, capture_output=True, text=True,
                         timeout=300, cwd=tmp_path)
    assert out.returncode == 0 and "threads 1 True" in out.stdout, out.stdout[-2000:] + out.stderr[-4000:]


def test_core_ids_of_a_binding():
    from core.engines.vllm_engine import _core_ids

    assert _core_ids("0") == [0] and _core_ids("0-3") == [0, 1, 2, 3] and _core_ids("0, 2-3") == [0, 2, 3]
