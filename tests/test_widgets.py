"""Widget state and callbacks, driven by ``.click()`` and handler calls over a small REAL workbench.

The views are tested against ``workbench.Workbench`` itself (a simulated OpenStack log, a few epochs),
so what these tests check is the contract the app meets in a notebook: there is no stand-in (every
case, Stop from another thread included, is made with the real core).
"""

from __future__ import annotations

import datetime
import shutil
import subprocess
import sys
import time

import networkx as nx
import pandas as pd
import pytest
from plotly.callbacks import Points

from widgets import (
    LoadView,
    MSEView,
    ReviewView,
    TaskRunner,
    TrainView,
    WorkbenchApp,
    WorkflowView,
)
from widgets.figures import level_label
from workbench import Workbench

SMALL = {"max_epochs": 4}
ANOMALIES = {"performance": 0.1, "execution": 0.1, "parameter": 0.1}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """One small trained workbench, saved; each test loads its own copy."""
    wb = Workbench.from_simulation(n_instances=80, test_instances=40, seed=7, anomalies=ANOMALIES)
    wb.fit(key_config=SMALL, param_config=SMALL)
    folder = tmp_path_factory.mktemp("saved") / "run"
    wb.save(folder)
    test = (wb.test_source, wb.test_labels)
    wb.close()
    return folder, test


@pytest.fixture
def trained(saved, tmp_path):
    folder, (lines, labels) = saved
    copy = tmp_path / "run"
    shutil.copytree(folder, copy)
    wb = Workbench.load(copy)
    wb.test_source, wb.test_labels = lines, labels
    yield wb
    wb.close()


@pytest.fixture
def wb():
    """An untrained small real workbench."""
    w = Workbench.from_simulation(n_instances=40, test_instances=20, seed=3, anomalies=ANOMALIES)
    yield w
    w.close()


@pytest.fixture
def sync() -> TaskRunner:
    return TaskRunner(sync=True)


def click_point(fw, trace_name: str, index: int) -> None:
    """What a click in the browser does: the trace's click callbacks with the point's index."""
    trace = next(t for t in fw.data if t.name == trace_name)
    points = Points(point_inds=[index], xs=[None], ys=[None], trace_name=trace_name)
    trace._dispatch_on_click(points, None)


def trace(fw, name: str):
    return next(t for t in fw.data if t.name == name)


# ------------------------------------------------------------------------------------ runner


def test_runner_sync_error_and_refusal():
    r = TaskRunner(sync=True)
    errors: list[BaseException] = []
    assert r.run(lambda: 1 / 0, on_error=errors.append)
    assert isinstance(errors[0], ZeroDivisionError) and r.running is None
    inner: list[bool] = []
    assert r.run(lambda: inner.append(r.run(lambda: None)))
    assert inner == [False], "a second task must be refused while one runs"


def test_runner_survives_a_keyboard_interrupt():
    """How the core stops training: the runner must end the task and be free again."""
    r = TaskRunner()
    errors: list[BaseException] = []

    def stopped():
        raise KeyboardInterrupt

    assert r.run(stopped, on_error=errors.append, label="training")
    assert r.wait(5) and r.running is None
    assert isinstance(errors[0], KeyboardInterrupt)
    done: list[int] = []
    assert r.run(lambda: 7, on_done=done.append) and r.wait(5) and done == [7]


# -------------------------------------------------------------------------------------- load


def test_load_simulate_builds_a_real_workbench(sync):
    view = LoadView(runner=sync)
    got: list[Workbench] = []
    view.on_loaded(got.append)
    view.n_instances.value = 20
    view.rates["performance"].value = 0.1
    view.simulate_button.click()
    assert len(got) == 1 and isinstance(got[0], Workbench) and view.wb is got[0]
    s = got[0].summary()
    assert f"<b>{s.lines:,}</b> lines" in view.counts.value
    assert f"<b>{s.sessions:,}</b> sessions" in view.counts.value


