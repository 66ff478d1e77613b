"""Widget state and callbacks, driven by ``.click()`` and handler calls over the fake workbench."""

from __future__ import annotations

import datetime
import subprocess
import sys
import threading
import time

import pytest
from plotly.callbacks import Points

from tests.fake_workbench import FakeWorkbench
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


@pytest.fixture
def wb() -> FakeWorkbench:
    return FakeWorkbench.from_simulation(n_instances=5, seed=1)


@pytest.fixture
def sync() -> TaskRunner:
    return TaskRunner(sync=True)


@pytest.fixture
def trained(wb: FakeWorkbench) -> FakeWorkbench:
    wb.fit()
    return wb


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


def test_runner_thread_keeps_caller_free():
    r = TaskRunner()
    gate = threading.Event()
    done: list[int] = []
    assert r.run(lambda: gate.wait(5) and 7, on_done=done.append, label="slow")
    assert r.running == "slow" and not r.run(lambda: None)
    gate.set()
    assert r.wait(5) and done == [7]


# -------------------------------------------------------------------------------------- load


def test_load_simulate_builds_a_workbench(sync):
    view = LoadView(workbench_cls=FakeWorkbench, runner=sync)
    got: list[FakeWorkbench] = []
    view.on_loaded(got.append)
    view.rates["performance"].value = 0.1
    view.simulate_button.click()
    assert len(got) == 1 and view.wb is got[0]
    kind, args = got[0].calls[0]
    assert kind == "from_simulation" and args["anomalies"]["performance"] == 0.1
    assert "<b>40</b> lines" in view.counts.value and "<b>5</b> sessions" in view.counts.value
    assert "Claim successful" in view.table.value


def test_load_path_with_custom_header_and_live_preview(tmp_path, sync):
    log = tmp_path / "x.log"
    log.write_text("a one\nb two\n# comment\nc <three>\n")
    view = LoadView(workbench_cls=FakeWorkbench, runner=sync)
    view.source.value = "file path"
    assert view.load_button in view.children[1].children
    view.path.value = str(log)
    view.fmt.value = "custom header / regex…"
    assert view.custom in view.file_box.children
    view.custom.value = "<Level"  # half typed: an error, not a crash
    assert "does not work yet" in view.preview.value
    view.custom.value = "<Level> <Content>"
    assert "3 of 4 first lines parsed" in view.preview.value
    assert "&lt;three&gt;" in view.preview.value
    view.session.value = "regex:(blk_\\d+)"
    got: list[FakeWorkbench] = []
    view.on_loaded(got.append)
    view.load_button.click()
    assert got[0].fmt == "<Level> <Content>" and got[0].session_rule == "regex:(blk_\\d+)"
    assert "1 does not match the format" in view.counts.value


def test_load_without_a_file_says_so(sync):
    view = LoadView(workbench_cls=FakeWorkbench, runner=sync)
    view.source.value = "upload"
    assert view.load() is False
    assert "choose a file" in view.status.value
    view.source.value = "file path"
    view.load_button.click()
    assert "type the path" in view.status.value


def test_load_upload(sync):
    view = LoadView(workbench_cls=FakeWorkbench, runner=sync)
    view.source.value = "upload"
    content = b"x 1\ny 2\n"
    view.upload.value = (
        {
            "name": "up.log",
            "type": "text/plain",
            "size": len(content),
            "last_modified": datetime.datetime(2017, 5, 16, tzinfo=datetime.UTC),
            "content": memoryview(content),
        },
    )
    got: list[FakeWorkbench] = []
    view.on_loaded(got.append)
    assert "2 of 2 first lines parsed" in view.preview.value
    view.load_button.click()
    assert len(got[0].entries) == 2


# ------------------------------------------------------------------------------------- train


def test_train_progress_loss_curve_and_result(wb, sync):
    view = TrainView(wb, runner=sync)
    finished: list[object] = []
    view.on_trained(finished.append)
    view.train_button.click()
    assert finished == [wb]
    assert [h["stage"] for h in view.history] == ["key"] * 3 + ["param"] * 3
    assert view.bars["key"].value == 3 and view.bars["key"].max == 3
    assert view.bars["param"].bar_style == "success"
    assert trace(view.loss, "key validation").y == pytest.approx((2.5, 1.25, 2.5 / 3))
    assert "Chosen g = 9" in view.result.value and "99.9 % CI" in view.result.value
    assert not view.training and view.stop_button.disabled and not view.train_button.disabled


