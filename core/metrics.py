"""Metrics a person can plot, and a one-line progress status per step.

Every record goes to `metrics.jsonl` (one JSON object per step) and TensorBoard; W&B and
MLflow receive the same scalars when configured and importable.
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class LoggingConfig:
    """Where metrics go besides metrics.jsonl and TensorBoard."""

    tensorboard: bool = field(default=True, metadata={"help": (
        "also write TensorBoard event files in the run directory")})
    wandb_project: str | None = field(default=None, metadata={"help": (
        "log to this Weights & Biases project (null = off)")})
    mlflow_experiment: str | None = field(default=None, metadata={"help": "log to this MLflow experiment (null = off)"})


class MetricsWriter:
    def __init__(self, run_dir: str | Path, cfg: LoggingConfig = LoggingConfig(), filename: str = "metrics.jsonl"):
        self.path = Path(run_dir) / filename
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("a", encoding="utf-8")
        self._tb = None
        self._wandb = None
        self._mlflow = None
        if cfg.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(Path(run_dir) / "tensorboard"))
        if cfg.wandb_project:
            import wandb

            self._wandb = wandb.init(project=cfg.wandb_project, dir=str(run_dir))
        if cfg.mlflow_experiment:
            import mlflow

            mlflow.set_experiment(cfg.mlflow_experiment)
            mlflow.start_run()
            self._mlflow = mlflow

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        record = {"step": step, "time": time.time(), **metrics}
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        scalars = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        if self._tb is not None:
            for k, v in scalars.items():
                self._tb.add_scalar(k, v, step)
        if self._wandb is not None:
            self._wandb.log(scalars, step=step)
        if self._mlflow is not None:
            self._mlflow.log_metrics(scalars, step=step)

    def close(self) -> None:
        self._file.close()
        if self._tb is not None:
            self._tb.close()
        if self._wandb is not None:
            self._wandb.finish()
        if self._mlflow is not None:
            self._mlflow.end_run()


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    with Path(path).open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


class Progress:
    """One line per step: `[name] step 3/40 (7%) loss=1.23 ... | 12.3s, eta 2m`."""

    def __init__(self, name: str, total: int, stream=None):
        self.name, self.total = name, total
        self.stream = stream or sys.stderr
        self.start = time.time()

    def update(self, step: int, **values: Any) -> None:
        elapsed = time.time() - self.start
        done = max(step, 1)
        eta = elapsed / done * max(self.total - step, 0)
        kv = " ".join(f"{k}={_fmt(v)}" for k, v in values.items())
        pct = 100 * step / max(self.total, 1)
        print(f"[{self.name}] step {step}/{self.total} ({pct:.0f}%) {kv} | {elapsed:.1f}s, eta {eta:.0f}s",
              file=self.stream, flush=True)