def test_load_path_with_custom_header_and_live_preview(tmp_path, sync):
    log = tmp_path / "x.log"
    log.write_text("".join(f"INFO step {i} done in {i}.5 s\n" for i in range(30)) + "garbage\n")
    view = LoadView(runner=sync)
    view.source.value = "file path"
    assert view.load_button in view.children[1].children
    view.path.value = str(log)
    view.fmt.value = "custom header / regex…"
    view.custom.value = "<Level> <Content>"
    assert "first lines parsed" in view.preview.value
    view.session.value = r"regex:step (\d)"
    got: list[Workbench] = []
    view.on_loaded(got.append)
    view.load_button.click()
    assert len(got) == 1, view.status.value
    assert "<b>31</b> lines" in view.counts.value


def test_load_refuses_when_fewer_than_half_the_lines_parse(tmp_path, sync, trained):
    log = tmp_path / "bad.log"
    log.write_text("2017-05-16 00:00:01.000 INFO one\n" + "".join(f"junk {i}\n" for i in range(11)))
    view = LoadView(trained, runner=sync)
    got: list = []
    view.on_loaded(got.append)
    view.source.value = "file path"
    view.path.value = str(log)
    view.fmt.value = "openstack"
    view.load_button.click()
    assert got == [] and view.wb is trained, "the current workbench is kept"
    assert "of 12 lines parsed" in view.status.value and "nothing was replaced" in view.status.value


def test_load_without_a_file_says_so(sync):
    view = LoadView(runner=sync)
    view.source.value = "upload"
    assert view.load() is False
    assert "choose a file" in view.status.value
    view.source.value = "file path"
    view.load_button.click()
    assert "type the path" in view.status.value


def test_load_upload(sync):
    view = LoadView(runner=sync)
    view.source.value = "upload"
    view.fmt.value = "custom header / regex…"
    view.custom.value = "<Level> <Content>"
    view.session.value = r"regex:x (\d)"
    content = b"".join(b"INFO x %d\n" % i for i in range(20))
    view.upload.value = (
        {
            "name": "up.log",
            "type": "text/plain",
            "size": len(content),
            "last_modified": datetime.datetime(2017, 5, 16, tzinfo=datetime.UTC),
            "content": memoryview(content),
        },
    )
    got: list = []
    view.on_loaded(got.append)
    assert "first lines parsed" in view.preview.value
    view.load_button.click()
    assert len(got) == 1 and len(got[0].entries) == 20, view.status.value


# ------------------------------------------------------------------------------------- train


def test_form_shows_the_core_configuration(wb, sync):
    view = TrainView(wb, runner=sync)
    key, param = view.configs()
    for name, value in key.items():
        assert value == getattr(wb.key_config, name), name
    for name, value in param.items():
        assert value == getattr(wb.param_config, name), name
    assert view.auto_g.value == (wb.key_config.top_g == "auto")


def test_train_both_models_with_progress_and_curves(wb, sync):
    view = TrainView(wb, runner=sync)
    finished: list[object] = []
    view.on_trained(finished.append)
    events: list[dict] = []
    on_event = view.on_event
    view.on_event = lambda e: (events.append(dict(e)), on_event(e))
    view.key_inputs["max_epochs"].value = 3
    view.param_inputs["max_epochs"].value = 2
    view.train_button.click()
    assert finished == [wb]
    assert wb.key_config.max_epochs == 3 and wb.param_config.max_epochs == 2, "what is shown trains"
    kinds = {(e["stage"], e["event"]) for e in events}
    assert {("key", "batch_end"), ("key", "epoch_end"), ("param", "epoch")} <= kinds
    names = [t.name for t in view.loss.data]
    assert {"key train", "key validation", "param train", "param validation"} <= set(names)
    assert len([y for y in trace(view.loss, "key train").y if y is not None]) >= 1
    assert len([y for y in trace(view.loss, "param train").y if y is not None]) >= 1
    assert view.bars["param"].bar_style == "success" and view.bars["key"].bar_style == "success"
    for e in events:  # an epoch never reads "epoch 28/1"
        if e.get("epoch") is not None and e.get("epochs"):
            assert e["epoch"] <= e["epochs"], e
    assert f"g = {wb.key_model.g_}" in view.result.value, "the effective g is shown"
    assert "Trained with" in view.result.value
    assert view.effective["key"]["g"] == wb.key_model.g_
    assert not view.training and view.stop_button.disabled and not view.train_button.disabled


