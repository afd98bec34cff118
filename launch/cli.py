"""`reforge launch slurm ...` and `reforge launch k8s ...` (registered through the
`reforge.cli` entry-point group; `python -m launch.cli slurm|k8s ...` runs the same commands)."""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import yaml

from .recipe_config import ROOT, RecipeConfigError, resolve_recipe_config


def _recipe_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recipe", nargs="?", help="e.g. recipes/ultra_grpo.py (a path inside the repository)")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="the recipe's config=FILE and key=value overrides")
    parser.add_argument("--no-check-config", action="store_true",
                        help="skip resolving the recipe's config here before submitting")


def _checked_config(args: argparse.Namespace) -> dict:
    if args.no_check_config:
        return {}
    try:
        return resolve_recipe_config(args.recipe, args.args)
    except RecipeConfigError as e:
        raise SystemExit(f"reforge launch: {args.recipe}: {e}") from e


def _cmd_slurm(args: argparse.Namespace) -> int:
    from .slurm.sbatch import SlurmJob

    if bool(args.recipe) == bool(args.command):
        raise SystemExit("reforge launch slurm: give a recipe (and its arguments) or --command, not both")
    if args.recipe:
        _checked_config(args)
        command = shlex.join(["python", args.recipe, *args.args])
    else:
        command = args.command
    job = SlurmJob(command=command, workdir=str(ROOT), nodes=args.nodes, cpus_per_node=args.cpus_per_node,
                   gpus_per_node=args.gpus_per_node, partition=args.partition, account=args.account, time=args.time,
                   job_name=args.job_name, exclusive=args.exclusive,
                   job_dir=str(Path(args.job_dir).resolve()) if args.job_dir else "",
                   container_image=args.container_image, container_mounts=args.container_mounts,
                   head_resources=args.head_resources, worker_resources=args.worker_resources,
                   venv_bin=args.venv_bin, wait=args.wait, extra_sbatch=args.sbatch_arg)
    print(job.shell(), flush=True)
    return 0 if args.dry_run else job.submit()


def _command_line(args: argparse.Namespace) -> str:
    """`reforge launch k8s` with the options that differ from their defaults: the line that
    re-renders a manifest (written at its top; the tests re-run it on the shipped ones)."""
    words = ["reforge", "launch", "k8s"]
    for action in args.parser._actions:
        value = getattr(args, action.dest, None)
        if not action.option_strings or action.dest in ("help", "output", "validate") or value == action.default:
            continue
        words += [action.option_strings[-1]] + ([] if isinstance(action, argparse._StoreTrueAction) else [str(value)])
    return shlex.join(words + [args.recipe, *args.args])


