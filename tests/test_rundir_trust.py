"""Run directories one can trust: loading never runs code, a strict loader that names the file and
the problem, corruption of any file refused cleanly, atomic saves under SIGKILL."""

from __future__ import annotations

import base64
import io
import json
import os
import pickle
import sqlite3
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.rundir_helpers import (
    anomalous_log,
    copy_run,
    gen,
    kill_during_save,
    rewrite,
    trained_run,
)
from workbench import keyids
from workbench.logs.parser import LogParser
from workbench.logs.sessions import SessionRule
from workbench.simulate.engine import simulate
from workbench.store.files import FORMAT_VERSION, RunFormatError, RunLockedError
from workbench.workbench import Workbench

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    return trained_run(tmp_path_factory.getbasetemp())


# ---------------------------------------------------------------------------------- no code runs
def _payloads(marker: Path) -> dict[str, object]:
    cmd = f"touch {marker}"
    return {
        "py/reduce": {"py/reduce": [{"py/function": "os.system"}, {"py/tuple": [cmd]}]},
        "py/object": {
            "py/object": "subprocess.Popen",
            "py/state": {"args": ["touch", str(marker)]},
            "py/newargs": {"py/tuple": [["touch", str(marker)]]},
        },
        "py/function": {"py/function": "os.system", "args": [cmd]},
        "py/type": {"py/type": "subprocess.Popen"},
        "py/repr": {"py/repr": f"os/os.system({cmd!r})"},
    }


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_jsonpickle_payload_is_live(tmp_path):
    """Control: the payloads used below do run code through jsonpickle (the old parser loader)."""
    jsonpickle = pytest.importorskip("jsonpickle")
    marker = tmp_path / "ran"
    jsonpickle.decode(json.dumps(_payloads(marker)["py/reduce"]))
    assert marker.exists()


@pytest.mark.parametrize(
    "target", ["parser.json", "key_model.json", "param_model.json", "workflows.json", "run.json"]
)
def test_loading_crafted_json_runs_nothing(trained, tmp_path, target):
    for name, payload in _payloads(tmp_path / "ran").items():
        for where in ("top", "nested"):
            d = copy_run(trained, tmp_path / f"{target}-{name.replace('/', '_')}-{where}")
            path = d / target if target == "run.json" else gen(d) / target
            obj = json.loads(path.read_text())
            if where == "top":
                obj = payload
            elif isinstance(obj, dict):
                obj = {**obj, **{k: payload for k in list(obj)[:3]}}
            else:
                obj = [payload, *obj]
            rewrite(d, target, json.dumps(obj).encode())
            try:
                wb = Workbench.load(d)
            except RunFormatError as exc:
                assert str(d) in str(exc)
            else:  # a payload in an ignored place may load, as plain data
                wb.close()
            assert not (tmp_path / "ran").exists(), f"{name} in {target} ({where}) ran code"


def test_old_format_with_a_jsonpickle_parser_is_refused_unread(trained, tmp_path):
    marker = tmp_path / "ran"
    d = copy_run(trained, tmp_path / "v1")
    blob = json.dumps(_payloads(marker)["py/reduce"]).encode()
    state = json.loads((gen(d) / "parser.json").read_text())
    state["drain"] = base64.b64encode(zlib.compress(blob)).decode()
    rewrite(d, "parser.json", json.dumps(state).encode())
    m = json.loads((d / "run.json").read_text())
    m["format_version"] = 1
    (d / "run.json").write_text(json.dumps(m))
    with pytest.raises(RunFormatError, match="format version 1 keeps the parser as a pickled"):
        Workbench.load(d)
    m["format_version"] = 2
    (d / "run.json").write_text(json.dumps(m))
    with pytest.raises(RunFormatError, match=r"parser.json: .*drain"):
        Workbench.load(d)
    assert not marker.exists()


@pytest.mark.parametrize("target", ["key_model.pt", "param_model.pt", "journal"])
def test_pickled_code_in_weights_is_refused(trained, tmp_path, target):
    marker = tmp_path / "ran"
    d = copy_run(trained, tmp_path / target)
    buf = io.BytesIO()
    pickle.dump({"w": _Evil(marker)}, buf)
    if target == "journal":  # a newer model version in the journal, as after unsaved feedback
        with sqlite3.connect(d / "journal.sqlite") as db:
            db.execute(
                "INSERT INTO versions (parent, created, reason, weights) VALUES (1, 'x', 'x', ?)",
                (buf.getvalue(),),
            )
            db.execute("UPDATE meta SET value = '2' WHERE name = 'current_version'")
    else:
        rewrite(d, target, buf.getvalue())
    with pytest.raises(RunFormatError, match=r"(\.pt|journal\.sqlite): .*(Weights only|cannot)"):
        Workbench.load(d)
    assert not marker.exists()


