"""The command line as an investigator meets it with their own files: a gzip cut short, a log of
which no line fits the run's format, an empty file. Each is one clear line and exit 2 on standard
error, never a traceback and never a verdict over nothing."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from workbench.cli import main
from workbench.simulate.engine import simulate

TRAIN = ["--preset", "paper", "--epochs", "2"]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("realuse")
    log = d / "train.log"
    log.write_text("\n".join(simulate(n_instances=40, anomalies={}, seed=5).lines) + "\n")
    out = d / "run"
    assert main(["train", str(log), "--out", str(out), *TRAIN]) == 0
    return out


@pytest.fixture
def sim_log(tmp_path) -> Path:
    log = tmp_path / "test.log"
    log.write_text("\n".join(simulate(n_instances=8, anomalies={}, seed=6).lines) + "\n")
    return log


def _one_line_error(capsys, rc: int, *needles: str) -> str:
    captured = capsys.readouterr()
    assert rc == 2, captured
    err = captured.err
    lines = err.strip().splitlines()  # a progress notice may come first ("reading ... in chunks")
    assert [ln for ln in lines if "error:" in ln] == lines[-1:], err
    assert "Traceback" not in err and "warning" not in err.lower(), err
    for needle in needles:
        assert needle in lines[-1], err
    assert "anomal" not in captured.out, captured.out  # no verdict printed over nothing
    return err


def test_truncated_gzip_to_train_and_detect(run, sim_log, tmp_path, capsys):
    full = gzip.compress(sim_log.read_bytes())
    cut = tmp_path / "cut.log.gz"
    cut.write_bytes(full[: len(full) // 2])
    rc = main(["train", str(cut), "--out", str(tmp_path / "r"), *TRAIN])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and "truncated or corrupt gzip file" in err[-1], err
    for how in ([], ["--stream"]):
        rc = main(["detect", str(run), str(cut), *how])
        _one_line_error(capsys, rc, "cut.log.gz: truncated or corrupt gzip file")


@pytest.mark.parametrize(
    ("name", "data", "needle"),
    [
        ("empty.log", b"", "is empty"),
        ("junk.log", b"%%% not a log line\n@@@@\n", "0 of 2 lines"),
        ("binary.log", bytes(range(256)) * 40, "binary data"),
        ("long.log", b"x" * 200_000 + b"\n", "line too long"),
    ],
)
def test_detect_over_nothing_is_an_error(run, tmp_path, capsys, name, data, needle):
    """No entry checked: exit 2 with one line that says why (not exit 0 and a summary)."""
    log = tmp_path / name
    log.write_bytes(data)
    for how in ([], ["--stream"]):
        rc = main(["detect", str(run), str(log), "--out", str(tmp_path / "r.csv"), *how])
        err = _one_line_error(capsys, rc, "nothing was checked", needle)
        assert not (tmp_path / "r.csv").exists(), err


@pytest.mark.parametrize(
    ("what", "damage"),
    [
        (
            "g",
            lambda d: (d / "report.json").write_text('{"source": "x", "g": "abc", "level": 0.99}'),
        ),
        ("list", lambda d: (d / "report.json").write_text("[1, 2]")),
        ("entries", lambda d: (d / "entries.parquet").unlink()),
        ("parquet", lambda d: (d / "entries.parquet").write_bytes(b"PAR1 not really PAR1")),
    ],
)
def test_a_damaged_kept_report_is_one_clear_line(run, sim_log, tmp_path, capsys, what, damage):
    """diagnose/flag on a last report edited or cut by hand: say which file and to detect again."""
    copy = tmp_path / "run"
    import shutil

    shutil.copytree(run, copy)
    assert main(["detect", str(copy), str(sim_log)]) in (0, 1)
    damage(copy / "last_report")
    capsys.readouterr()
    for command in (["diagnose", str(copy), "1"], ["flag", str(copy), "1"]):
        rc = main(command)
        _one_line_error(capsys, rc, "last_report", "detect", "again")


def test_output_into_a_closed_pipe_is_no_error(run, capsys, monkeypatch):
    """``deeplog-workbench show RUN | head -3``: the reader leaving is not an error of the tool."""

    class ClosedPipe:
        def write(self, text: str) -> int:
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self) -> None:
            raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr("sys.stdout", ClosedPipe())
    rc = main(["show", str(run)])
    monkeypatch.undo()
    err = capsys.readouterr().err
    assert rc == 0 and "error" not in err, err


def test_a_header_written_with_plain_brackets_says_to_escape_them(tmp_path, capsys):
    """``--format "<Timestamp> <Level> [<Component>] <Content>"`` fits no line (loghub headers are
    regular expressions): the error says which characters to escape, for parse and for train."""
    log = tmp_path / "app.log"
    log.write_text("".join(f"2024-03-05T10:00:0{i}Z INFO [api] step {i} done\n" for i in range(8)))
    header = "<Timestamp> <Level> [<Component>] <Content>"
    rc = main(["parse", str(log), "--format", header, "--out", str(tmp_path / "p")])
    _one_line_error(capsys, rc, "'\\['")
    rc = main(["train", str(log), "--format", header, "--out", str(tmp_path / "r"), *TRAIN])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and "'\\[' '\\]'" in err[-1], err
    escaped = "<Timestamp> <Level> \\[<Component>\\] <Content>"
    assert main(["parse", str(log), "--format", escaped, "--out", str(tmp_path / "p")]) == 0


def test_gzip_on_standard_input(run, sim_log, capsys, monkeypatch):
    """``detect RUN - < log.gz``: the help says plain or .gz; standard input is no exception."""
    import io
    import sys

    def stdin(data: bytes):
        return io.TextIOWrapper(io.BytesIO(data))

    monkeypatch.setattr(sys, "stdin", stdin(sim_log.read_bytes()))
    assert main(["detect", str(run), "-"]) in (0, 1)
    plain = capsys.readouterr().out
    assert "entries scored" in plain
    packed = gzip.compress(sim_log.read_bytes())
    monkeypatch.setattr(sys, "stdin", stdin(packed))
    assert main(["detect", str(run), "-"]) in (0, 1)
    assert capsys.readouterr().out == plain
    monkeypatch.setattr(sys, "stdin", stdin(packed[: len(packed) // 2]))
    _one_line_error(capsys, main(["detect", str(run), "-"]), "truncated or corrupt gzip")


def test_stream_with_a_time_window_rule_says_what_to_do(tmp_path, capsys):
    log = tmp_path / "w.log"
    log.write_text("\n".join(simulate(n_instances=30, anomalies={}, seed=8).lines) + "\n")
    run = tmp_path / "run"
    assert main(["train", str(log), "--session", "window:30", "--out", str(run), *TRAIN]) == 0
    capsys.readouterr()
    rc = main(["detect", str(run), str(log), "--stream"])
    _one_line_error(capsys, rc, "window:30", "--in-memory")


@pytest.mark.parametrize(
    ("option", "needle"),
    [
        (["--level", "99"], "--level must be in (0, 1)"),
        (["--level", "0"], "--level must be in (0, 1)"),
        (["--level", "nan"], "--level must be in (0, 1)"),
        (["--year", "0"], "--year must be between 1 and 9999"),
        (["--year", "99999"], "--year must be between 1 and 9999"),
        (["--chunk-lines", "0", "--stream"], "--chunk-lines must be at least 1"),
        (["--out", "/nonexistent-folder/r.csv"], "no folder /nonexistent-folder"),
    ],
)
def test_impossible_options_are_refused_before_reading(run, sim_log, capsys, option, needle):
    rc = main(["detect", str(run), str(sim_log), *option])
    _one_line_error(capsys, rc, needle)


def test_the_api_refuses_a_level_given_as_a_percentage(run):
    from workbench.workbench import Workbench

    wb = Workbench.load(run, read_only=True)
    try:
        with pytest.raises(ValueError, match=r"level must be a confidence level in \(0, 1\)"):
            wb.detect(["x"], level=99)
    finally:
        wb.close()


def test_a_latin1_log_is_named_as_such(sim_log, tmp_path, capsys):
    """Bytes that are not UTF-8 are replaced, which changes the templates: the summary says how
    many lines and what to do, rather than leaving unknown keys unexplained."""
    lines = sim_log.read_text().splitlines()
    latin = tmp_path / "latin1.log"
    latin.write_bytes(
        "\n".join(ln.replace("Creating", "Créating") for ln in lines).encode("latin-1") + b"\n"
    )
    assert main(["parse", str(latin), "--out", str(tmp_path / "p")]) == 0
    out = capsys.readouterr().out
    changed = sum("Creating" in ln for ln in lines)
    assert changed and f"{changed} parsed lines had bytes that are not UTF-8" in out, out
    assert main(["parse", str(sim_log), "--out", str(tmp_path / "q")]) == 0
    assert "not UTF-8" not in capsys.readouterr().out


def test_a_streamed_report_says_how_many_sessions_came_back_after_closing() -> None:
    """A session closed by an end key or inactivity that receives more lines is scored again from
    there: the summary counts it once more, so it says how many of its sessions are such parts."""
    from workbench.detect.chunked import StreamReport

    counts = {"lines": 500, "parsed": 500, "sessions": 477, "sessions_reopened": 15}
    report = StreamReport(entries=None, anomalies=None, g=9, level=0.99, counts=counts)
    lines = report.coverage.lines_summary()
    assert "477 sessions (15 of them the rest of a session that came back" in "\n".join(lines)
