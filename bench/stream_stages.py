"""Where the CPU of streamed detection goes: CPU microseconds per line by stage.

Prints one JSON object. Run from the repository root::

    python bench/stream_stages.py --lines 200000 --quick

Uses the simulated test log and the trained run of ``bench/scale.py`` (the same ``--workdir``,
``--lines``, ``--seed`` and ``--quick``/``--train-instances``/``--epochs``; made there when
missing), and runs :func:`workbench.detect.streaming.detect_streaming` once in this process with
the stages' functions wrapped by a timer of process CPU time (user + system). Each stage counts
its own time, not that of the stages it calls:

* ``parse_loop``: reading the lines, the header pattern, masking and matching to a template (the
  parser's loop over lines); ``parse_keys``: template keys of the distinct messages;
  ``parse_frame``: the frame of a chunk (templates, parameter values); ``timestamps``;
  ``sessions``: session ids (the session rule);
* ``elapsed``: elapsed times; ``param_pass``: parameter vectors and the parameter models;
  ``param_halo``: each key's last vectors carried to the next chunk;
* ``key_pass``: the key model over closed sessions; ``verdicts``: the joined verdicts;
  ``writing``: the report parts written (``--out``);
* ``bookkeeping``: the streaming loop itself (open sessions, closing, joining frames);
  ``gc``: the garbage collector (its time is also inside the stage it interrupted).

The figures are CPU time, so they hold on a busy machine better than wall time, but other
processes still slow a shared CPU's caches: compare runs made side by side.
"""

from __future__ import annotations

import argparse
import functools
import gc
import importlib.util
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

_STACK: list[float] = []
_SPENT: dict[str, float] = {}


def _wrap(owner: Any, name: str, stage: str) -> None:
    """Time ``owner.name`` into ``stage``, less what wrapped functions it calls take."""
    f = getattr(owner, name)
    static = isinstance(owner, type) and isinstance(owner.__dict__.get(name), staticmethod)

    @functools.wraps(f)
    def timed(*args: Any, **kwargs: Any) -> Any:
        t = time.process_time()
        _STACK.append(0.0)
        try:
            return f(*args, **kwargs)
        finally:
            spent = time.process_time() - t
            inner = _STACK.pop()
            _SPENT[stage] = _SPENT.get(stage, 0.0) + spent - inner
            if _STACK:
                _STACK[-1] += spent

    setattr(owner, name, staticmethod(timed) if static else timed)


def _instrument() -> None:
    import workbench.detect.chunked as ch
    import workbench.detect.streaming as st
    import workbench.logs.parser as lp

    for owner, name, stage in [
        (lp.LogParser, "_read_rows", "parse_loop"),
        (lp.LogParser, "_key_rows", "parse_keys"),
        (lp.LogParser, "_frame", "parse_frame"),
        (lp, "read_timestamps", "timestamps"),
        (ch, "apply_session_rule", "sessions"),
        (ch, "assign_default_sessions", "sessions"),
        (ch.Scorer, "seconds", "elapsed"),
        (ch.Scorer, "elapsed", "elapsed"),
        (ch.Scorer, "param_pass", "param_pass"),
        (ch.Scorer, "halo", "param_halo"),
        (ch.Scorer, "key_pass", "key_pass"),
        (ch.Scorer, "verdicts", "verdicts"),
        (st.VerdictWriter, "write", "writing"),
        (st.SessionStream, "feed", "bookkeeping"),
        (st.SessionStream, "finish", "bookkeeping"),
    ]:
        _wrap(owner, name, stage)


def _scale_bench() -> Any:
    spec = importlib.util.spec_from_file_location("scale", Path(__file__).with_name("scale.py"))
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--lines", type=int, default=200_000)
    p.add_argument("--train-instances", type=int, default=400)
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--chunk-lines", type=int, default=100_000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "deeplog-scale")
    p.add_argument("--out", type=Path, default=None, help="also write the report parts here")
    p.add_argument("--quick", action="store_true", help="--train-instances 100 --epochs 3")
    args = p.parse_args()
    if args.quick:
        args.train_instances, args.epochs = 100, args.epochs or 3
    scale = _scale_bench()
    args.workdir.mkdir(parents=True, exist_ok=True)
    log = args.workdir / f"openstack-{args.lines}-{args.seed}.log"
    if not log.exists():
        scale._simulate(log, args.lines, args.seed)
    run = args.workdir / f"run-{args.train_instances}-{args.epochs}"
    if not run.exists():
        scale._train(run, args.train_instances, args.epochs)

    import torch

    from workbench.detect.streaming import detect_streaming
    from workbench.workbench import Workbench

    torch.set_num_threads(1)
    wb = Workbench.load(run, read_only=True)
    models = wb.scorer(end_keys=True)
    _instrument()
    in_gc: dict[str, float] = {"total": 0.0}

    def on_gc(phase: str, info: dict) -> None:
        if phase == "start":
            in_gc["t"] = time.process_time()
        else:
            in_gc["total"] += time.process_time() - in_gc["t"]

    gc.callbacks.append(on_gc)
    load = [round(x, 1) for x in os.getloadavg()]
    t, cpu = time.perf_counter(), time.process_time()
    rep = detect_streaming(models, str(log), chunk_lines=args.chunk_lines, out=args.out)
    cpu, seconds = time.process_time() - cpu, time.perf_counter() - t
    gc.callbacks.remove(on_gc)
    n = rep.counts["lines"]
    stages = {k: round(v * 1e6 / n, 2) for k, v in sorted(_SPENT.items(), key=lambda kv: -kv[1])}
    stages["other"] = round((cpu - sum(_SPENT.values())) * 1e6 / n, 2)
    out = {
        "lines": n,
        "anomalies": len(rep.anomalies),
        "chunk_lines": args.chunk_lines,
        "cpu_seconds": round(cpu, 2),
        "seconds": round(seconds, 2),
        "cpu_us_per_line": round(cpu * 1e6 / n, 2),
        "lines_per_cpu_second": round(n / cpu),
        "stages_cpu_us_per_line": stages,
        "gc_cpu_us_per_line": round(in_gc["total"] * 1e6 / n, 2),
        "load_average_before": load,
        "load_average_after": [round(x, 1) for x in os.getloadavg()],
    }
    print(json.dumps(out, indent=2))
    wb.close()


if __name__ == "__main__":
    main()
