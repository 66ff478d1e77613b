"""A loghub log as an investigator brings it: train on the head of OpenSSH_2k with a session
rule of their own (``field:Pid``), detect on the tail in memory and in chunks (chunks smaller than
the log, sessions crossing them): the same report row for row (scores equal to float noise: the
batches differ)."""

from __future__ import annotations

import pandas as pd
import pytest

from workbench.cli import main


@pytest.fixture(scope="module")
def openssh(shared_data, tmp_path_factory):
    log = shared_data / "loghub_2k" / "OpenSSH" / "OpenSSH_2k.log"
    if not log.is_file():
        pytest.skip(f"{log} not found")
    d = tmp_path_factory.mktemp("openssh")
    lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    (d / "head.log").write_text("\n".join(lines[:1500]) + "\n")
    (d / "tail.log").write_text("\n".join(lines[1500:]) + "\n")
    run = d / "run"
    argv = ["train", str(d / "head.log"), "--session", "field:Pid", "--out", str(run)]
    assert main([*argv, "--epochs", "3"]) == 0
    return d, run


def test_stream_and_in_memory_reports_are_identical(openssh, tmp_path, capsys):
    d, run = openssh
    mem, chunked = tmp_path / "m.csv", tmp_path / "s.csv"
    assert main(["detect", str(run), str(d / "tail.log"), "--in-memory", "--out", str(mem)]) == 0
    printed = capsys.readouterr().out
    argv = ["detect", str(run), str(d / "tail.log"), "--stream", "--chunk-lines", "50"]
    assert main([*argv, "--out", str(chunked)]) == 0
    assert capsys.readouterr().out == printed
    assert "key model: " in printed and "entries scored" in printed and "lines read 500" in printed
    a, b = pd.read_csv(mem), pd.read_csv(chunked)
    assert len(a) > 0 and list(a.columns) == list(b.columns)
    floats = [c for c in a.columns if pd.api.types.is_float_dtype(a[c]) and c != "rank"]
    pd.testing.assert_frame_equal(a.drop(columns=floats), b.drop(columns=floats))
    pd.testing.assert_frame_equal(a[floats], b[floats], rtol=1e-5)
    assert ",27.0," not in mem.read_text()  # ranks are whole numbers beside the blank ones
