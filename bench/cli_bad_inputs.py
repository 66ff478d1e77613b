"""Every bad input of the command line's hardening table, run through the real CLI; prints JSON
(one object per case: the arguments, the exit status, the lines on stderr, peak memory in MB).

Run: ``PYTHONPATH=. .venv/bin/python bench/cli_bad_inputs.py`` (about a minute).
"""

from __future__ import annotations

import gzip
import json
import os
import resource
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def run(argv: list[str], cwd: Path) -> dict[str, object]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    code = (
        "import resource, runpy, sys\n"
        "sys.argv = ['deeplog-workbench', *sys.argv[1:]]\n"
        "try:\n    runpy.run_module('workbench.cli', run_name='__main__')\n"
        "finally:\n"
        "    print('MAXRSS', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
    )
    p = subprocess.run(
        [sys.executable, "-c", code, *argv], capture_output=True, text=True, env=env, cwd=cwd,
        timeout=300,
    )  # fmt: skip
    lines = [x for x in p.stderr.splitlines() if not x.startswith("MAXRSS")]
    rss = [int(x.split()[1]) for x in p.stderr.splitlines() if x.startswith("MAXRSS")]
    return {
        "argv": " ".join(argv),
        "rc": p.returncode,
        "stderr_lines": len(lines),
        "stderr": lines[-1] if lines else "",
        "traceback": "Traceback" in p.stderr,
        "max_rss_mb": round(rss[0] / 1024) if rss else None,
    }


def main() -> None:
    with tempfile.TemporaryDirectory() as t:
        d = Path(t)
        subprocess.run(
            [sys.executable, "-m", "workbench.cli", "simulate", "--out", "sim.log",
             "--instances", "20"],
            cwd=d, env=dict(os.environ, PYTHONPATH=str(REPO)), check=True, capture_output=True,
        )  # fmt: skip
        blob = gzip.compress((d / "sim.log").read_bytes())
        (d / "trunc.gz").write_bytes(blob[: len(blob) // 2])
        (d / "cat.log").write_text("a" * 40 + "!\n")
        files = {
            "train.txt": "1 2 3\n1 2 4\n1 2 3\n",
            "normal.txt": "1 2 3\n",
            "abnormal.txt": "1 9 3\n",
            "dash.txt": "1 --5 3\n",
            "super.txt": "1 \u00b2 3\n",
            "big63.txt": f"1 2 {2**63}\n1 2 3\n",
            "big8.txt": "1 2 3 100000000\n1 2 3\n",
            "empty.txt": "",
        }
        for name, text in files.items():
            (d / name).write_text(text, encoding="utf-8")

        def ev(train="train.txt", normal="normal.txt", abnormal="abnormal.txt", *extra):
            return ["evaluate", "--train", train, "--test-normal", normal,
                    "--test-abnormal", abnormal, *extra]  # fmt: skip

        cases = {
            "truncated gzip": ["parse", "trunc.gz", "--out", "o1"],
            "optional Content group": [
                "parse",
                "sim.log",
                "--format",
                "(?P<Content>x)?.*",
                "--out",
                "o2",
            ],
            "key token --5": ev("dash.txt"),
            "key token ²": ev("super.txt"),
            "key id 2^63": ev("big63.txt", "normal.txt", "abnormal.txt", "--json"),
            "catastrophic --format": [
                "parse",
                "cat.log",
                "--format",
                "(?P<Content>(a|aa)+)$",
                "--out",
                "o3",
            ],
            "catastrophic --session": [
                "parse",
                "cat.log",
                "--format",
                "<Content>",
                "--session",
                "regex:(a|aa)+$",
                "--out",
                "o4",
            ],
            "training key id 10^8 (deeplog)": ev(
                "big8.txt", "normal.txt", "abnormal.txt", "--json"
            ),
            "empty training file": ev("empty.txt"),
            "empty normal file": ev("train.txt", "empty.txt"),
            "empty abnormal file": ev("train.txt", "normal.txt", "empty.txt"),
            "simulate --out /dev/null": ["simulate", "--out", "/dev/null", "--instances", "3"],
            "parse --out /dev/null": ["parse", "sim.log", "--out", "/dev/null"],
        }
        out = []
        for name, argv in cases.items():
            out.append({"case": name, **run(argv, d)})
        out.append(
            {
                "case": "/dev/null afterwards",
                "is_char_device": stat.S_ISCHR(os.stat("/dev/null").st_mode),
            }
        )
    print(json.dumps(out, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    _ = resource
    main()
