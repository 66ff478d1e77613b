"""The command line under bad input: one line on stderr and exit 2, never a traceback, never a
replaced device, never a hang; fuzzed with hypothesis over bytes, encodings, line endings, sizes."""

from __future__ import annotations

import gzip
import os
import stat
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench.cli import main
from workbench.simulate.engine import simulate

FUZZ = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("cli")
    log = d / "sim.log"
    log.write_text("\n".join(simulate(n_instances=10, seed=1).lines) + "\n")
    full = gzip.compress(log.read_bytes())
    out = {"log": log, "trunc": d / "trunc.gz", "cat": d / "cat.log", "empty": d / "empty.txt"}
    out["trunc"].write_bytes(full[: len(full) // 2])
    out["cat"].write_text("a" * 40 + "!\n")
    out["empty"].write_text("")
    for name, text in {
        "train": "1 2 3\n1 2 4\n1 2 3\n",
        "normal": "1 2 3\n",
        "abnormal": "1 9 3\n",
        "dash": "1 --5 3\n",
        "super": "1 \u00b2 3\n",
        "arabic": "1 \u0663 3\n",
        "huge": f"1 2 {2**63}\n1 2 {2**64 + 7}\n",
        "blank": "\n  \n",
    }.items():
        out[name] = d / f"{name}.txt"
        out[name].write_text(text, encoding="utf-8")
    out["dir"] = d
    return out


def _run(argv: list[str], capsys) -> tuple[int, str]:
    rc = main([str(a) for a in argv])
    return rc, capsys.readouterr().err


def _one_line_error(rc: int, err: str, *needles: str) -> None:
    assert rc == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for n in needles:
        assert n in err, err


def _evaluate(files, train="train", normal="normal", abnormal="abnormal", model="ngram"):
    return [
        "evaluate",
        "--train",
        files[train],
        "--test-normal",
        files[normal],
        "--test-abnormal",
        files[abnormal],
        "--model",
        model,
    ]


# ------------------------------------------------------------------ the table of the issue
def test_truncated_gzip(files, tmp_path, capsys):
    rc, err = _run(["parse", files["trunc"], "--out", tmp_path / "o"], capsys)
    _one_line_error(rc, err, "trunc.gz: truncated or corrupt gzip file")


def test_optional_content_group(files, tmp_path, capsys):
    rc, err = _run(
        ["parse", files["log"], "--format", "(?P<Content>x)?.*", "--out", tmp_path / "o"], capsys
    )
    _one_line_error(rc, err, "none of the", "check --format")


@pytest.mark.parametrize(
    ("name", "token"), [("dash", "'--5'"), ("super", "'²'"), ("arabic", "'٣'")]
)
def test_bad_key_tokens(files, capsys, name, token):
    rc, err = _run(_evaluate(files, train=name), capsys)
    _one_line_error(rc, err, f"{name}.txt:1: bad log key {token}")


def test_huge_key_ids_are_renumbered_not_a_traceback(files, capsys):
    rc, err = _run([*_evaluate(files, train="huge"), "--json"], capsys)
    assert rc == 0 and "Traceback" not in err


@pytest.mark.parametrize("role", ["train", "normal", "abnormal"])
@pytest.mark.parametrize("content", ["empty", "blank"])
def test_empty_inputs_to_evaluate(files, capsys, role, content):
    rc, err = _run(_evaluate(files, **{role: content}), capsys)
    _one_line_error(rc, err, f"{content}.txt: no ")


def test_catastrophic_format_regex_is_stopped(files, tmp_path, capsys):
    rc, err = _run(
        ["parse", files["cat"], "--format", "(?P<Content>(a|aa)+)$", "--out", tmp_path / "o"],
        capsys,
    )
    _one_line_error(rc, err, "ran over 1 s on one line")


def test_catastrophic_session_regex_is_stopped(files, tmp_path, capsys):
    argv = ["parse", files["cat"], "--format", "<Content>", "--session", "regex:(a|aa)+$"]
    rc, err = _run([*argv, "--out", tmp_path / "o"], capsys)
    _one_line_error(rc, err, "session regex", "ran over 1 s on one line")


@pytest.mark.skipif(not Path("/dev/null").exists(), reason="no /dev/null")
def test_output_paths_must_be_regular_files(files, tmp_path, capsys):
    rc, err = _run(["simulate", "--out", "/dev/null", "--instances", "3"], capsys)
    _one_line_error(rc, err, "/dev/null: exists and is not a regular file")
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    rc, err = _run(["parse", files["log"], "--out", "/dev/null"], capsys)
    _one_line_error(rc, err, "/dev/null: exists and is not a directory")
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "templates.csv").mkdir()
    rc, err = _run(["parse", files["log"], "--out", tmp_path / "o"], capsys)
    _one_line_error(rc, err, "templates.csv: exists and is not a regular file")


def test_key_memory_does_not_follow_the_largest_id():
    from workbench.eval.protocol import dense_keys

    train, test = dense_keys([(1, 10**8, 2**70)], [(5,)])
    assert train == [(1, 3, 4)] and test == [(2,)]


# ------------------------------------------------------------------ fuzzing
_ENDINGS = st.sampled_from(["\n", "\r\n", "\r", ""])
_ENCODINGS = st.sampled_from(["utf-8", "latin-1", "utf-16", "cp1252"])


@FUZZ
@given(
    lines=st.lists(st.text(max_size=80), max_size=30),
    ending=_ENDINGS,
    encoding=_ENCODINGS,
    raw=st.binary(max_size=200),
    gz=st.booleans(),
    fmt=st.sampled_from(["openstack", "<Level> <Content>", "<Content>", "hdfs"]),
    long=st.sampled_from([0, 0, 0, 70_000]),
)
def test_parse_never_crashes(tmp_path_factory, capsys, lines, ending, encoding, raw, gz, fmt, long):
    d = tmp_path_factory.mktemp("fuzz")
    data = ending.join(lines).encode(encoding, errors="replace") + raw + b"INFO " + b"x" * long
    log = d / ("x.gz" if gz else "x.log")
    log.write_bytes(gzip.compress(data) if gz else data)
    rc = main(["parse", str(log), "--format", fmt, "--out", str(d / "o")])
    err = capsys.readouterr().err
    assert rc in (0, 2)
    assert "Traceback" not in err
    if rc == 2:
        assert err.count("\n") == 1, err


_TOKEN = st.one_of(
    st.integers(0, 2**70).map(str),
    st.integers(-5, -1).map(str),
    st.text(alphabet="0123456789-+²٣xé ", min_size=1, max_size=6),
)


@FUZZ
@given(
    rows=st.lists(st.lists(_TOKEN, max_size=6).map(" ".join), max_size=8),
    ending=_ENDINGS,
    encoding=st.sampled_from(["utf-8", "latin-1"]),
)
def test_evaluate_never_crashes(tmp_path_factory, capsys, files, rows, ending, encoding):
    d = tmp_path_factory.mktemp("fuzzkeys")
    train = d / "train.txt"
    train.write_bytes(ending.join(rows).encode(encoding, errors="replace"))
    rc = main(
        [
            "evaluate",
            "--train",
            str(train),
            "--test-normal",
            str(files["normal"]),
            "--test-abnormal",
            str(files["abnormal"]),
            "--model",
            "ngram",
            "--json",
        ]
    )
    err = capsys.readouterr().err
    assert rc in (0, 2)
    assert "Traceback" not in err
    if rc == 2:
        assert err.count("\n") == 1, err
