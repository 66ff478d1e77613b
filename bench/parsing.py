"""Parser benchmark: grouping accuracy on the 16 loghub 2k samples, and throughput against bare drain3.

Grouping accuracy (Zhu et al., ICSE-SEIP 2019): a line counts as correct when the set of lines its
mined template groups together is exactly the set the ground-truth EventId groups together.
Reads ``../shared/data``; prints one JSON object. Run: ``.venv/bin/python bench/parsing.py``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pandas as pd
from drain3 import TemplateMiner
from drain3.masking import MaskingInstruction
from drain3.template_miner_config import TemplateMinerConfig

from workbench.formats import BUILTIN_FORMATS
from workbench.parsing import LogParser, read_lines

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
SYSTEMS = [
    "Android", "Apache", "BGL", "HDFS", "HPC", "Hadoop", "HealthApp", "Linux",
    "Mac", "OpenSSH", "OpenStack", "Proxifier", "Spark", "Thunderbird", "Windows", "Zookeeper",
]  # fmt: skip


def grouping_accuracy(predicted: pd.Series, truth: pd.Series) -> float:
    """Fraction of lines whose predicted group equals their true group, as sets of lines."""
    df = pd.DataFrame({"p": predicted.to_numpy(), "t": truth.to_numpy()})
    pairs = df.groupby(["p", "t"]).size().rename("n").reset_index()
    p_size = df.groupby("p").size()
    t_size = df.groupby("t").size()
    ok = pairs[(pairs["n"] == pairs["p"].map(p_size)) & (pairs["n"] == pairs["t"].map(t_size))]
    return float(ok["n"].sum() / len(df))


def accuracy(system: str, corrected: bool = False) -> dict[str, float]:
    folder = DATA / "loghub_2k" / system
    suffix = "_structured_corrected.csv" if corrected else "_structured.csv"
    truth_file = folder / f"{system}_2k.log{suffix}"
    if not truth_file.exists():
        return {}
    truth = pd.read_csv(truth_file)["EventId"]
    parser = LogParser(BUILTIN_FORMATS[system.lower()])
    df = parser.parse(folder / f"{system}_2k.log", sessions=False)
    if len(df) != len(truth):
        raise RuntimeError(f"{system}: {len(df)} rows vs {len(truth)} ground-truth lines")
    return {"accuracy": round(grouping_accuracy(df["key"], truth), 4), "keys": parser.n_keys}


def throughput(path: Path, fmt: str, repeats: int = 3) -> dict[str, float]:
    lines = [x.text for x in read_lines(path)]
    best_w = best_b = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        LogParser(fmt).parse(lines)
        best_w = min(best_w, time.perf_counter() - t)
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
        "workbench_seconds": round(best_w, 4),
        "bare_drain3_seconds": round(best_b, 4),
        "workbench_lines_per_second": round(len(lines) / best_w),
        "ratio_to_bare_drain3": round(best_w / best_b, 3),
    }


def main() -> int:
    if not DATA.is_dir():
        print(json.dumps({"skipped": f"no shared data at {DATA}"}))
        return 0
    acc = {s: accuracy(s) for s in SYSTEMS}
    corrected = {s: accuracy(s, corrected=True) for s in SYSTEMS}
    out = {
        "grouping_accuracy": {s: v["accuracy"] for s, v in acc.items()},
        "grouping_accuracy_corrected_truth": {s: v.get("accuracy") for s, v in corrected.items()},
        "keys_found": {s: v["keys"] for s, v in acc.items()},
        "mean_accuracy": round(sum(v["accuracy"] for v in acc.values()) / len(acc), 4),
        "throughput": {
            "BGL_20k": throughput(DATA / "bgl" / "BGL_20k.log.gz", "bgl"),
            "OpenStack_14k": throughput(
                DATA / "openstack_deeplog" / "OpenStack_14k.log.gz", "openstack"
            ),
        },
    }
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
