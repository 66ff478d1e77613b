"""What a false positive implies: the steps after the flagged entry that recur in other sessions,
taught with it in one update, journaled with it and undone with it."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from workbench import keyids
from workbench.feedback.implied import following, implied
from workbench.simulate.engine import simulate
from workbench.workbench import Workbench


def _frame(sessions: dict[str, list[int]]) -> pd.DataFrame:
    rows = [(s, k) for s, keys in sessions.items() for k in keys]
    df = pd.DataFrame(rows, columns=["session", "key"])
    return df.assign(line=np.arange(1, len(df) + 1), parsed=True, raw="x")


def test_steps_stop_where_a_step_recurs_in_too_few_other_sessions():
    df = _frame({"a": [1, 7, 8, 9, 2], "b": [1, 7, 8, 2], "c": [1, 7, 8, 2], "d": [5, 8, 9]})
    got = following(df, "a", 1, window=10)
    # 7 -> 8 recurs in b and c; 8 -> 9 only in d: the anomaly may be there, the steps stop
    assert [(e["line"], e["next"]) for e in got] == [(3, 8)]
    assert got[0]["history"] == [1, 7]
    assert [e["next"] for e in following(df, "a", 1, window=10, min_sessions=1)] == [8, 9]


def test_steps_stop_at_a_confirmed_anomaly_an_unknown_message_and_after_the_horizon():
    df = _frame({s: [1, 7, 8, 2, 3, 4] for s in "abc"})
    assert len(following(df, "a", 1, window=10)) == 5  # to the session's end
    assert following(df, "a", 1, window=10, stop_lines={4}) == [{"line": 3, "history": [1, 7],
                                                                  "next": 8}]  # fmt: skip
    assert len(following(df, "a", 1, window=1)) == 2  # HORIZON windows after the flagged entry
    df.loc[3, "key"] = keyids.UNKNOWN  # a's fourth message was never seen
    assert [e["line"] for e in following(df, "a", 1, window=10)] == [3]
    assert following(df, None, 1, window=10) == []


@pytest.fixture(scope="module")
def drift():
    """Trained without any operation; the test log brings one operation in part of the VMs."""
    cfg = {"noise": 0.0, "api_lines": False}
    train = simulate(n_instances=150, anomalies={}, operation_probability=0.0, seed=0, **cfg)
    test = simulate(n_instances=40, anomalies={}, operation_probability=0.6, max_operations=1,
                    seed=2, **cfg)  # fmt: skip
    return train.lines, test.lines


def test_a_flag_teaches_what_recurs_after_it_journals_it_and_undo_takes_it_back(drift, tmp_path):
    train, test = drift
    wb = Workbench.from_logs(train, "openstack", seed=0, run_dir=tmp_path / "run")
    wb.fit(workflows=False)
    report = wb.detect(test)
    a = report.anomalies
    first = a[a["kind"].isin(["key", "unknown key"])].iloc[0]
    before = set(a.loc[a["status"] == "open", "id"])
    result = wb.flag_false_positive(int(first["id"]), follow=True)
    assert result.implied, "the new operation's later steps recur in other VMs"
    session = report.entries.loc[report.entries["line"].isin(result.implied), "session"]
    assert set(session) == {first["session"]}  # only the flagged entry's session is taught
    now = set(result.report.anomalies.query("status == 'open'")["id"])
    assert len(before - now) > 1  # more than the flagged entry became normal
    [entry] = [e for e in wb.journal.entries() if e.anomaly == str(int(first["id"]))]
    assert [e["line"] for e in entry.example["implied"]] == result.implied
    wb.undo()
    assert set(wb.report.anomalies.query("status == 'open'")["id"]) == before
    alone = wb.flag_false_positive(int(first["id"]), follow=False)
    assert alone.implied == []
    wb.close()


def test_the_review_lists_the_lines_a_flag_confirmed_with_it_and_undo_takes_them_back(
    drift, tmp_path
):
    from widgets import ReviewView, TaskRunner
    from widgets.anomaly_table import anomalous_ids

    train, test = drift
    wb = Workbench.from_logs(train, "openstack", seed=0, run_dir=tmp_path / "run")
    wb.fit(workflows=False)
    view = ReviewView(wb, runner=TaskRunner(sync=True))
    view.detect(test)
    a = view.table
    before = anomalous_ids(a)
    first = int(a.loc[a["kind"].isin(["key", "unknown key"]), "id"].iloc[0])
    view.follow_check.value = True
    view.row_buttons(first)["false positive"].click()
    [entry] = [e for e in wb.journal.entries() if e.anomaly == str(first)]
    lines = sorted({e["line"] for e in entry.example["implied"]})
    assert lines, "the new operation's later steps recur in other VMs"
    shown = ", ".join(map(str, lines[:12]))
    assert f"{len(lines)} later entries confirmed with it (lines {shown}" in view.status.value
    view.undo_button.click()
    assert "undone" in view.status.value
    assert anomalous_ids(view.table) == before  # the lines taught with it are anomalous again
    assert set(wb.report.anomalies.query("status == 'open'")["id"]) == before
    wb.close()


def test_the_flag_command_teaches_the_steps_after_when_asked_and_says_which(
    drift, tmp_path, capsys
):
    from workbench.cli import main

    train, test = drift
    run = tmp_path / "run"
    wb = Workbench.from_logs(train, "openstack", seed=0, run_dir=run)
    wb.fit(workflows=False)
    wb.save(run)
    wb.close()
    log = tmp_path / "test.log"
    log.write_text("\n".join(test) + "\n")
    assert main(["detect", str(run), str(log)]) == 0
    rows = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("#")]
    key = [ln for ln in rows if "[top-g]" in ln or "[probability floor]" in ln]
    first = key[0].split()[0].lstrip("#")
    assert main(["flag", str(run), first]) == 0  # the entry alone by default
    assert "also taught" not in capsys.readouterr().out
    assert main(["undo", str(run)]) == 0
    capsys.readouterr()
    assert main(["flag", str(run), first, "--and-following"]) == 0
    out = capsys.readouterr().out
    assert "also taught" in out and "(lines " in out, out
    wb = Workbench.load(run)
    [entry] = [e for e in wb.journal.entries() if e.anomaly == first and "implied" in e.example]
    lines = sorted({e["line"] for e in entry.example["implied"]})
    assert f"also taught {len(lines)} entries" in out and f"(lines {lines[0]}" in out
    wb.close()


def test_an_unseen_message_that_recurs_is_learned_on_the_way_and_the_steps_go_on():
    df = _frame({s: [1, 7, 0, 2] for s in "abc"})
    df["raw"] = np.where(df["key"] == 0, "rebooted 42", "x")
    report = SimpleNamespace(entries=df, anomalies=pd.DataFrame({"line": [2], "status": ["open"]}))
    learned = []

    def learn(raw: str) -> int:  # the parser learns the template: its entries are matched again
        learned.append(raw)
        df.loc[df["raw"] == raw, "key"] = 9
        return 9

    row = pd.Series({"line": 2, "kind": "unknown key", "session": "a", "position": 1})
    [got] = implied(report, [row], window=10, learn=learn, masked=lambda r: r.rstrip("0123456789"))
    assert learned == ["rebooted 42"]
    assert [(e["line"], e["next"]) for e in got] == [(3, 9), (4, 2), (4, keyids.END)]
    assert implied(report, [row], window=10) == [got]  # now known: nothing to learn
    no_session = row.copy()
    no_session["position"] = -1
    assert implied(report, [no_session], window=10) == [[]]