def test_fixed_g_is_sent(wb, sync):
    view = TrainView(wb, runner=sync)
    view.auto_g.value = False
    view.key_inputs["top_g"].value = 5
    view.key_inputs["max_epochs"].value = 2
    view.param_inputs["max_epochs"].value = 1
    view.train()
    assert wb.key_config.top_g == 5 and wb.key_model.g_ == 5
    assert "g = 5" in view.result.value
    view.auto_g.value = True
    assert view.key_inputs["top_g"].disabled and view.configs()[0]["top_g"] == "auto"


def test_stop_during_training_keeps_a_usable_model_and_trains_again(wb, sync):
    view = TrainView(wb, runner=sync)
    on_event = view.on_event

    def spy(event):  # the user presses Stop during the second key epoch
        on_event(event)
        if event["event"] == "batch_end" and event["epoch"] == 2 and not view.stopped:
            assert not view.stop_button.disabled
            view.stop_button.click()

    view.on_event = spy
    view.key_inputs["max_epochs"].value = 6
    view.train()
    assert view.runner.running is None, "the runner is free again"
    assert "stopped, model kept" in view.status.value
    assert view.bars["key"].bar_style == "warning"
    assert wb.key_model is not None and "g = " in view.result.value
    assert len(wb.detect().anomalies) >= 0  # the kept model detects
    view.on_event = on_event
    view.key_inputs["max_epochs"].value = 2
    view.param_inputs["max_epochs"].value = 1
    assert view.train() and "trained" in view.status.value and not view.stopped


def test_training_in_background_can_be_stopped_from_the_main_thread(wb):
    view = TrainView(wb)
    view.key_inputs["max_epochs"].value = 200
    assert view.train()
    deadline = time.monotonic() + 60
    while not view.history and time.monotonic() < deadline:
        time.sleep(0.02)
    assert view.training and "training" in view.status.value
    view.stop_button.click()
    assert view.runner.wait(60)
    assert not view.training and view.runner.running is None
    assert "stopped, model kept" in view.status.value
    assert wb.key_model is not None


def test_train_needs_a_workbench(sync):
    view = TrainView(runner=sync)
    assert view.train() is False and "load logs" in view.status.value


# ------------------------------------------------------------------------------------ review


@pytest.fixture
def review(trained, sync) -> ReviewView:
    view = ReviewView(trained, runner=sync)
    view.detect_button.click()
    return view


def test_review_rows_read_like_a_log_viewer(review, trained):
    report = trained.report
    assert len(review.table) == len(report.anomalies) > 0
    assert report.verdict in review.status.value  # what was checked, not only what was found
    assert "checked entries" in review.status.value
    content = report.entries.set_index("line")["content"]
    for aid in review.visible_rows()["id"]:
        ws = review.row_buttons(int(aid))
        row = review.table.set_index("id").loc[aid]
        assert ws["select"].description == str(content.loc[row["line"]])[:400]
        for bad in (">nan<", ">None<", ">?<", "usually ?"):
            assert bad not in ws["label"].value
    for rule in set(review.table["rule"]):  # the counts by rule show every rule that fired
        assert rule in review.counts.value


def test_row_click_selects_and_shows_context(review, trained):
    got = []
    review.on_select(lambda row, diag: got.append(int(row["id"])))
    aid = int(review.visible_rows()["id"].iloc[0])
    review.row_buttons(aid)["select"].click()
    assert got == [aid] and review.selected_id == aid
    assert "dl-row-selected" in review.row_buttons(aid)["row"]._dom_classes
    assert "Context" in review.detail.value and "dl-context-hit" in review.detail.value
    assert not review.select_line(10**9)


