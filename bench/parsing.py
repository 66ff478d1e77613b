"""Parser benchmark: grouping and parsing accuracy on the 16 loghub 2k samples, and throughput.

* **GA**, grouping accuracy (Zhu et al., ICSE-SEIP 2019): a line counts as correct when the set of lines
  its key groups together is exactly the set the ground-truth EventId groups together. Reported on the
  original loghub truth and on the corrected truth (``*_corrected.csv``, loghub-2.0; Android and Windows
  have none, so the corrected averages are over 14 systems).
* **PA**, parsing accuracy on the corrected truth: a line counts as correct when its template equals the
  true template once both are normalised (every ``<NAME>`` mask reads ``<*>``, a run of ``<*>`` joined
  only by spaces or punctuation is one ``<*>``, whitespace collapsed).
* **bare drain3**: drain3 alone on the same message content with the same masks and settings, no
  refinement (so the row shows what the refinement adds).
* **throughput**: mining (``parse``) against bare drain3 on whole lines, and the read-only ``transform``
  used per partition at detection, in lines per second, best of three, on BGL 20k and OpenStack 14k;
  the transform also per second of the process's own CPU time (one core, whatever else runs).
* **transform on a simulated log** (``--transform``, also part of the full run): a simulated OpenStack
  log (seed 1, 2000 instances by default), a parser fitted on its first 15000 lines and reloaded from its
  state before each run (as a detection loads it), ``transform`` of the whole file with and without
  sessions: ``transform_lines_per_s``, the median of three, by the wall clock and by the process's CPU
  time. ``--check`` also asserts that the frames of a path, of its bytes and of its lines are equal.

Reads ``../shared/data``; prints one JSON object. Run: ``.venv/bin/python bench/parsing.py``;
``--short`` leaves out the throughput (the accuracy figures only, about a minute); ``--transform``
gives only the simulated-log transform figure (no shared data needed; ``--instances N``).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from drain3 import TemplateMiner
from drain3.drain import Drain
from drain3.masking import LogMasker, MaskingInstruction
from drain3.template_miner_config import TemplateMinerConfig

from workbench.logs.formats import BUILTIN_FORMATS
from workbench.logs.parser import LogParser
from workbench.logs.reading import read_lines

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
SYSTEMS = [
    "Android", "Apache", "BGL", "HDFS", "HPC", "Hadoop", "HealthApp", "Linux",
    "Mac", "OpenSSH", "OpenStack", "Proxifier", "Spark", "Thunderbird", "Windows", "Zookeeper",
]  # fmt: skip
_MASK = re.compile(r"<[A-Za-z_*][A-Za-z0-9_*]*>")
_RUN = re.compile(r"<\*>(?:[^\w<>]*<\*>)+")


def grouping_accuracy(predicted: pd.Series, truth: pd.Series) -> float:
    """Fraction of lines whose predicted group equals their true group, as sets of lines."""
    df = pd.DataFrame({"p": predicted.to_numpy(), "t": truth.to_numpy()})
    pairs = df.groupby(["p", "t"]).size().rename("n").reset_index()
    p_size = df.groupby("p").size()
    t_size = df.groupby("t").size()
    ok = pairs[(pairs["n"] == pairs["p"].map(p_size)) & (pairs["n"] == pairs["t"].map(t_size))]
    return float(ok["n"].sum() / len(df))


def normalise_template(template: str) -> str:
    """Masks read ``<*>``; a run of wildcards joined by spaces or punctuation is one ``<*>``."""
    text = _RUN.sub("<*>", _MASK.sub("<*>", str(template)))
    return " ".join(text.split())


def parsing_accuracy(predicted: pd.Series, truth: pd.Series) -> float:
    """Fraction of lines whose normalised template equals the true one."""
    p = predicted.map(normalise_template).to_numpy()
    t = truth.map(normalise_template).to_numpy()
    return float((p == t).mean())


def bare_drain3_keys(system: str, lines: list[str]) -> list[int]:
    """drain3 alone on the content the workbench mines, with the same masks and settings."""
    fmt = BUILTIN_FORMATS[system.lower()]
    drain = Drain(sim_th=fmt.sim_th, depth=fmt.depth, max_children=100)
    masker = LogMasker([MaskingInstruction(m.pattern, m.name) for m in fmt.masks], "<", ">")
    out = []
    for line in lines:
        fields = fmt.split(line)
        content = masker.mask(fields["Content"].strip()) if fields else ""
        out.append(drain.add_log_message(content)[0].cluster_id)
    return out


def accuracy(system: str) -> dict[str, object]:
    folder = DATA / "loghub_2k" / system
    log = folder / f"{system}_2k.log"
    truth = pd.read_csv(folder / f"{system}_2k.log_structured.csv")
    corrected_file = folder / f"{system}_2k.log_structured_corrected.csv"
    corrected = pd.read_csv(corrected_file) if corrected_file.exists() else None
    parser = LogParser(BUILTIN_FORMATS[system.lower()])
    df = parser.parse(log, sessions=False)
    if len(df) != len(truth):
        raise RuntimeError(f"{system}: {len(df)} rows vs {len(truth)} ground-truth lines")
    bare = pd.Series(bare_drain3_keys(system, [x.text for x in read_lines(log)]))
    row: dict[str, object] = {
        "ga": round(grouping_accuracy(df["key"], truth["EventId"]), 4),
        "bare_drain3_ga": round(grouping_accuracy(bare, truth["EventId"]), 4),
        "ga_corrected": None,
        "bare_drain3_ga_corrected": None,
        "pa_corrected": None,
        "templates": parser.n_keys,
        "templates_truth": int(truth["EventId"].nunique()),
    }
    if corrected is not None:
        row["ga_corrected"] = round(grouping_accuracy(df["key"], corrected["EventId"]), 4)
        row["bare_drain3_ga_corrected"] = round(grouping_accuracy(bare, corrected["EventId"]), 4)
        row["pa_corrected"] = round(parsing_accuracy(df["template"], corrected["EventTemplate"]), 4)
        row["templates_truth_corrected"] = int(corrected["EventId"].nunique())
    return row


def throughput(path: Path, fmt: str, repeats: int = 3) -> dict[str, float]:
    lines = [x.text for x in read_lines(path)]
    best_w = best_b = best_t = best_c = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        parser = LogParser(fmt)
        parser.parse(lines, sessions=False)
        best_w = min(best_w, time.perf_counter() - t)
        t, c = time.perf_counter(), time.process_time()
        parser.transform(lines, sessions=False)
        best_t = min(best_t, time.perf_counter() - t)
        best_c = min(best_c, time.process_time() - c)
        f = BUILTIN_FORMATS[fmt]
        cfg = TemplateMinerConfig()
        cfg.drain_sim_th, cfg.drain_depth = f.sim_th, f.depth
        cfg.masking_instructions = [MaskingInstruction(m.pattern, m.name) for m in f.masks]
        miner = TemplateMiner(config=cfg)
        t = time.perf_counter()
        for line in lines:
            miner.add_log_message(line)
        best_b = min(best_b, time.perf_counter() - t)
    return {
        "lines": len(lines),
        "workbench_parse_seconds": round(best_w, 4),
        "bare_drain3_seconds": round(best_b, 4),
        "workbench_parse_lines_per_second": round(len(lines) / best_w),
        "ratio_to_bare_drain3": round(best_w / best_b, 3),
        "transform_seconds": round(best_t, 4),
        "transform_lines_per_second": round(len(lines) / best_t),
        "transform_cpu_seconds": round(best_c, 4),
        "transform_lines_per_cpu_second": round(len(lines) / best_c),
    }


def simulated_transform(instances: int = 2000, check: bool = False) -> dict[str, object]:
    """Lines per second of ``transform`` on a simulated OpenStack log (see the module docstring)."""
    from workbench.simulate.engine import simulate

    with tempfile.TemporaryDirectory() as tmp:
        path = simulate(n_instances=instances, seed=1).write(Path(tmp) / "sim.log")
        lines = [x.text for x in read_lines(path)]
        state = LogParser("openstack").fit(lines[:15000]).to_state()
        out: dict[str, object] = {"lines": len(lines), "instances": instances, "repeats": 3}
        for sessions in (False, True):
            wall, cpu = [], []
            for _ in range(3):
                parser = LogParser.from_state(state)
                t, c = time.perf_counter(), time.process_time()
                df = parser.transform(path, sessions=sessions)
                wall.append(time.perf_counter() - t)
                cpu.append(time.process_time() - c)
            name = "with_sessions" if sessions else "without_sessions"
            out[name] = {
                "transform_lines_per_s": round(len(lines) / statistics.median(wall)),
                "transform_lines_per_cpu_s": round(len(lines) / statistics.median(cpu)),
            }
            if check:  # every way of giving the log parses to the same frame
                for other in (path.read_bytes(), lines):
                    again = LogParser.from_state(state).transform(other, sessions=sessions)
                    pd.testing.assert_frame_equal(df, again, check_exact=True)
                out["frames_equal_path_bytes_lines"] = True
    return out


def _mean(values: list[float | None]) -> float:
    vals = [v for v in values if v is not None]
    return round(sum(vals) / len(vals), 4)


def main() -> int:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--short", action="store_true", help="accuracy only, no throughput")
    args.add_argument("--transform", action="store_true", help="simulated-log transform only")
    args.add_argument("--instances", type=int, default=2000, help="simulated instances")
    args.add_argument("--check", action="store_true", help="assert path/bytes/lines frames equal")
    opts = args.parse_args()
    short = opts.short
    if opts.transform:
        print(json.dumps(simulated_transform(opts.instances, opts.check), indent=2))
        return 0
    if not DATA.is_dir():
        print(json.dumps({"skipped": f"no shared data at {DATA}"}))
        return 0
    rows = {s: accuracy(s) for s in SYSTEMS}
    cols = ["ga", "ga_corrected", "pa_corrected", "bare_drain3_ga", "bare_drain3_ga_corrected"]
    out = {
        "systems": rows,
        "mean": {c: _mean([r[c] for r in rows.values()]) for c in cols},  # type: ignore[misc]
        "min": {c: min(r[c] for r in rows.values() if r[c] is not None) for c in cols},
        "below_bare_drain3": [
            s
            for s, r in rows.items()
            if r["ga"] < r["bare_drain3_ga"]  # type: ignore[operator]
            or (r["ga_corrected"] or 1) < (r["bare_drain3_ga_corrected"] or 0)  # type: ignore[operator]
        ],
    }
    if not short:
        out["throughput"] = {
            "BGL_20k": throughput(DATA / "bgl" / "BGL_20k.log.gz", "bgl"),
            "OpenStack_14k": throughput(
                DATA / "openstack_deeplog" / "OpenStack_14k.log.gz", "openstack"
            ),
            "simulated_openstack": simulated_transform(opts.instances),
        }
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
