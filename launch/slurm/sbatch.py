"""The sbatch command line and environment for ray_cluster.sbatch, from launcher options.

The script reads its settings from the environment (sbatch exports the caller's by
default), so values with commas or quotes, such as a recipe override `eval.modes=[on,off]`,
travel intact where `--export=VAR=...` would split them.
"""
from __future__ import annotations

import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent / "ray_cluster.sbatch"


@dataclass
class SlurmJob:
    """One Ray-on-Slurm job: the allocation and the command run on the cluster."""

    command: str  # shell command run from the working directory as the Ray job
    workdir: str  # shipped with the job (`ray job submit --working-dir`)
    nodes: int = 2
    cpus_per_node: int = 0  # 0 = whatever Slurm allocates (then --exclusive is advised)
    gpus_per_node: int = 0  # requested with --gpus-per-node and given to `ray start --num-gpus`
    partition: str = ""
    account: str = ""
    time: str = ""  # Slurm time limit, e.g. "04:00:00"
    job_name: str = "reforge-ray"
    exclusive: bool = False
    job_dir: str = ""  # default: WORKDIR/runs/slurm-JOBID
    container_image: str = ""  # pyxis/enroot: every srun step runs in this image
    container_mounts: str = ""  # pyxis --container-mounts, e.g. "/lustre:/lustre"
    head_resources: str = ""  # JSON custom resources for `ray start` on the head / the workers
    worker_resources: str = ""
    venv_bin: str = ""
    wait: bool = False  # sbatch --wait: return the job's exit code
    extra_sbatch: list[str] = field(default_factory=list)

    def argv(self) -> list[str]:
        a = ["sbatch", f"--nodes={self.nodes}", "--ntasks-per-node=1", f"--job-name={self.job_name}"]
        if self.cpus_per_node:
            a.append(f"--cpus-per-task={self.cpus_per_node}")
        if self.gpus_per_node:
            a.append(f"--gpus-per-node={self.gpus_per_node}")
        a += [f"--{k}={v}" for k, v in (("partition", self.partition), ("account", self.account),
                                          ("time", self.time)) if v]
        if self.exclusive:
            a.append("--exclusive")
        if self.job_dir:
            a.append(f"--output={self.job_dir}/sbatch-%j.out")
        if self.wait:
            a.append("--wait")
        return a + self.extra_sbatch + [str(SCRIPT)]

    def env(self) -> dict[str, str]:
        srun = []
        if self.container_image:
            srun.append(f"--container-image={self.container_image}")
            if self.container_mounts:
                srun.append(f"--container-mounts={self.container_mounts}")
        values = {"REFORGE_ENTRYPOINT": self.command, "REFORGE_WORKDIR": self.workdir,
                  "REFORGE_JOB_DIR": self.job_dir, "REFORGE_VENV_BIN": self.venv_bin,
                  "REFORGE_CPUS_PER_NODE": str(self.cpus_per_node or ""),
                  "REFORGE_GPUS_PER_NODE": str(self.gpus_per_node or ""),
                  "REFORGE_RAY_HEAD_RESOURCES": self.head_resources,
                  "REFORGE_RAY_WORKER_RESOURCES": self.worker_resources, "REFORGE_SRUN_ARGS": shlex.join(srun)}
        return {k: v for k, v in values.items() if v}

    def shell(self) -> str:
        """The same submission as one copy-pasteable shell line."""
        return " ".join([*(f"{k}={shlex.quote(v)}" for k, v in self.env().items()), shlex.join(self.argv())])

    def submit(self) -> int:
        import subprocess

        if self.job_dir:
            Path(self.job_dir).mkdir(parents=True, exist_ok=True)
        return subprocess.run(self.argv(), env={**os.environ, **self.env()}, cwd=self.workdir).returncode