def test_review_filter_sort_and_pages(review):
    kinds = review.table["kind"].unique().tolist()
    review.kind_filter.value = kinds[0]
    assert set(review.filtered()["kind"]) == {kinds[0]}
    review.kind_filter.value = "all"
    review.sort("severity")
    sev = review.filtered()["severity"].tolist()
    assert sev == sorted(sev, reverse=True)
    review.page_size = 4
    review.goto(1)
    assert review.page == 1 and len(review.visible_rows()) <= 4
    with pytest.raises(ValueError, match="cannot sort"):
        review.sort("colour")


def test_false_positive_marks_rows_both_ways_and_undo(review, trained):
    aid = int(review.table["id"].iloc[0])
    review.row_buttons(aid)["false positive"].click()
    status = review.status.value
    assert "became normal" in status and "newly anomalous" in status, status
    assert f"{len(review.became_normal)} became normal" in status
    assert f"{len(review.newly_anomalous)} newly anomalous" in status
    assert "validation loss" in status and "before" in status and "after" in status
    t = review.table.set_index("id")
    assert t.loc[aid, "status"] == "false positive"
    for other in review.became_normal:
        assert t.loc[other, "verdict"] == "normal"
    review.page_size = 1000
    review.redraw()
    for other in review.became_normal:
        label = review.row_buttons(other)["label"].value
        assert "normal now" in label and "&gt;" not in label, "no threshold comparison any more"
        assert "dl-row-cleared" in review.row_buttons(other)["row"]._dom_classes
    for other in review.newly_anomalous:
        assert "dl-row-new" in review.row_buttons(other)["row"]._dom_classes
    assert review.row_buttons(aid)["false positive"].disabled
    assert not review.undo_button.disabled
    review.undo_button.click()
    assert "undone" in review.status.value
    assert review.last_feedback_seconds is not None


def test_all_like_this_flags_the_row_and_its_like_in_one_update(review, trained):
    aid = int(review.table["id"].iloc[0])
    like = trained.similar(aid)
    review.row_buttons(aid)["all like this"].click()
    t = review.table.set_index("id")
    assert all(t.loc[i, "status"] == "false positive" for i in like)
    assert f"and {len(like) - 1} like it" in review.status.value


def test_a_flag_confirms_the_steps_after_it_only_when_asked(review, trained):
    key_rows = review.table[review.table["kind"].isin(["key", "unknown key"])]
    if key_rows.empty:
        pytest.skip("no key anomaly in this small log")
    asked = []
    flag = trained.flag_false_positive
    trained.flag_false_positive = lambda *a, **k: asked.append(k.get("follow")) or flag(*a, **k)
    assert not review.follow_check.value  # unconfirmed steps are never taught by default
    review.row_buttons(int(key_rows["id"].iloc[0]))["false positive"].click()
    review.undo_button.click()
    review.follow_check.value = True
    review.row_buttons(int(key_rows["id"].iloc[0]))["false positive"].click()
    assert asked == [False, True]
    assert "became normal" in review.status.value


def test_confirm_shows(review, trained):
    review.page_size = 1000
    review.redraw()
    aid = int(review.table["id"].iloc[-1])
    review.row_buttons(aid)["confirm"].click()
    assert review.table.set_index("id").loc[aid, "status"] == "confirmed"
    assert "dl-row-confirmed" in review.row_buttons(aid)["row"]._dom_classes
    assert "confirmed" in review.row_buttons(aid)["label"].value
    review.status_filter.value = "confirmed"
    assert review.visible_rows()["id"].tolist() == [aid]