def test_train_sends_only_changed_hyper_parameters(wb, sync):
    view = TrainView(wb, runner=sync)
    assert view.configs() == (None, None)
    view.key_inputs["top_g"].value = 5
    view.key_inputs["max_epochs"].value = 2
    view.param_inputs["hidden_size"].value = 32
    view.train()
    assert wb.calls[-1] == (
        "fit",
        {"key": {"top_g": 5, "max_epochs": 2}, "param": {"hidden_size": 32}},
    )
    assert "Chosen g = 5" in view.result.value
    view.auto_g.value = True
    assert view.key_inputs["top_g"].disabled and view.configs()[0]["top_g"] == "auto"
    view.reset_button.click()
    assert view.configs() == (None, None)


def test_stop_during_training_keeps_a_usable_model(wb, sync):
    view = TrainView(wb, runner=sync)
    on_event = view.on_event

    def spy(event):  # the user presses Stop during the first batch
        on_event(event)
        if event["event"] == "batch" and not any(c[0] == "stop" for c in wb.calls):
            assert not view.stop_button.disabled
            view.stop_button.click()

    view.on_event = spy
    view.train()
    assert ("stop", None) in wb.calls
    assert view.bars["key"].bar_style == "warning"
    assert "stopped early" in view.status.value and "Chosen g" in view.result.value


def test_training_in_background_can_be_stopped_from_the_main_thread(wb):
    wb.batch_delay = 0.05
    wb.fit_epochs = 50
    view = TrainView(wb)
    assert view.train()
    deadline = time.monotonic() + 5
    while not view.history and time.monotonic() < deadline:
        time.sleep(0.01)
    assert view.training and "training" in view.status.value
    view.stop_button.click()
    assert view.runner.wait(5)
    assert len(view.history) < 50 and not view.training
    assert "stopped early" in view.status.value


def test_train_needs_a_workbench(sync):
    view = TrainView(runner=sync)
    assert view.train() is False and "load logs" in view.status.value


# ------------------------------------------------------------------------------------ review


@pytest.fixture
def review(trained, sync) -> ReviewView:
    view = ReviewView(trained, runner=sync)
    view.detect_button.click()
    return view


def test_review_table_shows_every_anomaly(review):
    assert len(review.table) == 6 and len(review.rows.children) == 6
    assert "6 anomalies detected" in review.status.value
    html = review.row_buttons(3)["label"].value
    assert "MSE 5.2 &gt; 1.8 (99 % CI)" in html and "&lt;vm-2&gt;" in html
    assert "rank 12 &gt; g = 9" in review.row_buttons(0)["label"].value
    assert "k3 60%, k5 30%" in review.row_buttons(0)["label"].value


def test_review_filter_sort_and_pages(review):
    review.kind_filter.value = "parameter"
    assert review.visible_rows()["id"].tolist() == [3, 5]
    review.kind_filter.value = "all"
    review.search.value = "VM-4"
    assert review.visible_rows()["id"].tolist() == [5]
    review.search.value = ""
    review.sort("severity")
    assert review.visible_rows()["id"].tolist()[:2] == [2, 3]  # unknown key (inf), then MSE 2.9x
    review.sort_buttons["severity"].click()
    assert review.visible_rows()["id"].tolist()[0] == 4 and review.ascending
    assert review.sort_buttons["severity"].description == "severity ▲"
    review.page_size = 4
    review.goto(1)
    assert len(review.visible_rows()) == 2 and review.next_button.disabled
    with pytest.raises(ValueError, match="cannot sort"):
        review.sort("colour")


def test_all_like_this_flags_the_row_and_its_like_in_one_update(review, trained):
    assert trained.similar(0) == [0, 1]
    trained.calls.clear()
    review.row_buttons(0)["all like this"].click()
    assert ("similar", 0) in trained.calls
    assert ("flag_false_positive", [0, 1]) in trained.calls, "one batch, not two updates"
    assert trained.calls[-1] == ("detect", None)
    table = review.table.set_index("id")
    assert table.loc[0, "status"] == table.loc[1, "status"] == "false positive"
    assert review.changed == set()  # both were acted on, neither merely changed
    assert "and 1 like it" in review.status.value
    for name in ("false positive", "all like this", "confirm"):
        assert review.row_buttons(0)[name].disabled and review.row_buttons(1)[name].disabled
    assert not review.row_buttons(2)["all like this"].disabled


