"""The command line for the whole pipeline: train, detect (file, .gz, stdin, --follow), diagnose,
flag, undo, show; reports as CSV, JSON and HTML; exit codes 0, 1 (--strict) and 2 (bad input)."""

from __future__ import annotations

import gzip
import io
import json
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from workbench.cli import main
from workbench.detect.rules import RULES
from workbench.simulate.engine import simulate

REPO = Path(__file__).resolve().parent.parent
TRAIN = ["--preset", "paper", "--epochs", "3"]


@pytest.fixture(scope="module")
def logs(tmp_path_factory):
    d = tmp_path_factory.mktemp("logs")
    train = simulate(n_instances=120, anomalies={}, seed=31)
    test = simulate(n_instances=40, anomalies={"execution": 0.1, "performance": 0.1}, seed=32)
    (d / "train.log").write_text("\n".join(train.lines) + "\n")
    (d / "test.log").write_text("\n".join(test.lines) + "\n")
    with gzip.open(d / "test.log.gz", "wt") as fh:
        fh.write("\n".join(test.lines) + "\n")
    return d


@pytest.fixture(scope="module")
def run(logs, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "run"
    assert main(["train", str(logs / "train.log"), "--out", str(out), *TRAIN]) == 0
    return out


def _one_line_error(capsys, rc: int) -> str:
    err = capsys.readouterr().err.strip()
    assert rc == 2
    errors = [ln for ln in err.splitlines() if "error:" in ln]
    assert len(errors) == 1 and "Traceback" not in err, err
    return errors[0]


def test_train_prints_choice_and_saves_the_rule(run, capsys):
    assert main(["show", str(run)]) == 0
    out = capsys.readouterr().out
    assert "format: openstack" in out
    assert "session rule: regex:" in out
    assert "key model: window 10, g = 9" in out  # the paper preset
    assert "model versions: 1" in out


def test_detect_diagnose_flag_undo(run, logs, tmp_path, capsys):
    rc = main(["detect", str(run), str(logs / "test.log"), "--out", str(tmp_path / "r.json")])
    assert rc == 0
    out = capsys.readouterr().out
    lines = [ln for ln in out.splitlines() if ln.startswith("#")]
    assert lines, out
    assert "lines read" in out and "sessions" in out
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["coverage"]["sessions"] > 0 and len(data["anomalies"]) == len(lines)
    for line, rec in zip(lines, data["anomalies"], strict=True):  # each says which rule fired
        assert rec["rule"] in RULES and f"[{rec['rule']}]" in line
    first = lines[0].split()[0].lstrip("#")
    assert main(["diagnose", str(run), first]) == 0
    diag = capsys.readouterr().out
    assert "context:" in diag and f"line {data['anomalies'][0]['line']}" in diag
    assert main(["flag", str(run), first]) == 0
    assert "model version 2" in capsys.readouterr().out
    assert main(["show", str(run)]) == 0
    assert "model versions: 2, current 2" in capsys.readouterr().out
    assert main(["undo", str(run)]) == 0
    assert "undone: model version 2 -> 1" in capsys.readouterr().out
    rc = main(["undo", str(run)])
    assert "nothing to undo" in _one_line_error(capsys, rc)


def test_a_large_log_is_streamed_and_says_so(run, logs, tmp_path, capsys, monkeypatch):
    """Above the size limit (lowered here) detect reads in chunks: the same anomalies as in
    memory, progress and the mode on standard error; flag then says why it has nothing to review
    instead of acting on an older report."""
    import workbench.detect.streaming as streaming

    log = str(logs / "test.log")
    assert main(["detect", str(run), log, "--in-memory"]) == 0
    whole = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("#")]
    monkeypatch.setattr(streaming, "STREAM_ABOVE_BYTES", 1000)
    rc = main(["detect", str(run), log, "--chunk-lines", "500", "--out", str(tmp_path / "s.csv")])
    assert rc == 0
    cap = capsys.readouterr()
    assert "in chunks of 500 lines" in cap.err
    streamed = [ln for ln in cap.out.splitlines() if ln.startswith("#")]
    assert sorted(streamed) == sorted(whole) and "lines read" in cap.out
    assert "format openstack, session rule regex:" in cap.out
    assert len(pd.read_csv(tmp_path / "s.csv")) == len(whole)
    first = whole[0].split()[0].lstrip("#")
    rc = main(["flag", str(run), first])
    assert "kept no entries to review" in _one_line_error(capsys, rc)
    assert main(["detect", str(run), log, "--in-memory"]) == 0  # reviewable again
    capsys.readouterr()
    assert main(["diagnose", str(run), first]) == 0
    rc = main(["detect", str(run), "-", "--stream"])
    assert "use --follow for standard input" in _one_line_error(capsys, rc)


