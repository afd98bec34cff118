"""`reforge config|data|model` sub-commands."""
from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path


def _config_check(args) -> int:
    from core.config import ConfigError, load_config, to_yaml

    module, _, name = args.schema.partition(":")
    schema = getattr(importlib.import_module(module), name)
    try:
        cfg = load_config(schema, args.file, args.overrides)
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        return 2
    print(to_yaml(cfg))
    return 0


def register_config(sub) -> None:
    p = sub.add_parser("config", help="validate and show a recipe config")
    cs = p.add_subparsers(dest="config_command", required=True)
    show = cs.add_parser("show", help="resolve FILE against a schema (module:Class) and print it")
    show.add_argument("schema", help="e.g. sft.config:SFTConfig")
    show.add_argument("file", nargs="?", default=None)
    show.add_argument("overrides", nargs="*", help="key=value")
    show.set_defaults(func=_config_check)


def _data_synth(args) -> int:
    from core.data.loading import write_jsonl
    from core.data.synth import code_rows, math_rows

    out = Path(args.out)
    modes = tuple(args.modes.split(","))
    train = math_rows(args.n_math, args.seed, modes) + code_rows(args.n_code, args.seed, modes)
    test = (math_rows(args.n_test, args.seed + 1, modes, with_response=False, split="test")
            + code_rows(max(args.n_test // 4, 1), args.seed + 1, modes, with_response=False, split="test"))
    for name, rows in (("train.jsonl", train), ("test.jsonl", test)):
        print(f"{write_jsonl(out / name, rows)}: {len(rows)} rows")
    return 0


def _data_validate(args) -> int:
    from core.data.loading import DataError, load_rows

    try:
        report = load_rows(args.file, on_error=args.on_error)
    except DataError as e:
        print(f"data error: {e}", file=sys.stderr)
        return 2
    print(json.dumps({"file": args.file, "rows": len(report.rows), "skipped": len(report.skipped)}))
    return 1 if report.skipped else 0


def register_data(sub) -> None:
    p = sub.add_parser("data", help="synthetic data sets and validation")
    ds = p.add_subparsers(dest="data_command", required=True)
    s = ds.add_parser("synth", help="write train.jsonl / test.jsonl of the synthetic math and code tasks")
    s.add_argument("--out", required=True)
    s.add_argument("--n-math", type=int, default=2000)
    s.add_argument("--n-code", type=int, default=400)
    s.add_argument("--n-test", type=int, default=200)
    s.add_argument("--modes", default="on,off")
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=_data_synth)
    v = ds.add_parser("validate", help="check every row of a file against the task schema")
    v.add_argument("file")
    v.add_argument("--on-error", choices=["raise", "skip"], default="skip")
    v.set_defaults(func=_data_validate)


def _model_tiny(args) -> int:
    from core.checkpoint import load_hf
    from core.tiny import build_tiny_model, count_parameters

    out = build_tiny_model(args.out, preset=args.preset, seed=args.seed)
    model, tok = load_hf(out)
    print(json.dumps({"dir": str(out), "preset": args.preset, "parameters": count_parameters(model),
                      "vocab_size": len(tok)}))
    return 0


def register_model(sub) -> None:
    from core.presets import PRESETS

    p = sub.add_parser("model", help="the embedded default model")
    ms = p.add_subparsers(dest="model_command", required=True)
    t = ms.add_parser("tiny", help="train the tokenizer and write a randomly initialised HF model directory")
    t.add_argument("--out", required=True)
    t.add_argument("--preset", choices=sorted(PRESETS), default="tiny")
    t.add_argument("--seed", type=int, default=0)
    t.set_defaults(func=_model_tiny)
