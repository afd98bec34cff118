"""`reforge rewards ...` and `reforge sandbox ...` (registered through the `reforge.cli`
entry-point group; `python -m rewards.cli` runs the same commands without the main CLI)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def _json_arg(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"not JSON: {e}") from e
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("expected a JSON object")
    return value


def read_samples(path: str) -> list[Any]:
    """Rows (dataset schema + `completion`) from JSONL; a bad row stops with file:line."""
    from .sample import RewardSample

    samples = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                samples.append(RewardSample.from_json(json.loads(line), f"{Path(path).name}:{n}"))
            except ValueError as e:
                raise SystemExit(f"{path}:{n}: {e}") from e
    return samples


def _cmd_list(args: argparse.Namespace) -> int:
    from .registry import registered

    print("\n".join(registered()))
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    from .check import check_reward
    from .combine import RewardComponent

    component = RewardComponent(args.name, timeout_s=args.timeout, options=args.options)
    report = check_reward(component, read_samples(args.input) if args.input else None)
    print(json.dumps(report.to_dict()) if args.json else "\n".join(report.lines()))
    return 0 if report.ok else 1


def _cmd_score(args: argparse.Namespace) -> int:
    from .combine import CombinedReward, RewardComponent

    samples = read_samples(args.input)
    combined = CombinedReward([RewardComponent(args.name, timeout_s=args.timeout,
                                               options=args.options)], args.concurrency)
    scores = combined.score(samples)
    out = open(args.output, "w") if args.output else sys.stdout
    try:
        for sample, score, detail in zip(samples, scores.scores, scores.details):
            out.write(json.dumps({"id": sample.id, "score": score,
                                  "info": detail[args.name]["info"]}, default=str) + "\n")
    finally:
        if args.output:
            out.close()
    m = scores.metrics[args.name]
    print(f"scored {m.calls} rows with {args.name}: mean {m.mean:.4f}, failures {m.failures}, "
          f"timeouts {m.timeouts}", file=sys.stderr)
    return 0


def register_rewards(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("rewards", help="inspect, check and run reward functions")
    sub = parser.add_subparsers(dest="rewards_command", required=True)
    sub.add_parser("list", help="registered reward names").set_defaults(func=_cmd_list)

    check = sub.add_parser("check", help="conformance check of a reward (NAME or package.module:function)")
    check.add_argument("name")
    check.add_argument("--input", help="JSONL rows with a `completion` to use instead of canned samples")
    check.add_argument("--options", type=_json_arg, default={}, help="JSON keyword options")
    check.add_argument("--timeout", type=float, default=30.0, help="seconds per call")
    check.add_argument("--json", action="store_true", help="print the report as JSON")
    check.set_defaults(func=_cmd_check)

    score = sub.add_parser("score", help="score JSONL rows (dataset schema + `completion`)")
    score.add_argument("name")
    score.add_argument("--input", required=True)
    score.add_argument("--output", help="JSONL file (default: stdout)")
    score.add_argument("--options", type=_json_arg, default={}, help="JSON keyword options")
    score.add_argument("--timeout", type=float, default=30.0, help="seconds per call")
    score.add_argument("--concurrency", type=int, default=2)
    score.set_defaults(func=_cmd_score)


def _sandbox(args: argparse.Namespace) -> Any:
    from .sandbox import Limits, Sandbox, SandboxUnavailable

    limits = Limits(timeout_s=args.timeout, cpu_s=max(1, int(args.timeout)), memory_mb=args.memory_mb)
    try:
        return Sandbox(limits, backend=args.backend, allow_unisolated=args.allow_unisolated)
    except SandboxUnavailable as e:
        raise SystemExit(f"reforge sandbox: {e}") from e


def _cmd_sandbox_run(args: argparse.Namespace) -> int:
    code = Path(args.file).read_text()
    verdict = _sandbox(args).run(code)
    print(json.dumps(verdict.to_dict()))
    return 0 if verdict.ok else 1


def _cmd_sandbox_doctor(args: argparse.Namespace) -> int:
    from .sandbox import doctor
    from .sandbox.battery import BATTERY

    statuses = doctor.backend_statuses()
    chosen = doctor.selected(statuses)
    features = doctor.kernel_features()
    if not args.json:
        print("\n".join(doctor.feature_lines(features, statuses, chosen)), flush=True)
    names = ([s.name for s in statuses if s.contains] if args.backend == "all"
             else [args.backend or chosen] if (args.backend or chosen) else [])
    results: dict[str, Any] = {}
    ok = chosen is not None and chosen != "none"
    if not args.no_battery:
        for name in names:
            if not args.json:
                print(f"hostile battery on {name} ({len(BATTERY)} programs, live):", flush=True)
            report = None if args.json else (lambda o: print("  " + o.line(), flush=True))
            outcomes = doctor.battery_on(name, report)
            passed = sum(o.passed for o in outcomes)
            results[name] = {"programs": len(outcomes), "passed": passed,
                             "failed": [o.name for o in outcomes if not o.passed]}
            if not args.json:
                print(f"{name}: {passed}/{len(outcomes)} contained", flush=True)
            ok = ok and (passed == len(outcomes) or name == "none")
    if args.json:
        print(json.dumps({"features": features, "selected": chosen,
                          "backends": [vars(s) for s in statuses], "battery": results}))
    elif not ok:
        print("doctor: the sandbox cannot contain untrusted code here; install bubblewrap "
              "(sh launch/install_sandbox.sh) and run `reforge sandbox doctor` again")
    return 0 if ok else 1


def _cmd_sandbox_serve(args: argparse.Namespace) -> int:
    from .sandbox import SandboxServer

    server = SandboxServer(_sandbox(args), args.host, args.port, args.max_concurrency)
    print(f"reforge sandbox: serving on {server.url} (backend {server.sandbox.backend.name}, "
          f"{args.max_concurrency} at a time)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def register_sandbox(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("sandbox", help="run untrusted Python in the sandbox")
    sub = parser.add_subparsers(dest="sandbox_command", required=True)
    for name, helptext in (("run", "run FILE.py once and print a one-line JSON verdict"),
                           ("serve", "serve the sandbox over HTTP (POST /run)")):
        cmd = sub.add_parser(name, help=helptext)
        cmd.add_argument("--timeout", type=float, default=10.0, help="wall-clock seconds per run")
        cmd.add_argument("--memory-mb", type=int, default=512)
        cmd.add_argument("--backend", choices=["auto", "bwrap", "unshare", "none"], default=None,
                         help="isolation backend (default: $REFORGE_SANDBOX_BACKEND or auto); "
                              "'none' runs WITHOUT isolation")
        cmd.add_argument("--allow-unisolated", action="store_true",
                         help="fall back to running WITHOUT isolation where no backend contains code")
        if name == "run":
            cmd.add_argument("file")
            cmd.set_defaults(func=_cmd_sandbox_run)
        else:
            cmd.add_argument("--host", default="127.0.0.1")
            cmd.add_argument("--port", type=int, default=8765)
            cmd.add_argument("--max-concurrency", type=int, default=2)
            cmd.set_defaults(func=_cmd_sandbox_serve)
    doc = sub.add_parser("doctor", help="backend, kernel features, and the hostile battery run live")
    doc.add_argument("--backend", choices=["bwrap", "unshare", "none", "all"], default=None,
                     help="run the battery on this backend (default: the selected one; all: "
                          "every backend that contains its probe)")
    doc.add_argument("--no-battery", action="store_true", help="features and probes only")
    doc.add_argument("--json", action="store_true", help="one JSON object instead of lines")
    doc.set_defaults(func=_cmd_sandbox_doctor)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rewards.cli")
    sub = parser.add_subparsers(dest="command", required=True)
    register_rewards(sub)
    register_sandbox(sub)
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