def test_gz_stdin_csv_html_and_strict(run, logs, tmp_path, capsys, monkeypatch):
    rc = main(["detect", str(run), str(logs / "test.log.gz"), "--out", str(tmp_path / "r.csv")])
    assert rc == 0
    from_gz = capsys.readouterr().out
    table = pd.read_csv(tmp_path / "r.csv")
    assert {"id", "line", "kind", "rule", "template", "why"} <= set(table.columns)
    data = (logs / "test.log").read_bytes()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    rc = main(["detect", str(run), "-", "--out", str(tmp_path / "r.html"), "--strict"])
    assert rc == 1  # anomalies with --strict
    assert capsys.readouterr().out == from_gz
    page = (tmp_path / "r.html").read_text()
    assert "Plotly.newPlot" in page and "lines read" in page and "<script src" not in page


@pytest.mark.slow
def test_follow_reports_as_lines_arrive(run, logs, tmp_path):
    grow = tmp_path / "grow.log"
    grow.write_text("")
    cmd = [sys.executable, "-m", "workbench.cli", "detect", str(run), str(grow), "--follow"]
    cmd += ["--stop-after-idle", "4", "--poll", "0.2", "--idle-lines", "200"]
    proc = subprocess.Popen(
        cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**__import__("os").environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    lines = (logs / "test.log").read_text().splitlines(keepends=True)
    with grow.open("a") as fh:
        for i in range(0, len(lines), 500):
            fh.writelines(lines[i : i + 500])
            fh.flush()
            time.sleep(0.3)
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err
    assert any(ln.startswith("#") for ln in out.splitlines()), out
    assert f"lines read {len(lines)}" in out
    held = int(out.split("at most ")[1].split()[0])
    assert held < len(lines)  # bounded: closed sessions are dropped


def test_bad_input_is_one_line_and_exit_2(run, logs, tmp_path, capsys):
    cases = [
        ["train", str(tmp_path / "missing.log"), "--out", str(tmp_path / "r")],
        ["train", str(logs / "train.log"), "--out", str(tmp_path / "r"), "--session", "blk"],
        ["train", str(logs / "train.log"), "--out", str(tmp_path / "r"), "--format", "nope"],
        ["detect", str(tmp_path / "norun"), str(logs / "test.log")],
        ["detect", str(run), str(tmp_path / "missing.log")],
        ["detect", str(run), str(logs / "test.log"), "--out", str(tmp_path / "r.xlsx")],
        ["diagnose", str(run), "abc"],
        ["diagnose", str(run), "999999"],
        ["flag", str(run), "999999"],
        ["undo", str(tmp_path / "norun")],
        ["show", str(tmp_path / "norun")],
    ]
    for argv in cases:
        rc = main(argv)
        _one_line_error(capsys, rc)


def test_no_session_rule_is_refused_at_training(tmp_path, capsys):
    log = tmp_path / "x.log"
    log.write_text("".join(f"2024-01-01 10:00:{i:02d} INFO app: step {i % 3}\n" for i in range(50)))
    rc = main(["train", str(log), "--out", str(tmp_path / "r"), *TRAIN])
    err = _one_line_error(capsys, rc)
    assert "no sessions" in err and "--session" in err


def test_train_says_why_its_rule(logs, tmp_path, capsys):
    """The recommended preset chooses g, END limit and floor on validation; train says why."""
    out = tmp_path / "run"
    assert main(["train", str(logs / "train.log"), "--out", str(out), "--epochs", "2"]) == 0
    captured = capsys.readouterr()
    rule = [ln for ln in captured.err.splitlines() if ln.startswith("rule: ")]
    assert len(rule) == 1 and "held-out normal sessions" in rule[0], captured.err
    assert len(captured.out.strip().splitlines()) == 1  # still one summary line on stdout
    assert main(["show", str(out)]) == 0
    why = rule[0].removeprefix("rule: ")
    assert f"  why: {why}" in capsys.readouterr().out  # show says the same as train did