def test_false_positive_updates_and_marks_changed_rows(review, trained):
    review.row_buttons(0)["false positive"].click()
    assert ("flag_false_positive", 0) in trained.calls
    assert trained.calls[-1] == ("detect", None), "detection runs again with the updated model"
    assert review.changed == {1} and review.cleared == {1}
    row1 = review.table.set_index("id").loc[1]
    assert row1["verdict"] == "normal"
    assert review.table.set_index("id").loc[0, "status"] == "false positive"
    assert "1 other row changed verdict" in review.status.value
    assert "0.5 → 0.45" in review.status.value
    assert "dl-row-changed" in review.row_buttons(1)["row"]._dom_classes
    assert "normal now" in review.row_buttons(1)["label"].value
    assert review.row_buttons(0)["false positive"].disabled
    assert review.row_buttons(1)["confirm"].disabled


def test_confirm_changes_status_only(review, trained):
    review.row_buttons(4)["confirm"].click()
    assert ("confirm_anomaly", 4) in trained.calls
    assert review.table.set_index("id").loc[4, "status"] == "confirmed"
    assert review.changed == set() and len(review.table) == 6
    review.status_filter.value = "confirmed"
    assert review.visible_rows()["id"].tolist() == [4]


def test_select_shows_diagnosis_and_notifies(review):
    got = []
    review.on_select(lambda row, diag: got.append((int(row["id"]), diag.slow_edge)))
    review.row_buttons(3)["select"].click()
    assert got == [(3, (3, 4))]
    assert "too long to build" in review.detail.value
    assert "dl-row-selected" in review.row_buttons(3)["row"]._dom_classes
    review.select(0)
    assert "dl-row-selected" not in review.row_buttons(3)["row"]._dom_classes
    assert "Expected instead" in review.detail.value
    assert review.select_line(34) and review.selected_id == 5
    assert not review.select_line(999)


def test_detect_event_from_elsewhere_fills_the_table(trained, sync):
    view = ReviewView(trained, runner=sync)
    trained.detect()
    assert len(view.table) == 6


# --------------------------------------------------------------------------------------- MSE


@pytest.fixture
def mse(trained, sync) -> MSEView:
    return MSEView(trained, runner=sync)


def test_mse_view_shows_first_key_and_levels(mse):
    assert mse.key == 3 and mse.key_select.value == 3
    assert mse.levels == [0.98, 0.99, 0.999]
    assert [c.description for c in mse.level_boxes.children] == ["98 % CI", "99 % CI", "99.9 % CI"]
    assert list(trace(mse.mse_plot, "anomalies").customdata) == [22]
    assert "dt observed" in [t.name for t in mse.op_plot.data]


def test_mse_toggle_ci_line(mse):
    mse.level_checks[0.999].value = False
    assert trace(mse.mse_plot, level_label(0.999)).visible == "legendonly"
    assert mse.visible_levels == {0.98, 0.99}
    mse.set_level_visible(0.999, True)
    assert mse.level_checks[0.999].value is True
    assert trace(mse.mse_plot, level_label(0.999)).visible is True


def test_mse_click_selects_an_entry(mse):
    got = []
    mse.on_select(got.append)
    click_point(mse.mse_plot, "anomalies", 0)
    assert got == [22] and mse.selected_line == 22
    assert list(trace(mse.mse_plot, "selected").customdata) == [22]
    assert "anomalous" in mse.detail.value and "&lt;of key 3&gt;" in mse.detail.value


def test_mse_key_switch_x_axis_and_highlight(mse, trained):
    mse.key_select.value = 5
    assert mse.key == 5 and ("mse_series", 5) in trained.calls
    mse.x_toggle.value = "instance"
    assert len(trace(mse.mse_plot, "MSE").x) == mse.series["session"].nunique()
    mse.highlight_anomaly(trained.detect().anomalies.set_index("id").loc[3].rename(3))
    assert mse.key == 3 and mse.selected_line == 22


def test_mse_refreshes_after_an_update(mse, trained):
    n = sum(c[0] == "mse_series" for c in trained.calls)
    trained.flag_false_positive(3)
    assert sum(c[0] == "mse_series" for c in trained.calls) == n + 1


# ---------------------------------------------------------------------------------- workflow


@pytest.fixture
def graph_view(trained, sync) -> WorkflowView:
    return WorkflowView(trained, runner=sync)


