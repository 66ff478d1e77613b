"""The ``deeplog-workbench simulate`` command: write a simulated log and its labels."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from workbench.simulate.config import ANOMALY_KINDS, DEFAULT_ANOMALIES, SimulatorConfig
from workbench.simulate.engine import simulate
from workbench.store.files import check_output_file

__all__ = ["add_simulate_command"]


def _anomaly_spec(text: str) -> dict[str, float | int]:
    """Parse ``kind=rate,kind=count`` (or ``none``) for the command line."""
    if text.strip().lower() in ("", "none"):
        return {}
    spec: dict[str, float | int] = {}
    for item in text.split(","):
        kind, sep, value = item.partition("=")
        kind = kind.strip()
        if not sep or kind not in ANOMALY_KINDS:
            raise argparse.ArgumentTypeError(
                f"expected kind=rate items with kind in {', '.join(ANOMALY_KINDS)}, got {item!r}"
            )
        try:
            number: float | int = int(value) if value.strip().isdigit() else float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number in {item!r}") from None
        if number < 0 or (isinstance(number, float) and number > 1):
            raise argparse.ArgumentTypeError(f"a rate must be in [0, 1] (or a count), got {item!r}")
        spec[kind] = number
    return spec


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def add_simulate_command(subparsers: Any) -> None:
    """Register ``deeplog-workbench simulate --out FILE [--instances N] [--anomalies ...] ...``."""
    d = SimulatorConfig()
    p = subparsers.add_parser(
        "simulate",
        help="write a simulated OpenStack log with ground-truth labels",
        description="Simulate an OpenStack-like cloud; writes FILE, FILE.labels.csv and "
        "FILE.instances.csv.",
    )
    p.add_argument("--out", required=True, type=Path, metavar="FILE", help="log file to write")
    p.add_argument("--instances", type=_positive_int, default=d.n_instances, metavar="N")
    default = ",".join(f"{k}={v}" for k, v in DEFAULT_ANOMALIES.items())
    p.add_argument(
        "--anomalies",
        type=_anomaly_spec,
        default=dict(DEFAULT_ANOMALIES),
        metavar="KIND=RATE,...",
        help=f"rates in [0, 1] or integer counts per kind, or 'none' (default {default})",
    )
    p.add_argument("--seed", type=int, default=d.seed, metavar="S")
    options = (
        ("--noise", _non_negative, d.noise, "X", "background line rate multiplier, 0 for none"),
        ("--slowdown", float, d.slowdown, "F", "factor of the throttled transition"),
        ("--throttle", str, "->".join(d.throttled), "A->B", "the throttled transition"),
        ("--normal-head", float, d.normal_head, "F", "fraction of first instances kept normal"),
    )
    for flag, kind, value, metavar, text in options:
        p.add_argument(
            flag, type=kind, default=value, metavar=metavar, help=f"{text} (default {value})"
        )

    p.set_defaults(func=lambda args: _run(p, args))


def _run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """Check the settings and the output files, simulate, write, and say what was written."""
    try:
        cfg = SimulatorConfig(
            n_instances=args.instances,
            anomalies=args.anomalies,
            seed=args.seed,
            noise=args.noise,
            slowdown=args.slowdown,
            throttled=tuple(x.strip() for x in args.throttle.split("->")),
            normal_head=args.normal_head,
        )
    except ValueError as exc:
        parser.error(str(exc))
    out = Path(args.out)
    for target in (out, out.with_name(out.name + ".labels.csv"),
                   out.with_name(out.name + ".instances.csv")):  # fmt: skip
        check_output_file(target)
    log = simulate(cfg)
    path = log.write(args.out)
    s = log.summary()
    kinds = ", ".join(f"{k} {v}" for k, v in s["anomalies"].items())
    print(
        f"wrote {s['lines']} lines of {s['instances']} instances to {path} "
        f"(anomalous instances: {kinds}); labels in {path.name}.labels.csv and "
        f"{path.name}.instances.csv"
    )
    return 0
