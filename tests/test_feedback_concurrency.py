"""Feedback one can trust: concurrent flags all taught, updates bound to their report, learned
message kinds journaled (never forgotten, ids never reused), verdicts kept per log, conflicts and
bad ids refused, undo per batch, SIGKILL during updates (a verdict whose update was killed is
withdrawn at the next load, with a warning)."""

from __future__ import annotations

import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from tests.rundir_helpers import NOVEL, copy_run, kill_during_update, novel_log, trained_run
from workbench import keyids
from workbench.feedback.journal import StaleVersionError
from workbench.simulate.engine import simulate
from workbench.workbench import Workbench

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    return trained_run(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="module")
def log_a() -> list[str]:
    return novel_log(simulate(n_instances=40, anomalies={}, seed=9).lines)


@pytest.fixture
def wb(trained, tmp_path):
    w = Workbench.load(copy_run(trained, tmp_path / "run"))
    yield w
    w.close()


def _unknown(report) -> list[int]:
    a = report.anomalies
    return [int(i) for i in a.loc[a["kind"] == "unknown key", "id"]]


def _key_of(wb, raw: str) -> int:
    return int(wb.parser.transform([raw], sessions=False)["key"].iloc[0])


def test_two_threads_flagging_at_once_are_both_taught(wb, log_a):
    report = wb.detect(log_a)
    a, b = _unknown(report)[:2]
    before = wb.key_model.updates_
    v0 = wb.journal.current_version()
    gate = threading.Barrier(2)
    results, errors = {}, []

    def flag(aid):
        try:
            gate.wait()
            results[aid] = wb.flag_false_positive(aid)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=flag, args=(i,)) for i in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors
    versions = wb.journal.versions()
    assert sorted(r.version for r in results.values()) == [v0 + 1, v0 + 2]
    assert [v["parent"] for v in versions[-2:]] == [v0, v0 + 1]  # a chain, no stale parent
    assert {e.anomaly: e.state for e in wb.journal.entries()} == {
        str(a): "applied",
        str(b): "applied",
    }
    implied = sum(len(r.implied) for r in results.values())  # the steps each flag implies
    assert wb.key_model.updates_ == before + 2 + implied  # both examples are in the model
    print(
        json.dumps(
            {
                "threads": 2,
                "versions": [r.version for r in results.values()],
                "states": [e.state for e in wb.journal.entries()],
                "updates_taught": wb.key_model.updates_ - before,
            }
        )
    )


def test_six_threads_each_taught_once(wb, log_a):
    report = wb.detect(log_a)
    ids = [int(i) for i in report.anomalies["id"]][:6]
    v0 = wb.journal.current_version()
    with_threads = [threading.Thread(target=wb.flag_false_positive, args=(i,)) for i in ids]
    for t in with_threads:
        t.start()
    for t in with_threads:
        t.join(timeout=300)
    entries = wb.journal.entries()
    assert sorted(e.anomaly for e in entries) == sorted(map(str, ids))
    assert {e.state for e in entries} == {"applied"}
    assert sorted(e.version for e in entries) == list(range(v0 + 1, v0 + 1 + len(ids)))


def test_a_second_workbench_on_the_run_is_refused_not_committed_stale(trained, tmp_path, log_a):
    d = copy_run(trained, tmp_path / "two")
    one, two = Workbench.load(d), Workbench.load(d)  # one process: the lock is shared
    try:
        one.detect(log_a)
        two.detect(log_a)
        aid = _unknown(one.report)[0]
        one.flag_false_positive(aid)
        with pytest.raises(StaleVersionError, match="load the run again"):
            two.flag_false_positive(_unknown(two.report)[1])
        assert [e.state for e in one.journal.entries()] == ["applied"]
    finally:
        one.close()
        two.close()


def test_background_update_applies_to_the_report_it_was_made_for(wb, log_a, monkeypatch):
    report_a = wb.detect(log_a)
    aid = _unknown(report_a)[0]
    go = threading.Event()
    original = type(wb.key_model).partial_fit

    def held(self, *a, **k):
        go.wait(60)
        return original(self, *a, **k)

    monkeypatch.setattr(type(wb.key_model), "partial_fit", held)
    future = wb.flag_false_positive(aid, background=True)
    other = simulate(n_instances=30, seed=21).lines
    report_b = wb.detect(other)  # the user moved on to another log meanwhile
    go.set()
    result = future.result(timeout=120)
    assert wb.report is report_b  # not replaced by log A's re-scored report
    assert len(result.report.entries) == len(log_a)
    assert result.report.anomaly(aid)["status"] == "false positive"
    again = wb.detect(log_a)
    assert (
        again.anomaly(aid)["status"] == "false positive"
        if aid in set(again.anomalies["id"])
        else True
    )
    assert wb._verdicts(again.entries)[aid] == "false positive"