# ---------------------------------------------------------------------------------- strict loader
def _manifest_case(trained, tmp_path, name, change) -> Path:
    d = copy_run(trained, tmp_path / name)
    m = json.loads((d / "run.json").read_text())
    change(m)
    (d / "run.json").write_text(json.dumps(m))
    return d


@pytest.mark.parametrize(
    ("name", "change", "message"),
    [
        ("nofiles", lambda m: m.update(files={}), "required files are not listed"),
        ("v0", lambda m: m.update(format_version=0), "unknown format version 0"),
        ("vneg", lambda m: m.update(format_version=-1), "unknown format version -1"),
        ("vtrue", lambda m: m.update(format_version=True), "format version True is not an int"),
        ("vstr", lambda m: m.update(format_version="2"), "format version '2' is not an int"),
        ("v99", lambda m: m.update(format_version=99), "format version 99 is newer"),
        ("gen", lambda m: m.update(generation="../x"), "'generation' must name"),
        ("journal", lambda m: m.update(journal="/etc/passwd"), "'journal' must name"),
        ("extra", lambda m: m["files"].update({"../x": "0" * 64}), "unknown files listed"),
        ("digest", lambda m: m["files"].update({"parser.json": 5}), "not a SHA-256"),
        ("jv", lambda m: m.update(journal_version="1"), "'journal_version' must be an int"),
        ("level", lambda m: m.update(level=3), "'level' must be a number in"),
        ("cfg", lambda m: m.update(key_config={"nope": 1}), "run.json: "),
        (
            "fitrep",
            lambda m: m.update(fit_report={"lines": 1, "stages": {"k": {"x": [1]}}}),
            "'fit_report' must be null",
        ),
        ("fitrep2", lambda m: m.update(fit_report={"py/object": "os.system"}), "'fit_report'"),
        ("list", lambda m: m.clear(), "not a DeepLog Workbench run manifest"),
    ],
)
def test_manifest_refusals_name_the_file(trained, tmp_path, name, change, message):
    d = _manifest_case(trained, tmp_path, name, change)
    with pytest.raises(RunFormatError, match=message) as err:
        Workbench.load(d)
    assert str(d / "run.json") in str(err.value)


def test_the_fit_report_is_saved_with_the_run(trained, tmp_path):
    """What the fit read and cost stays with the run: ``fit_report_`` after loading, ``show``
    prints it, and a run written before it was saved (no ``fit_report``) still loads."""
    wb = Workbench.load(copy_run(trained, tmp_path / "a"), read_only=True)
    report = wb.fit_report_
    wb.close()
    assert report is not None and report.lines > 0
    assert {"key model", "parameter models", "workflows"} <= set(report.stages)
    assert report.stages["key model"]["cpu_seconds"] >= 0
    out = subprocess.run(
        [sys.executable, "-m", "workbench.cli", "show", str(tmp_path / "a")],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    ).stdout
    assert f"trained on {report.summary()}" in out
    d = _manifest_case(trained, tmp_path, "older", lambda m: m.pop("fit_report"))
    wb = Workbench.load(d, read_only=True)
    assert wb.fit_report_ is None
    wb.close()


def test_journal_refusals(trained, tmp_path):
    d = copy_run(trained, tmp_path / "empty")
    (d / "journal.sqlite").write_bytes(b"")
    with pytest.raises(RunFormatError, match=r"journal.sqlite: the journal is empty \(0 bytes\)"):
        Workbench.load(d)
    d = copy_run(trained, tmp_path / "schema")
    (d / "journal.sqlite").unlink()
    with sqlite3.connect(d / "journal.sqlite") as db:
        db.execute("CREATE TABLE other (x)")
    with pytest.raises(RunFormatError, match=r"journal.sqlite: table 'versions' is missing"):
        Workbench.load(d)
    d = copy_run(trained, tmp_path / "noversion")
    with sqlite3.connect(d / "journal.sqlite") as db:
        db.execute("DELETE FROM meta")
    with pytest.raises(RunFormatError, match=r"journal.sqlite: it holds no model version"):
        Workbench.load(d)
    d = copy_run(trained, tmp_path / "garbage")
    (d / "journal.sqlite").write_bytes(b"not a database at all" * 100)
    with pytest.raises(RunFormatError, match=r"journal.sqlite: not a usable feedback journal"):
        Workbench.load(d)


def test_read_only_load_refuses_feedback_and_takes_no_lock(trained, tmp_path):
    d = copy_run(trained, tmp_path / "ro")
    wb = Workbench.load(d, read_only=True)
    try:
        assert wb.read_only
        wb.detect(anomalous_log())
        with pytest.raises(PermissionError, match="loaded read-only"):
            wb.flag_false_positive(int(wb.report.anomalies["id"].iloc[0]))
        with pytest.raises(RunFormatError, match="loaded read-only; save elsewhere"):
            wb.save(d)
        other = Workbench.load(d)  # no lock held by the read-only view
        other.close()
    finally:
        wb.close()


