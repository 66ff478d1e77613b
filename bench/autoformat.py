"""``--format auto`` on the 16 loghub 2k samples: the format chosen from the first 300 lines, and
the share of the whole sample it parses (and of entries with a readable timestamp).

Reads ``../shared/data``; prints one JSON object. Run: ``.venv/bin/python bench/autoformat.py``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from workbench.logs.autoformat import choose_format
from workbench.logs.parser import LogParser

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "loghub_2k"
SYSTEMS = [
    "Android", "Apache", "BGL", "HDFS", "HPC", "Hadoop", "HealthApp", "Linux",
    "Mac", "OpenSSH", "OpenStack", "Proxifier", "Spark", "Thunderbird", "Windows", "Zookeeper",
]  # fmt: skip


def main() -> dict:
    out: dict = {"bench": "autoformat", "systems": {}}
    for name in SYSTEMS:
        path = DATA / name / f"{name}_2k.log"
        if not path.is_file():
            out["systems"][name] = "missing"
            continue
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        t0 = time.perf_counter()
        choice = choose_format(lines)
        seconds = time.perf_counter() - t0
        df = LogParser(choice.format).parse(lines, sessions=False)
        out["systems"][name] = {
            "chosen": choice.format.name,
            "expected": name.lower(),
            "sample_parsed_share": round(choice.share, 4),
            "parsed_share": round(float(df["parsed"].mean()), 4),
            "timestamp_share": round(float(df["timestamp"].notna().mean()), 4),
            "sample_templates": choice.templates,
            "seconds": round(seconds, 2),
        }
    rows = [v for v in out["systems"].values() if isinstance(v, dict)]
    out["correct"] = sum(v["chosen"] == v["expected"] for v in rows)
    out["of"] = len(rows)
    print(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
