"""Whole-pipeline benchmark: a raw simulated log to a self-contained HTML report, through the CLI.

Simulates a normal training log and a test log with planted anomalies (OpenStack-like, about 40
lines per VM instance) of ``--lines`` lines each, then times, each in its own process:

* ``deeplog-workbench train TRAIN --out RUN`` (format chosen automatically, the recommended key
  model, parameter models, workflows);
* ``deeplog-workbench detect RUN TEST --out report.html``.

Prints one JSON object: lines per second of train and detect, the peak resident memory of each
process, the report's size, and the detect verdict and coverage lines. Seeded and deterministic
up to timing. Run: ``.venv/bin/python bench/pipeline.py --lines 1000000`` (default).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from workbench.simulate.engine import simulate

REPO = Path(__file__).resolve().parent.parent
LINES_PER_INSTANCE = 40  # about what the simulator writes per VM (with the API chatter)

# run a command and print the peak RSS of its process tree (kB on Linux)
_WRAP = (
    "import resource, subprocess, sys\n"
    "rc = subprocess.run(sys.argv[1:]).returncode\n"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)\n"
    "sys.exit(rc)\n"
)


def _write_log(path: Path, lines: int, anomalies: dict[str, float], seed: int) -> int:
    n = max(10, lines // LINES_PER_INSTANCE)
    log = simulate(n_instances=n, anomalies=anomalies, seed=seed)
    out = log.lines[:lines]
    path.write_text("\n".join(out) + "\n")
    return len(out)


def _timed(cmd: list[str]) -> tuple[float, float, str, str]:
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", _WRAP, *cmd], cwd=REPO, capture_output=True, text=True
    )
    seconds = time.perf_counter() - t0
    err = proc.stderr.strip().splitlines()
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    rss_mb = int(err[-1]) / 1024 if err and err[-1].isdigit() else float("nan")
    return seconds, rss_mb, proc.stdout, "\n".join(err[:-1])


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=1_000_000, help="lines of each log")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=None, help="cap training epochs (both models)")
    ap.add_argument("--workdir", default=None, help="keep the files here (default: a temp dir)")
    args = ap.parse_args(argv)
    tmp = tempfile.TemporaryDirectory(prefix="pipeline-bench-")
    work = Path(args.workdir or tmp.name)
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    n_train = _write_log(work / "train.log", args.lines, {}, args.seed)
    n_test = _write_log(
        work / "test.log",
        args.lines,
        {"performance": 0.02, "execution": 0.02, "parameter": 0.01},
        args.seed + 1,
    )
    simulate_seconds = time.perf_counter() - t0
    cli = [sys.executable, "-m", "workbench.cli"]
    train_cmd = [*cli, "train", str(work / "train.log"), "--out", str(work / "run"), "--force"]
    if args.epochs is not None:
        train_cmd += ["--epochs", str(args.epochs)]
    train_s, train_rss, train_out, _ = _timed(train_cmd)
    report = work / "report.html"
    detect_cmd = [*cli, "detect", str(work / "run"), str(work / "test.log"), "--out", str(report)]
    detect_s, detect_rss, detect_out, detect_err = _timed(detect_cmd)
    summary = [ln for ln in detect_out.splitlines() if not ln.startswith("#")]
    result = {
        "bench": "pipeline",
        "lines_train": n_train,
        "lines_detect": n_test,
        "simulate_seconds": round(simulate_seconds, 1),
        "train_seconds": round(train_s, 1),
        "train_lines_per_second": round(n_train / train_s),
        "train_peak_rss_mb": round(train_rss),
        "detect_seconds": round(detect_s, 1),
        "detect_lines_per_second": round(n_test / detect_s),
        "detect_peak_rss_mb": round(detect_rss),
        "report_bytes": report.stat().st_size,
        "anomalies": sum(ln.startswith("#") for ln in detect_out.splitlines()),
        "train": train_out.strip(),
        "detect": summary,
        "warnings": [ln for ln in detect_err.splitlines() if ln.startswith("warning")],
        "seed": args.seed,
    }
    print(json.dumps(result, indent=1))
    tmp.cleanup()
    return result


if __name__ == "__main__":
    main()