# ------------------------------------------------------------------ corruption of any file
_OPS = ("truncate", "flip", "remove", "swap")


def _files(d: Path) -> list[Path]:
    return [d / "run.json", d / "journal.sqlite", *sorted(gen(d).iterdir())]


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_corrupting_any_file_is_refused_with_its_name(trained, tmp_path_factory, data):
    d = copy_run(trained, tmp_path_factory.mktemp("corrupt") / "run")
    files = _files(d)
    victim = data.draw(st.sampled_from(files), label="file")
    op = data.draw(st.sampled_from(_OPS), label="op")
    blob = victim.read_bytes()
    if op == "truncate":
        victim.write_bytes(blob[: data.draw(st.integers(0, max(0, len(blob) - 1)), label="n")])
    elif op == "flip":
        i = data.draw(st.integers(0, len(blob) - 1), label="at")
        bit = data.draw(st.integers(0, 7), label="bit")
        victim.write_bytes(blob[:i] + bytes([blob[i] ^ (1 << bit)]) + blob[i + 1 :])
    elif op == "remove":
        victim.unlink()
    else:
        other = data.draw(st.sampled_from([f for f in files if f != victim]), label="with")
        a, b = victim.read_bytes(), other.read_bytes()
        victim.write_bytes(b)
        other.write_bytes(a)
    try:
        wb = Workbench.load(d)
    except RunFormatError as exc:
        assert str(d) in str(exc), f"the refusal does not name a file of the run: {exc}"
    else:  # only a change SQLite cannot see (a page it never reads) may load; it must work
        wb.detect()
        wb.close()


# ------------------------------------------------------------------ two processes, one directory
def test_second_process_gets_a_clear_error(trained, tmp_path):
    d = copy_run(trained, tmp_path / "locked")
    wb = Workbench.load(d)
    try:
        code = (
            "import sys\nfrom workbench.workbench import Workbench\n"
            "try:\n    Workbench.load(sys.argv[1])\nexcept Exception as e:\n"
            "    print(type(e).__name__, e)\n"
        )
        env = dict(os.environ, PYTHONPATH=str(REPO))
        out = subprocess.run(
            [sys.executable, "-c", code, str(d)], capture_output=True, text=True, env=env
        )
        assert out.stdout.startswith("RunLockedError"), out.stdout + out.stderr[-2000:]
        assert f"in use by another process (pid {os.getpid()})" in out.stdout
        print(out.stdout.strip())
    finally:
        wb.close()
    again = Workbench.load(d)  # released on close
    again.close()
    assert issubclass(RunLockedError, RunFormatError)


def test_saving_over_another_run_is_refused_and_never_mixes_journals(trained, tmp_path):
    a = Workbench.load(copy_run(trained, tmp_path / "a"))
    b_dir = copy_run(trained, tmp_path / "b")
    b = Workbench.load(b_dir)
    b.detect(anomalous_log())
    b.confirm_anomaly(int(b.report.anomalies["id"].iloc[0]))
    b_entries = [e.anomaly for e in b.journal.entries()]
    b.close()
    with pytest.raises(RunFormatError, match=r"holds another run.*overwrite=True"):
        a.save(b_dir)
    with pytest.raises(RunFormatError, match="holds other files"):
        (tmp_path / "c").mkdir()
        (tmp_path / "c" / "notes.txt").write_text("mine")
        a.save(tmp_path / "c")
    assert (tmp_path / "c" / "notes.txt").read_text() == "mine"
    back = Workbench.load(b_dir)  # untouched by the refused save
    assert [e.anomaly for e in back.journal.entries()] == b_entries
    back.close()
    a.save(b_dir, overwrite=True)
    assert a.journal.entries() == []
    a.close()
    now = Workbench.load(b_dir)
    assert now.journal.entries() == []  # a's journal, not b's mixed in
    assert sorted(p.name for p in b_dir.glob("journal*.sqlite")) == [Path(now.journal.path).name]
    now.close()


# ------------------------------------------------------------------ transform identical after load
def _roundtrip(parser: LogParser) -> LogParser:
    return LogParser.from_state(json.loads(json.dumps(parser.to_state())))


def test_parser_state_transforms_identically_on_the_simulator():
    p = LogParser("openstack").fit(simulate(n_instances=60, anomalies={}, seed=1).lines)
    test = simulate(n_instances=40, seed=2).lines
    a, b = p.transform(test), _roundtrip(p).transform(test)
    np.testing.assert_array_equal(a["key"], b["key"])
    assert a["template"].tolist() == b["template"].tolist()
    assert a["params"].tolist() == b["params"].tolist()
    assert _roundtrip(p).to_state() == p.to_state()


