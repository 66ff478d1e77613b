"""``deeplog-workbench train LOG --out RUN``: a raw log to a trained run (format chosen
automatically unless given, the recommended key model, parameter models, workflows)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from workbench.cli.common import err, read_source, rule_sentence

__all__ = ["run_train"]


def run_train(args: Any) -> int:
    """Parse, train and save; progress on standard error, one summary line on standard output."""
    from workbench.workbench import Workbench

    key_config, param_config = _configs(args)
    run = Path(args.out)
    if (run / "run.json").exists() and not args.force:
        raise ValueError(f"{run} already holds a run; pass --force to replace it")
    source = read_source(args.log)
    t0 = time.perf_counter()
    wb = Workbench.from_logs(
        source,
        args.format,
        session=args.session,
        year=args.year,
        key_config=key_config,
        param_config=param_config,
        seed=args.seed,
    )
    if wb.format_choice is not None:
        err(f"chose {wb.format_choice}")
    summary = wb.summary()
    err(f"parsed {args.log}: {summary}")
    _check_trainable(wb, summary, args.log)
    wb.fit(callbacks=[_progress])
    err(f"trained on {wb.fit_report_.summary()}")
    wb.save(run)
    km = wb.key_model
    if (why := rule_sentence(km)) is not None:
        err(f"rule: {why}")
    n_param = len(wb.param_keys())
    print(
        f"trained on {summary.lines} lines ({summary.parsed} parsed, {summary.sessions} sessions, "
        f"{summary.keys} keys) in {time.perf_counter() - t0:.1f} s: g = {km.g_}, "
        f"{n_param} parameter models, {len(wb.workflows_)} workflows; saved to {run}"
    )
    wb.close()
    return 0


def _configs(args: Any) -> tuple[Any, Any]:
    """The key model's and the parameter models' configurations from ``--preset``/``--epochs``."""
    from workbench.keys.model import KeyModelConfig
    from workbench.params.config import ParamModelConfig

    changes: dict[str, Any] = {"spare_keys": 64}
    param_config = None
    if args.epochs is not None:
        if args.epochs < 1:
            raise ValueError(f"--epochs must be at least 1, got {args.epochs}")
        changes["max_epochs"] = args.epochs
        param_config = ParamModelConfig(max_epochs=args.epochs)
    return KeyModelConfig.preset(args.preset, **changes), param_config


def _check_trainable(wb: Any, summary: Any, log: str) -> None:
    """ValueError that says why when nothing was parsed or no session was found."""
    from workbench.logs.formats import unmatched_hint

    if summary.parsed == 0:
        raise ValueError(
            f"no line of {log} fits the format {wb.parser.format.name}: nothing to train on"
            + unmatched_hint(wb.parser.format)
        )
    if summary.sessions == 0:
        rule = wb.session_rule
        why = (
            "the format has no session rule; give one with --session (window:SECONDS, "
            "regex:PATTERN, field:NAME, sliding:SECONDS,STEP)"
            if rule is None
            else f"the session rule {rule} grouped no entry"
            + "".join(f" ({p})" for p in summary.problems)
        )
        raise ValueError(f"the training log has no sessions: {why}")


def _progress(ev: dict[str, Any]) -> None:
    if ev.get("event") == "epoch" and ev.get("epoch") is not None:
        loss = ev.get("val_loss")
        loss = "" if loss is None else f", validation loss {float(loss):.4f}"
        total = ev.get("epochs") or ""
        total = f"/{total}" if total else ""
        err(f"  {ev['stage']} model: epoch {ev['epoch']}{total}{loss}")
