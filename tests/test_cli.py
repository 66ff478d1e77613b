"""The command line: parse writes entries and templates and prints a summary."""

from __future__ import annotations

import pandas as pd
import pytest

from workbench.cli import main

LINES = "\n".join(
    [
        "081109 203615 148 INFO dfs.DataNode: Receiving block blk_1 src: /10.0.0.1:5",
        "081109 203616 148 INFO dfs.DataNode: Receiving block blk_2 src: /10.0.0.1:5",
        "garbage",
    ]
)


def test_parse_command_writes_outputs(tmp_path, capsys):
    log = tmp_path / "x.log"
    log.write_text(LINES)
    rc = main(["parse", str(log), "--format", "hdfs", "--out", str(tmp_path / "out"), "--csv"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "3 lines, 2 parsed, 1 unparsed (1 does not fit the format)" in out
    assert "2 sessions" in out
    entries = pd.read_csv(tmp_path / "out" / "entries.csv")
    assert len(entries) == 3
    assert (tmp_path / "out" / "templates.csv").exists()


def test_parse_command_parquet_and_session_rule(tmp_path, capsys):
    log = tmp_path / "x.log"
    log.write_text(LINES)
    rc = main(
        [
            "parse",
            str(log),
            "--format",
            "hdfs",
            "--session",
            "window:60",
            "--out",
            str(tmp_path / "o"),
        ]
    )
    assert rc == 0
    entries = pd.read_parquet(tmp_path / "o" / "entries.parquet")
    assert entries["session"].dropna().unique().tolist() == ["w0"]


def test_parse_command_reports_errors(tmp_path, capsys):
    rc = main(["parse", str(tmp_path / "missing.log"), "--out", str(tmp_path / "o")])
    assert rc == 2
    assert "log file not found" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["parse"])
