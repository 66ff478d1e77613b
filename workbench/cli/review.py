"""``deeplog-workbench diagnose|flag|undo|show RUN``: review the last report of a run (explain an
anomaly, teach a false positive, undo the last feedback) and say what a run holds."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from workbench.cli.common import (
    has_kept_report,
    load_last_report,
    load_run,
    rule_sentence,
    save_last_report,
)
from workbench.cli.detect import anomaly_line

__all__ = ["run_diagnose", "run_flag", "run_show", "run_undo"]


def _anomaly_id(text: str) -> int:
    try:
        return int(str(text).lstrip("#"))
    except ValueError:
        raise ValueError(f"an anomaly id is a number as printed by detect, got {text!r}") from None


def run_diagnose(args: Any) -> int:
    wb = load_run(args.run)
    report = load_last_report(wb)
    aid = _anomaly_id(args.anomaly_id)
    _check_id(report, aid)
    row = report.anomaly(aid)
    d = wb.diagnose(aid)
    print(anomaly_line(row))
    print(d.sentence)
    if d.path:
        path = " -> ".join(wb.parser.template_of(k) for k in d.path[-6:])
        print(f"path in its workflow: {path}")
    print("context:")
    for line, raw in _context(report.entries, int(row["line"])):
        mark = ">" if line == int(row["line"]) else " "
        print(f" {mark}{line:>8} {raw}")
    wb.close()
    return 0


def _context(entries: pd.DataFrame, line: int, k: int = 3) -> list[tuple[int, str]]:
    lines = entries["line"].to_numpy()
    i = int(np.searchsorted(lines, line))
    lo, hi = max(0, i - k), min(len(lines), i + k + 1)
    return [(int(lines[j]), str(entries["raw"].iloc[j])) for j in range(lo, hi)]


def _check_id(report: Any, aid: int) -> None:
    if not (report.anomalies["id"] == aid).any():
        ids = report.anomalies["id"].tolist()
        shown = ", ".join(map(str, ids[:8])) + (" ..." if len(ids) > 8 else "")
        raise ValueError(f"no anomaly {aid} in the last report (ids: {shown or 'none'})")


def run_flag(args: Any) -> int:
    wb = load_run(args.run)
    report = load_last_report(wb)
    aid = _anomaly_id(args.anomaly_id)
    _check_id(report, aid)
    ids = wb.similar(aid) if args.all_like_this else [aid]
    result = wb.flag_false_positive(ids, follow=bool(getattr(args, "and_following", False)))
    wb.save(wb.run_dir)
    save_last_report(wb, getattr(wb, "report_source", "") or "")
    loss = ""
    if result.loss_before is not None and result.loss_after is not None:
        loss = f"; validation loss {result.loss_before:.4f} -> {result.loss_after:.4f}"
    print(
        f"flagged {len(ids)} as normal ({', '.join(map(str, ids[:10]))}"
        f"{' ...' if len(ids) > 10 else ''}): model version {result.version} in "
        f"{result.seconds * 1000:.0f} ms{loss}"
    )
    if result.implied:
        lines = sorted(set(result.implied))
        shown = ", ".join(map(str, lines[:20])) + (" ..." if len(lines) > 20 else "")
        print(
            f"also taught {len(lines)} entries that follow in the same sessions, whose steps recur "
            f"in other sessions (lines {shown}; --and-following)"
        )
    still = result.report.anomalies
    open_ = still[still["status"] == "open"]
    print(f"{len(open_)} anomalies still open; verdict changed for {len(result.changed)} others")
    wb.close()
    return 0


def run_undo(args: Any) -> int:
    wb = load_run(args.run)
    has_report = has_kept_report(wb)
    if has_report:
        load_last_report(wb)
    before = wb.journal.current_version()
    version = wb.undo()
    if version is None or version == before:
        raise ValueError("nothing to undo: the model is at its trained version")
    wb.save(wb.run_dir)
    if has_report:
        save_last_report(wb, getattr(wb, "report_source", "") or "")
    print(f"undone: model version {before} -> {version}")
    if wb.report is not None:
        print(f"{len(wb.report.anomalies)} anomalies in the last report now")
    wb.close()
    return 0


def run_show(args: Any) -> int:
    from workbench.version import __version__

    wb = load_run(args.run)
    p, km = wb.parser, wb.key_model
    fmt = p.format
    print(f"run {wb.run_dir} (package {__version__})")
    print(f"format: {fmt.name}" + (f" {fmt.header!r}" if fmt.header else f" {fmt.pattern!r}"))
    rule = wb.session_rule
    print(f"session rule: {rule if rule is not None else 'none'}")
    s = wb.summary()
    print(f"training log: {s}")
    if wb.fit_report_ is not None:
        print(f"trained on {wb.fit_report_.summary()}")
    print(f"keys: {p.n_keys}")
    for _, t in p.templates_.head(args.keys).iterrows():
        print(f"  {t['key']:>4} {t['count']:>7}  {t['template']}")
    if p.n_keys > args.keys:
        print(f"  ... {p.n_keys - args.keys} more")
    if km is not None:
        c = wb.key_config
        print(
            f"key model: window {c.window}, g = {km.g_} (top_g {c.top_g}), probability floor "
            f"{float(km.min_probability_):.3g}, session counts {c.session_counts}, ensemble "
            f"{c.ensemble}, validation folds {c.validation_folds}"
        )
        if (why := rule_sentence(km)) is not None:
            print(f"  why: {why}")
    keys = wb.param_keys()
    print(f"parameter models: {len(keys)} keys, verdict level {wb.level:.1%}")
    pm = wb.param_model
    for k in keys[: args.keys]:
        gt = pm.thresholds_.get(k)
        thr = "?"
        if gt is not None and gt.fitted:
            levels = wb.param_config.levels
            thr = ", ".join(f"{lv:.1%} {gt.threshold(lv):.3g}" for lv in levels)
        names = ",".join(pm.keys_[k].get("names", []))
        print(f"  key {k} [{names}]: MSE thresholds {thr}  {p.template_of(k)}")
    versions = wb.journal.versions()
    current = wb.journal.current_version()
    print(f"model versions: {len(versions)}, current {current}")
    for v in versions[-5:]:
        print(f"  v{v.get('version')} {v.get('created', '')} {v.get('reason', '')}")
    wb.close()
    return 0
