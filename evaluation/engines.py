"""The generator an evaluation uses: one in-process engine, or engines in Ray actors.

In-process is right for one machine (start-up in seconds, no copies). For large runs
`num_engines > 1` starts that many engine actors (core.engines.group, the same group RL
generates with) and splits every request list between them; requests carry their own
seed, so the split does not change the samples.
"""
from __future__ import annotations

from core.engines.factory import EngineSettings, make_engine as make_local_engine
from evaluation.config import EvalConfig


def engine_settings(cfg: EvalConfig) -> EngineSettings:
    return EngineSettings(engine=cfg.engine, max_model_len=cfg.max_model_len, kv_cache_gib=cfg.kv_cache_gib)


def make_engine(cfg: EvalConfig):
    if cfg.num_engines <= 1:
        return make_local_engine(cfg.model, engine_settings(cfg), seed=cfg.seed)
    import ray

    from core.engines.group import EngineGroup

    if not ray.is_initialized():
        ray.init(include_dashboard=False)
    return EngineGroup(cfg.model, engine_settings(cfg), num_engines=cfg.num_engines, seed=cfg.seed)