def test_learned_kinds_survive_a_reload_without_save_and_ids_are_never_reused(
    trained, tmp_path, log_a
):
    d = copy_run(trained, tmp_path / "learn")
    wb = Workbench.load(d)
    report = wb.detect(log_a)
    aid = _unknown(report)[0]
    raw = report.anomaly(aid)["raw"]
    wb.flag_false_positive(aid)
    learned = _key_of(wb, raw)
    assert learned > 0 and learned in wb.key_model.vocab_.keys
    wb.close()  # no save
    wb = Workbench.load(d)
    assert _key_of(wb, raw) == learned  # known after the reload
    assert wb.undo() is not None  # undo the flag: the kind is forgotten, its id stays retired
    assert _key_of(wb, raw) == keyids.UNKNOWN
    wb.close()
    wb = Workbench.load(d)
    assert _key_of(wb, raw) == keyids.UNKNOWN
    log_b = novel_log(simulate(n_instances=40, anomalies={}, seed=10).lines, message="Quux ran")
    other = _unknown(wb.detect(log_b))[0]
    wb.flag_false_positive(other)
    fresh = _key_of(wb, wb.report.anomaly(other)["raw"])
    assert fresh > learned, "a new message kind got a key id that was given before"
    wb.close()


def test_verdicts_persist_across_detect_and_reload_and_conflicts_are_refused(
    trained, tmp_path, log_a
):
    d = copy_run(trained, tmp_path / "verdicts")
    wb = Workbench.load(d)
    report = wb.detect(log_a)
    fp, conf = _unknown(report)[0], int(report.anomalies["id"].iloc[-1])
    wb.flag_false_positive(fp)
    wb.confirm_anomaly(conf)
    n = len(wb.journal.entries())
    with pytest.raises(ValueError, match=f"anomaly {conf} is already marked 'confirmed'"):
        wb.flag_false_positive(conf)
    with pytest.raises(ValueError, match=f"anomaly {fp} is already marked 'false positive'"):
        wb.confirm_anomaly(fp)
    assert len(wb.journal.entries()) == n  # nothing recorded by a refusal
    wb.detect(simulate(n_instances=20, seed=3).lines)  # another log in between
    again = wb.detect(log_a)
    assert again.anomaly(conf)["status"] == "confirmed"
    wb.close()
    wb = Workbench.load(d)
    again = wb.detect(log_a)
    assert again.anomaly(conf)["status"] == "confirmed"
    assert wb._verdicts(again.entries) == {fp: "false positive", conf: "confirmed"}
    wb.close()


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (10.7, "anomaly ids are integers"),
        (10.0, "anomaly ids are integers"),
        ([], "no anomaly ids given"),
        (True, "anomaly ids are integers"),
        ("12", "anomaly ids are integers"),
        ([3, None], "anomaly ids are integers"),
    ],
)
def test_bad_ids_are_refused_before_anything_is_journaled(wb, log_a, bad, message):
    wb.detect(log_a)
    v0 = wb.journal.current_version()
    with pytest.raises(ValueError, match=message):
        wb.flag_false_positive(bad)
    assert wb.journal.current_version() == v0 and wb.journal.entries() == []


def test_numpy_ids_and_repeats_are_fine(wb, log_a):
    report = wb.detect(log_a)
    aid = np.int64(_unknown(report)[0])
    result = wb.flag_false_positive([aid, aid])
    assert result.anomaly_id == int(aid) and len(wb.journal.entries()) == 1


def test_undo_undoes_the_whole_batch_its_templates_and_verdicts(wb, log_a):
    report = wb.detect(log_a)
    batch = wb.similar(_unknown(report)[0])
    assert len(batch) == 4
    raw = report.anomaly(batch[0])["raw"]
    v0 = wb.journal.current_version()
    wb.flag_false_positive(batch)
    assert _key_of(wb, raw) > 0
    assert wb.undo() == v0
    assert {e.state for e in wb.journal.entries()} == {"undone"}
    assert _key_of(wb, raw) == keyids.UNKNOWN
    again = wb.detect(log_a)
    assert all(again.anomaly(i)["status"] == "open" for i in batch)
    assert all(again.anomaly(i)["kind"] == "unknown key" for i in batch)


def test_undo_takes_back_a_confirmation_last_in_first_out(wb, log_a):
    report = wb.detect(log_a)
    a = _unknown(report)[0]
    b = int(report.anomalies.loc[report.anomalies["kind"] == "parameter", "id"].iloc[-1])
    wb.flag_false_positive(a)
    v = wb.journal.current_version()
    wb.confirm_anomaly(b)
    assert wb.undo() == v  # the confirmation goes first, the weights stay
    assert wb.report.anomaly(b)["status"] == "open"
    assert wb.report.anomaly(a)["status"] == "false positive"