@pytest.mark.data
def test_parser_state_transforms_identically_on_loghub(shared_data):
    for system, fmt in (("Linux", "linux"), ("HDFS", "hdfs"), ("Zookeeper", "zookeeper")):
        log = shared_data / "loghub_2k" / system / f"{system}_2k.log"
        if not log.is_file():
            pytest.skip(f"{log} is missing")
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
        p = LogParser(fmt).fit(lines[:1000])
        a, b = p.transform(lines[1000:]), _roundtrip(p).transform(lines[1000:])
        np.testing.assert_array_equal(a["key"], b["key"])
        assert a["template"].tolist() == b["template"].tolist()


def test_session_rule_is_an_optional_plain_field():
    p = LogParser("<Level> <Content>").fit(["INFO took 3 s", "INFO took 5 s"])
    p.session_rule = SessionRule.parse("window:60")
    state = json.loads(json.dumps(p.to_state()))
    assert state["session_rule"] == str(p.session_rule)
    assert _roundtrip(p).session_rule == p.session_rule
    del state["session_rule"]
    assert getattr(LogParser.from_state(state), "session_rule", None) is None
    state["session_rule"] = {"py/reduce": []}
    with pytest.raises(ValueError, match="session_rule"):
        LogParser.from_state(state)


# ------------------------------------------------------------------ kill during save
# Kill moments are drawn uniformly from a seeded generator: a one-example hypothesis list of
# floats is all zeros (every kill before the first save began).
def test_kill_during_save_leaves_a_loadable_run(trained, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("kill")
    figures = kill_during_save(trained, tmp, kills=1, seed=3)
    assert figures["load_failures"] == 0


@pytest.mark.slow
def test_kill_during_save_24_times(trained, tmp_path_factory):
    figures = kill_during_save(trained, tmp_path_factory.mktemp("kill24"), 24, seed=11)
    print(json.dumps(figures))
    assert (figures["kills"], figures["loads"], figures["load_failures"]) == (24, 48, 0)
    assert figures["mid_save"] > 0, "no kill landed inside a save"


# ------------------------------------------------------------------ runs of the previous format
#: A run directory saved by the previous version of this package (run format 2, where the end
#: of a session was -1): 12 simulated instances, a tiny key model, one "session end" anomaly
#: flagged as a false positive and one key anomaly confirmed, then saved.
FORMAT2 = Path(__file__).resolve().parent / "data" / "format2_run"


def _end_examples(entries) -> list[int]:
    return [e.example["next"] for e in entries if e.example.get("kind") == "session end"]


def _raw_next(journal: Path) -> list[int]:
    with sqlite3.connect(journal) as db:
        rows = db.execute("SELECT example FROM feedback").fetchall()
    return [json.loads(r[0])["next"] for r in rows if json.loads(r[0])["kind"] == "session end"]


def test_a_format_2_run_loads_with_the_end_of_a_session_translated(tmp_path):
    assert json.loads((FORMAT2 / "run.json").read_text())["format_version"] == 2
    assert _raw_next(FORMAT2 / "journal.sqlite") == [-1]
    d = copy_run(FORMAT2, tmp_path / "old")
    wb = Workbench.load(d)
    try:
        assert _end_examples(wb.journal.entries()) == [keyids.END]
        assert [(e.verdict, e.state) for e in wb.journal.entries()] == [
            ("false_positive", "applied"),
            ("confirmed", "recorded"),
        ]
        assert _raw_next(d / "journal.sqlite") == [keyids.END]  # rewritten in the journal
        report = wb.detect()
        assert len(report.entries) > 0
        wb.save()
    finally:
        wb.close()
    assert json.loads((d / "run.json").read_text())["format_version"] == FORMAT_VERSION
    again = Workbench.load(d)  # saved as format 3: read as it is, nothing translated twice
    assert _end_examples(again.journal.entries()) == [keyids.END]
    again.close()


def test_a_format_2_run_loaded_read_only_reads_and_copies_translated(tmp_path):
    d = copy_run(FORMAT2, tmp_path / "old")
    wb = Workbench.load(d, read_only=True)
    try:
        assert _end_examples(wb.journal.entries()) == [keyids.END]
        assert _raw_next(d / "journal.sqlite") == [-1]  # the read-only run is not written
        wb.save(tmp_path / "copy")
    finally:
        wb.close()
    assert _raw_next(tmp_path / "copy" / "journal.sqlite") == [keyids.END]
    copy = Workbench.load(tmp_path / "copy")
    assert _end_examples(copy.journal.entries()) == [keyids.END]
    copy.close()
