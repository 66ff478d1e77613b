"""Feedback journal: verdicts before updates, versions, undo, durability, old runs' examples."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from workbench import keyids
from workbench.feedback.journal import FeedbackJournal
from workbench.feedback.journal_db import LEGACY_END
from workbench.store.files import RunFormatError, atomic_write_bytes, read_json, write_json


def test_verdict_flow_versions_and_undo(tmp_path):
    j = FeedbackJournal(tmp_path / "journal.sqlite")
    assert j.current_version() is None
    v1 = j.commit_version(b"w1", reason="trained")
    f1 = j.record("a1", "false_positive", {"history": [1, 2], "key": 3})
    assert [e.state for e in j.entries()] == ["pending"]
    v2 = j.commit_version(b"w2", reason="fp a1", feedback_id=f1)
    j.record("a2", "confirmed", {"line": 7})
    f3 = j.record("a3", "false_positive", {"history": [2, 3], "key": 4})
    v3 = j.commit_version(b"w3", reason="fp a3", feedback_id=f3)
    assert (v1, v2, v3) == (1, 2, 3)
    assert j.weights() == b"w3"
    assert [e.state for e in j.entries()] == ["applied", "recorded", "applied"]
    assert j.undo() == 2
    assert j.weights() == b"w2"
    assert [e.state for e in j.entries()] == ["applied", "recorded", "undone"]
    assert j.undo() == 2  # undo is last-in first-out: the confirmation given after v2 goes next
    assert [e.state for e in j.entries()] == ["applied", "undone", "undone"]
    assert j.undo() == 1
    assert j.undo() is None
    assert j.current_version() == 1
    assert [v["reason"] for v in j.versions()] == ["trained", "fp a1", "fp a3"]
    j.close()
    # everything survives reopening
    j2 = FeedbackJournal(tmp_path / "journal.sqlite")
    assert j2.current_version() == 1
    assert [e.state for e in j2.entries()] == ["undone", "undone", "undone"]
    assert j2.integrity_ok()


def test_bad_verdict_and_missing_version(tmp_path):
    j = FeedbackJournal(":memory:")
    with pytest.raises(ValueError, match="verdict"):
        j.record("a", "maybe", {})
    with pytest.raises(KeyError, match="no model version"):
        j.weights(5)


def test_not_a_database(tmp_path):
    bad = tmp_path / "journal.sqlite"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(ValueError, match="not a usable feedback journal"):
        FeedbackJournal(bad)


def test_concurrent_writers_do_not_lose_verdicts(tmp_path):
    j = FeedbackJournal(tmp_path / "j.sqlite")

    def work(n):
        for i in range(20):
            j.record(f"{n}-{i}", "confirmed", {"i": i})

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(j.entries()) == 80
    con = sqlite3.connect(tmp_path / "j.sqlite")
    assert con.execute("SELECT count(*) FROM feedback").fetchone()[0] == 80


def test_atomic_write_and_checked_reads(tmp_path):
    p = tmp_path / "sub" / "x.json"
    write_json(p, {"a": [1, 2]})
    assert read_json(p) == {"a": [1, 2]}
    atomic_write_bytes(p, b"{broken")
    with pytest.raises(RunFormatError, match=r"x\.json: not valid JSON"):
        read_json(p)
    with pytest.raises(RunFormatError, match="missing"):
        read_json(tmp_path / "nope.json")
    assert [f.name for f in p.parent.iterdir()] == ["x.json"]  # no temporary files left behind


def test_examples_of_old_runs_read_the_end_of_a_session_as_today(tmp_path):
    path = tmp_path / "j.sqlite"
    j = FeedbackJournal(path)
    j.commit_version(b"w1", reason="trained")
    end = {"kind": "session end", "history": [1, 2], "next": LEGACY_END}
    j.commit_version(b"w2", reason="fp", feedback_id=j.record("-9", "false_positive", end))
    j.record("4", "confirmed", {"kind": "parameter", "key": 3, "next": LEGACY_END})
    j.close()
    ro = FeedbackJournal(path, read_only=True)
    assert ro.translate_legacy_end() == 0  # read-only: nothing written, translated as read
    assert [e.example["next"] for e in ro.entries()] == [keyids.END, LEGACY_END]
    ro.backup_to(tmp_path / "copy.sqlite")  # and in its copies
    ro.close()
    copy = FeedbackJournal(tmp_path / "copy.sqlite")
    assert [e.example["next"] for e in copy.entries()] == [keyids.END, LEGACY_END]
    assert copy.check() is None and copy.current_version() == 2
    copy.close()
    rw = FeedbackJournal(path)
    assert rw.translate_legacy_end() == 1
    assert rw.translate_legacy_end() == 0  # twice changes nothing
    assert [e.example["next"] for e in rw.entries()] == [keyids.END, LEGACY_END]
    rw.close()


def test_pending_verdicts_are_withdrawn_once(tmp_path):
    j = FeedbackJournal(tmp_path / "j.sqlite")
    j.commit_version(b"w1", reason="trained")
    cut = j.record("a1", "false_positive", {"history": [1], "next": 2})  # its update never came
    j.record("a2", "confirmed", {"line": 3})
    assert [e.id for e in j.withdraw_pending()] == [cut]
    assert [e.state for e in j.entries()] == ["undone", "recorded"]
    assert j.withdraw_pending() == []
    j.close()
    assert FeedbackJournal(tmp_path / "j.sqlite", read_only=True).withdraw_pending() == []