def _cmd_k8s(args: argparse.Namespace) -> int:
    from .k8s.render import Shape, raycluster, rayjob
    from .k8s.validate import validate_file, validate_manifest

    if args.validate:
        problems = [p for f in args.validate for p in validate_file(f)]
        print("\n".join(problems) if problems else f"ok: {len(args.validate)} file(s) pass the KubeRay v1.7.0 checks",
              file=sys.stderr if problems else sys.stdout)
        return 1 if problems else 0
    if not args.recipe or not args.name or not args.image:
        raise SystemExit("reforge launch k8s: give --validate FILE..., or --name, --image and a recipe to render")
    cfg = _checked_config(args)
    shape = Shape(name=args.name, image=args.image, ray_version=args.ray_version, head_cpus=args.head_cpus,
                  head_memory=args.head_memory, head_schedules_work=not args.head_no_work, workers=args.workers,
                  worker_cpus=args.worker_cpus, worker_memory=args.worker_memory,
                  gpus_per_worker=args.gpus_per_worker, gpus=args.gpus, shm=args.shm, data_pvc=args.data_pvc)
    doc = rayjob(shape, args.recipe, args.args, cfg) if args.kind == "rayjob" else raycluster(shape, cfg)
    problems = validate_manifest(doc)
    if problems:
        print("\n".join(f"rendered manifest: {p}" for p in problems), file=sys.stderr)
        return 1
    text = f"# Rendered by: {_command_line(args)}\n" + yaml.safe_dump(doc, sort_keys=False, width=120)
    if args.output:
        Path(args.output).write_text(text)
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def register_launch(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("launch", help="run a recipe on a Ray cluster: Slurm, Kubernetes (KubeRay)")
    sub = parser.add_subparsers(dest="launch_command", required=True)

    s = sub.add_parser("slurm", help="submit a recipe as a Ray job inside one Slurm allocation (sbatch)",
                       description="Fills launch/slurm/ray_cluster.sbatch and submits it; options go before the recipe.")
    s.add_argument("--nodes", type=int, default=2)
    s.add_argument("--cpus-per-node", type=int, default=0, help="0: Slurm's allocation (use --exclusive)")
    s.add_argument("--gpus-per-node", type=int, default=0)
    s.add_argument("--partition", default="")
    s.add_argument("--account", default="")
    s.add_argument("--time", default="", help="time limit, e.g. 04:00:00")
    s.add_argument("--job-name", default="reforge-ray")
    s.add_argument("--exclusive", action="store_true", help="whole nodes (recommended: Ray's ports are fixed)")
    s.add_argument("--job-dir", default="", help="logs, token and records (shared filesystem)")
    s.add_argument("--container-image", default="", help="pyxis/enroot image for every step")
    s.add_argument("--container-mounts", default="", help="pyxis mounts, e.g. /lustre:/lustre")
    s.add_argument("--head-resources", default="", help='JSON custom resources of the head, e.g. {"rollout": 1}')
    s.add_argument("--worker-resources", default="", help="JSON custom resources of each worker node")
    s.add_argument("--venv-bin", default="", help="bin directory with ray/python on every node")
    s.add_argument("--sbatch-arg", action="append", default=[], help="extra sbatch flag (repeatable)")
    s.add_argument("--command", default="", help="a shell command instead of a recipe")
    s.add_argument("--wait", action="store_true", help="wait and return the job's exit code")
    s.add_argument("--dry-run", action="store_true", help="print the submission, do not submit")
    _recipe_args(s)
    s.set_defaults(func=_cmd_slurm)

    k = sub.add_parser("k8s", help="render a KubeRay RayJob/RayCluster for a recipe, or --validate manifests",
                       description="Options go before the recipe. The manifest is validated before it is written.")
    k.add_argument("--validate", nargs="+", metavar="FILE", help="check manifests (strict CRD schema, KubeRay "
                                                                  "admission rules, rayStartParams) and exit")
    k.add_argument("--kind", choices=("rayjob", "raycluster"), default="rayjob")
    k.add_argument("--name", help="metadata.name (a DNS-1035 label)")
    k.add_argument("--image", help="an image with the repository at /workspace/reforge, reforge installed")
    k.add_argument("--ray-version", default="2.60.0", help="the image's Ray version")
    k.add_argument("--head-cpus", default="4")
    k.add_argument("--head-memory", default="16Gi")
    k.add_argument("--head-no-work", action="store_true", help="num-cpus 0 on the head: actors go to workers")
    k.add_argument("--workers", type=int, default=1, help="CPU worker pods (GPU configs are sized from the config)")
    k.add_argument("--worker-cpus", default="8")
    k.add_argument("--worker-memory", default="32Gi")
    k.add_argument("--gpus-per-worker", type=int, default=8)
    k.add_argument("--gpus", type=int, default=-1, help="GPUs in all (default: what the config asks for)")
    k.add_argument("--shm", default="8Gi", help="/dev/shm size per pod")
    k.add_argument("--data-pvc", default="", help="ReadWriteMany claim mounted at /data (models, data, runs)")
    k.add_argument("-o", "--output", help="write here instead of stdout")
    _recipe_args(k)
    k.set_defaults(func=_cmd_k8s, parser=k)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="reforge")
    register_launch(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["launch", *(sys.argv[1:] if argv is None else argv)])
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
