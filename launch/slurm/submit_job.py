"""Run one command as a Ray job, stream its log, and exit with the command's own exit code.

`ray job submit` exits 1 for any failed job; a batch system needs the entrypoint's code.
This submits through the Jobs API (the working directory travels with the job), tails the
log to stdout, stops the job if this process is terminated (scancel, time limit), records
where every actor ran (`ray_actors.json`, for post-mortems and placement checks), and
exits with the driver's exit code. Only Ray is imported, so it runs wherever `ray` does.

    python submit_job.py --address http://HEAD:8265 --working-dir DIR --job-dir DIR -- CMD...
"""
from __future__ import annotations

import argparse
import asyncio
import json
import shlex
import signal
import sys
import time
from pathlib import Path

# Not shipped with the job: the venv, runs and checkpoints, version control.
EXCLUDES = [".venv/", ".git/", "runs/", "artifacts/", "__pycache__/", "*.egg-info/"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--address", required=True, help="the Jobs API, http://HEAD_IP:DASHBOARD_PORT")
    p.add_argument("--working-dir", required=True, help="shipped with the job; the command runs inside it")
    p.add_argument("--job-dir", required=True, help="where ray_actors.json is written")
    p.add_argument("--submission-id", default="", help="the Ray job's id (default: generated)")
    p.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="set in the job's environment")
    p.add_argument("command", nargs=argparse.REMAINDER, help="after --: the shell command to run")
    args = p.parse_args(argv)
    args.command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not args.command:
        p.error("no command given after --")
    return args


def record_placement(address: str, job_dir: Path) -> None:
    """Actor class, state and node address for every actor the cluster ran."""
    from ray.util.state import list_actors, list_nodes

    ips = {n.node_id: n.node_ip for n in list_nodes(address=address, limit=10_000, raise_on_missing_output=False)}
    actors = [{"class_name": a.class_name, "state": a.state, "node_ip": ips.get(a.node_id, ""), "node_id": a.node_id}
              for a in list_actors(address=address, limit=10_000, detail=True, raise_on_missing_output=False)]
    (job_dir / "ray_actors.json").write_text(json.dumps(actors, indent=1))


async def _tail(client, job_id: str) -> None:
    async for lines in client.tail_job_logs(job_id):
        sys.stdout.write(lines)
        sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    from ray.job_submission import JobStatus, JobSubmissionClient

    args = parse_args(argv)
    client = JobSubmissionClient(args.address)
    env = dict(kv.split("=", 1) for kv in args.env)
    command = args.command[0] if len(args.command) == 1 else shlex.join(args.command)  # one word = a shell line
    job_id = client.submit_job(entrypoint=command, submission_id=args.submission_id or None,
                               runtime_env={"working_dir": args.working_dir, "excludes": EXCLUDES, "env_vars": env})
    print(f"[submit_job] submitted Ray job {job_id} to {args.address}", flush=True)

    def stop(signum, _frame):
        print(f"[submit_job] signal {signum}: stopping Ray job {job_id}", flush=True)
        client.stop_job(job_id)
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        asyncio.run(_tail(client, job_id))
    except Exception as e:  # the log stream is a convenience; the status below decides
        print(f"[submit_job] log stream ended: {e}", flush=True)
    while not (info := client.get_job_info(job_id)).status.is_terminal():
        time.sleep(1)
    try:
        record_placement(args.address, Path(args.job_dir))
    except Exception as e:  # a missing record must not turn a finished job into a failure
        print(f"[submit_job] could not record actor placement: {e}", flush=True)
    code = 0 if info.status == JobStatus.SUCCEEDED else (info.driver_exit_code or 1)
    print(f"[submit_job] Ray job {job_id} {info.status.value}; exit code {code}"
          + (f": {info.message}" if info.message and code else ""), flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