def test_retraining_marks_the_table_stale(review, trained):
    trained.fit(key_config={"max_epochs": 1}, param_config={"max_epochs": 1})
    assert review.stale and "stale" in review.counts.value
    assert review.detect_button.description == "Detect again"
    review.detect_button.click()
    assert not review.stale and review.detect_button.description == "Detect"


def test_timeline_lanes_and_brush_filter(review):
    lanes = {t.name: set(t.y) for t in review.timeline.data}
    assert set(lanes) == {"lanes by kind", "lanes by session"}
    assert lanes["lanes by kind"] == set(review.table["kind"].unique())
    assert lanes["lanes by session"]
    ts = pd.to_datetime(review.table["timestamp"]).sort_values()
    lo, hi = ts.iloc[0], ts.iloc[len(ts) // 2]
    review.set_time_range((lo, hi))
    got = pd.to_datetime(review.filtered()["timestamp"])
    assert len(got) and (got >= lo).all() and (got <= hi).all()
    assert not review.clear_brush.disabled
    review.clear_brush.click()
    assert len(review.filtered()) == len(review.table)


def test_detect_event_from_elsewhere_fills_the_table(trained, sync):
    view = ReviewView(trained, runner=sync)
    report = trained.detect()
    assert len(view.table) == len(report.anomalies)


# --------------------------------------------------------------------------------------- MSE


@pytest.fixture
def mse(trained, sync) -> MSEView:
    trained.detect()
    return MSEView(trained, runner=sync)


def test_mse_view_shows_keys_in_numeric_order_and_levels(mse, trained):
    keys = [v for _, v in mse.key_select.options]
    assert keys == sorted(trained.param_keys())
    assert mse.key == keys[0]
    assert mse.levels == sorted(trained.param_config.levels)
    assert [c.description for c in mse.level_boxes.children] == [
        level_label(lv) for lv in mse.levels
    ]


def test_observed_vs_predicted_is_drawn(mse):
    names = [t.name for t in mse.op_plot.data]
    assert any(n.endswith(" observed") for n in names), names
    obs = next(t for t in mse.op_plot.data if t.name.endswith(" observed"))
    assert any(y is not None for y in obs.y)


def test_mse_toggle_ci_line(mse):
    top = mse.levels[-1]
    mse.level_checks[top].value = False
    assert trace(mse.mse_plot, level_label(top)).visible == "legendonly"
    mse.set_level_visible(top, True)
    assert trace(mse.mse_plot, level_label(top)).visible is True


def test_mse_click_selects_an_entry(mse):
    got = []
    mse.on_select(got.append)
    line = int(trace(mse.mse_plot, "MSE").customdata[0])
    click_point(mse.mse_plot, "MSE", 0)
    assert got == [line] and mse.selected_line == line


def test_mse_series_is_scored_once_per_model(trained):
    trained.detect()
    calls = []
    score = trained.param_model.score
    trained.param_model.score = lambda *a, **k: calls.append(1) or score(*a, **k)
    for k in trained.param_keys()[:3]:
        trained.mse_series(k)
    assert len(calls) == 1


# ---------------------------------------------------------------------------------- workflow


@pytest.fixture
def graph_view(trained, sync) -> WorkflowView:
    return WorkflowView(trained, runner=sync)


def test_workflow_tasks_click_node_and_edge(graph_view, trained):
    assert len(graph_view.task_select.options) == len(trained.workflows(2))
    g = graph_view.graph
    ids = list(trace(graph_view.plot, "nodes").customdata)
    assert sorted(map(str, ids)) == sorted(map(str, g.nodes))
    click_point(graph_view.plot, "nodes", 0)
    assert graph_view.selected == graph_view._resolve(ids[0])
    edges = [tuple(c) for c in trace(graph_view.plot, "edge labels").customdata]
    click_point(graph_view.plot, "edge labels", 0)
    assert graph_view.selected == tuple(graph_view._resolve(x) for x in edges[0])
    assert "Transition" in graph_view.detail.value


# ---------------------------------------------------------------------------------------- app


def test_app_shares_the_selection_and_resets_on_load(trained):
    app = WorkbenchApp(trained, sync=True)
    app.review.detect()
    aid = int(app.review.table["id"].iloc[0])
    app.review.row_buttons(aid)["select"].click()
    assert app.selected_id == aid
    app.review.search.value = "something"
    app.load.n_instances.value = 20
    app.load.simulate_button.click()
    assert app.wb is app.load.wb is app.train.wb is app.review.wb is app.graph.wb
    assert app.wb is not trained and app.selected_id is None
    assert app.review.search.value == "" and app.review.table.empty
    assert app.review.detail.value == "" and app.review.status.value == ""
    assert app.mse.key is None and app.graph.graph is None
    assert app.tabs.selected_index == 1


def test_demo_trains_detects_and_opens_review():
    app = WorkbenchApp.demo(60, sync=True, key_config={"max_epochs": 2}, anomalies=ANOMALIES)
    assert app.tabs.selected_index == 2
    assert len(app.review.table) == len(app.wb.report.anomalies)
    assert {h["stage"] for h in app.train.history} == {"key", "param"}


def test_core_never_imports_the_ui():
    code = (
        "import pkgutil, importlib, sys, workbench\n"
        "for m in pkgutil.walk_packages(workbench.__path__, 'workbench.'):\n"
        "    if not m.name.endswith('.__main__'):  # runs the command line\n"
        "        importlib.import_module(m.name)\n"
        "bad = [m for m in ('widgets', 'ipywidgets', 'plotly') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_failing_refresh_is_shown_not_raised(wb, sync):
    def broken(method=2):
        raise RuntimeError("no workflows before training")

    wb.workflows = broken
    app = WorkbenchApp(wb, sync=True)  # must not raise
    assert "no workflows before training" in app.graph.status.value
    app.train.key_inputs["max_epochs"].value = 1
    app.train.param_inputs["max_epochs"].value = 1
    app.train.train_button.click()  # the 'fit' event reaches the broken view: training still ends
    assert "Trained with" in app.train.result.value


def test_timeline_brush_from_plotly_points(review):
    """What the browser sends on a brush: each lane's selected points in turn."""
    lanes = [t for t in review.timeline.data if t.name == "lanes by session"]
    xs = sorted(x for t in lanes for x in t.x if x is not None)
    lo, hi = xs[0], xs[len(xs) // 2]
    for t in lanes:
        inds = [i for i, x in enumerate(t.x) if x is not None and lo <= x <= hi]
        pts = Points(point_inds=inds, xs=[t.x[i] for i in inds], ys=[t.y[i] for i in inds],
                     trace_name=t.name)  # fmt: skip
        t._dispatch_on_selection(pts, None)
    assert review.time_range == (pd.Timestamp(lo), pd.Timestamp(hi))
    got = pd.to_datetime(review.filtered()["timestamp"])
    assert len(got) and (got >= pd.Timestamp(lo)).all() and (got <= pd.Timestamp(hi)).all()


def test_selecting_a_parameter_anomaly_reaches_the_hidden_mse_view(trained):
    app = WorkbenchApp(trained, sync=True)
    app.tabs.selected_index = 2  # Review; the MSE tab has never been shown
    app.review.detect()
    params = app.review.table[app.review.table["kind"] == "parameter"]
    assert len(params)
    row = params.iloc[0]
    app.review.select(int(row["id"]))
    assert app.mse.key == int(row["key"]) and app.mse.selected_line == int(row["line"])
    assert "could not" not in app.mse.status.value


def test_workflow_status_says_when_mined_on_a_sample():
    from widgets.graph import _sample_note

    whole, sampled = nx.DiGraph(), nx.DiGraph()
    whole.graph.update(sessions_used=40, sessions=40)
    sampled.graph.update(sessions_used=5000, sessions=26525)
    assert _sample_note([whole]) == ""
    assert "5,000 of 26,525 sessions" in _sample_note([whole, sampled])