def test_workflow_tasks_and_method(graph_view, trained):
    assert [o[0] for o in graph_view.task_select.options] == ["VM creation", "VM deletion"]
    assert list(trace(graph_view.plot, "nodes").customdata) == [1, 2, 3, 4, 5]
    graph_view.task_select.value = 1
    assert list(trace(graph_view.plot, "nodes").customdata) == [6, 7, 8]
    graph_view.method_toggle.value = 1
    assert trained.calls[-1] == ("workflows", 1) and len(graph_view.graphs) == 1
    assert graph_view.task_select.value == 0


def test_workflow_click_node_and_edge(graph_view):
    click_point(graph_view.plot, "nodes", 2)
    assert graph_view.selected == 3
    assert "Creating image" in graph_view.detail.value and "median 20 s" in graph_view.detail.value
    assert trace(graph_view.plot, "nodes").marker.line.width[2] == 5
    edges = [tuple(c) for c in trace(graph_view.plot, "edge labels").customdata]
    click_point(graph_view.plot, "edge labels", edges.index((3, 4)))
    assert graph_view.selected == (3, 4)
    assert "Transition 3 → 4" in graph_view.detail.value and "p95 40 s" in graph_view.detail.value


def test_workflow_highlight_picks_the_task(graph_view):
    graph_view.highlight([6, 7], None)
    assert graph_view.task_select.value == 1
    assert [x for x in trace(graph_view.plot, "path").x if x is not None]
    graph_view.highlight([1, 2, 3, 4], (3, 4))
    assert graph_view.task_select.value == 0
    assert len([x for x in trace(graph_view.plot, "slow edge").x if x is not None]) == 2
    graph_view.clear_highlight()
    assert not [x for x in trace(graph_view.plot, "path").x if x is not None]


# ---------------------------------------------------------------------------------------- app


def test_demo_trains_detects_and_opens_review():
    app = WorkbenchApp.demo(workbench_cls=FakeWorkbench, sync=True, key_config={"max_epochs": 2})
    assert app.tabs.selected_index == 2
    assert len(app.review.table) == 6
    assert len(app.train.history) == 4
    assert [app.tabs.get_title(i) for i in range(5)][2] == "Review anomalies"


def test_app_shares_the_selection():
    app = WorkbenchApp.demo(workbench_cls=FakeWorkbench, sync=True)
    app.review.row_buttons(3)["select"].click()
    assert app.selected_id == 3 and app.mse.selected_line == 22
    assert app.graph.path_nodes == [1, 2, 3, 4] and app.graph.slow_edge == (3, 4)
    app.mse.key_select.value = 5
    click_point(app.mse.mse_plot, "anomalies", 0)
    assert app.review.selected_id == 5 and app.selected_id == 5


def test_app_rebinds_after_loading(tmp_path):
    app = WorkbenchApp(None, sync=True, workbench_cls=FakeWorkbench)
    assert app.tabs.selected_index == 0
    app.load.simulate_button.click()
    assert app.wb is app.load.wb is app.train.wb is app.review.wb is app.graph.wb
    assert app.tabs.selected_index == 1
    app.train_then_detect()
    assert len(app.review.table) == 6


def test_core_never_imports_the_ui():
    code = (
        "import pkgutil, importlib, sys, workbench\n"
        "for m in pkgutil.walk_packages(workbench.__path__, 'workbench.'):\n"
        "    importlib.import_module(m.name)\n"
        "bad = [m for m in ('widgets', 'ipywidgets', 'plotly') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_app_wait_covers_the_follow_up_detection():
    app = WorkbenchApp.demo(workbench_cls=FakeWorkbench)  # background threads, as in a notebook
    assert app.wait(30)
    assert len(app.review.table) == 6 and app.runner.running is None


def test_showing_a_tab_refits_its_plots():
    app = WorkbenchApp.demo(workbench_cls=FakeWorkbench, sync=True)
    sent = []
    for fw in app.mse.figures():
        fw.layout.on_change(lambda _layout, value: sent.append(value), "autosize")
    app.tabs.selected_index = 3
    assert len(app.mse.figures()) == 2 and sent[-1] is True


def test_a_failing_refresh_is_shown_not_raised(wb):
    def broken(method=2):
        raise RuntimeError("no workflows before training")

    wb.workflows = broken
    app = WorkbenchApp(wb, sync=True)  # must not raise
    assert "no workflows before training" in app.graph.status.value
    app.train.train_button.click()  # the 'fit' event reaches the broken view: training still ends
    assert "Chosen g = 9" in app.train.result.value