# ------------------------------------------------------------------ kill during update
# Kill moments are drawn uniformly from a seeded generator: a one-example hypothesis list of
# floats is all zeros (every kill before the first flag began).
def test_kill_during_update_keeps_the_run_consistent(trained, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("killupd")
    figures = kill_during_update(trained, tmp, 1, seed=4)
    assert (figures["kills"], figures["loads"]) == (1, 1)


@pytest.mark.slow
def test_kill_during_update_20_times(trained, tmp_path_factory):
    figures = kill_during_update(trained, tmp_path_factory.mktemp("killupd20"), 20, seed=12)
    print(json.dumps(figures))
    assert (figures["kills"], figures["loads"]) == (20, 20)
    assert figures["withdrawn"] > 0, "no kill landed inside an update"


def test_novel_message_is_what_the_helpers_plant(log_a):
    assert sum(NOVEL in line for line in log_a) == 4


def test_own_commits_are_not_stale_and_a_repeated_flag_makes_no_version(wb, log_a):
    report = wb.detect(log_a)
    wb.journal.commit_version(wb._weights(), reason="trained")  # what fit() does after a load
    aid = _unknown(report)[0]
    first = wb.flag_false_positive(aid)
    again = wb.flag_false_positive(aid)  # already a false positive: nothing new to learn
    assert again.version == first.version == wb.journal.current_version()
    assert len(wb.journal.entries()) == 1


# ------------------------------------------------------------------ an update killed half-way
_KILLED_MID_UPDATE = """
import os, signal, sys
from workbench.feedback.journal import FeedbackJournal
from workbench.workbench import Workbench
from tests.rundir_helpers import novel_log
from workbench.simulate.engine import simulate

def die(self, *args, **kwargs):  # the verdict is journaled, the update is under way: SIGKILL
    if kwargs.get("feedback_ids") or kwargs.get("feedback_id") is not None:
        os.kill(os.getpid(), signal.SIGKILL)
    return commit(self, *args, **kwargs)

commit, FeedbackJournal.commit_version = FeedbackJournal.commit_version, die
wb = Workbench.load(sys.argv[1])
report = wb.detect(novel_log(simulate(n_instances=40, anomalies={}, seed=9).lines))
a = report.anomalies
print(int(a.loc[a["kind"] == "unknown key", "id"].iloc[0]), flush=True)
wb.flag_false_positive(int(a.loc[a["kind"] == "unknown key", "id"].iloc[0]))
print("NOT KILLED", flush=True)
"""


def test_a_flag_killed_mid_update_is_withdrawn_and_said_at_load(trained, tmp_path, log_a, caplog):
    d = copy_run(trained, tmp_path / "mid")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run(
        [sys.executable, "-c", _KILLED_MID_UPDATE, str(d)],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=600,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stdout + proc.stderr[-2000:]
    aid = int(proc.stdout.split()[0])
    with sqlite3.connect(d / "journal.sqlite") as db:  # what the kill left: a pending verdict
        assert db.execute("SELECT state FROM feedback").fetchall() == [("pending",)]
    with caplog.at_level(logging.WARNING, logger="workbench.save_load"):
        wb = Workbench.load(d)
    try:
        assert [e.anomaly for e in wb.interrupted_feedback] == [str(aid)]
        assert f"anomaly {aid}) were being learned" in caplog.text
        assert "flag them again" in caplog.text
        assert [e.state for e in wb.journal.entries()] == ["undone"]
        report = wb.detect(log_a)  # the same log: the verdict is not in force, the model never
        row = report.anomalies.set_index("id").loc[aid]  # learned it
        assert row["status"] == "open"
        assert _key_of(wb, row["raw"]) == keyids.UNKNOWN
        result = wb.flag_false_positive(aid)  # given again, it is learned
        assert result.version == 2 and _key_of(wb, row["raw"]) > 0
    finally:
        wb.close()
    again = Workbench.load(d)  # nothing is withdrawn twice
    assert again.interrupted_feedback == []
    assert [e.state for e in again.journal.entries()] == ["undone", "applied"]
    again.close()


def test_a_second_workbench_in_the_process_withdraws_nothing(trained, tmp_path, log_a):
    d = copy_run(trained, tmp_path / "two")
    first = Workbench.load(d)
    fid = first.journal.record("7", "false_positive", {"kind": "key"})  # as mid-update
    second = Workbench.load(d)  # the first may be in the middle of its update: left alone
    assert second.interrupted_feedback == []
    assert [e.state for e in second.journal.entries()] == ["pending"]
    second.close()
    first.journal.discard([fid])
    first.close()
