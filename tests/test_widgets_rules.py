"""Which rule flagged each row of the review table, and why the key model's rule is what it is:
checked on a small REAL workbench (a simulated OpenStack log, a few epochs), as the app shows them.
"""

from __future__ import annotations

import pytest

from widgets import ReviewView, TaskRunner, TrainView
from widgets.anomaly_table import counts_html
from workbench import Workbench
from workbench.detect.rules import RULES, report_counts_by_rule, rule_choice

ANOMALIES = {"performance": 0.1, "execution": 0.2, "parameter": 0.1}


@pytest.fixture(scope="module")
def trained():
    wb = Workbench.from_simulation(n_instances=80, test_instances=40, seed=7, anomalies=ANOMALIES)
    view = TrainView(wb, runner=TaskRunner(sync=True))
    view.key_inputs["max_epochs"].value = 4
    view.param_inputs["max_epochs"].value = 2
    view.train_button.click()
    yield wb, view
    wb.close()


def test_train_view_explains_the_chosen_rule(trained):
    wb, view = trained
    model, sel = wb.key_model, wb.key_model.g_selection_
    text = view.result.value
    assert "Why this rule" in text
    assert f"g = {model.g_}" in text
    assert f"END limit = {model.end_g_}" in text
    assert f"probability floor = {model.min_probability_:g}" in text
    rows = {r["setting"]: r for r in view.effective["rule_choice"]["rows"]}
    assert rows["g"]["value"] == model.g_
    assert rows["g"]["validation_fpr"] == sel.validation_fpr[model.g_]
    assert rows["END limit"]["value"] == model.end_g_
    assert rows["probability floor"]["value"] == model.min_probability_
    assert rows["probability floor"]["validation_fpr"] == sel.floor_fpr[model.min_probability_]
    for r in rows.values():  # the FPR behind each setting is on screen, in per cent
        assert f"{100 * r['validation_fpr']:.2f} %" in text
    sentence = rule_choice(sel)["sentence"]
    assert f"{sel.n_validation_sessions} held-out normal sessions" in sentence
    if sel.method == "validation" and model.g_ - 1 in sel.validation_fpr:
        assert f"g = {model.g_ - 1} would flag" in sentence  # why not one smaller
    assert sentence.replace("'", "&#x27;") in text


def test_fixed_g_is_explained_as_set_by_hand():
    wb = Workbench.from_simulation(n_instances=30, test_instances=10, seed=5)
    try:
        view = TrainView(wb, runner=TaskRunner(sync=True))
        view.auto_g.value = False
        view.key_inputs["top_g"].value = 5
        view.key_inputs["max_epochs"].value = 2
        view.param_inputs["max_epochs"].value = 1
        view.train_button.click()
        assert wb.key_model.g_ == 5
        assert "g = 5 was set by hand" in view.result.value
    finally:
        wb.close()


@pytest.mark.parametrize("g, floor", [(None, None), (2, None), (6, 0.2)])
def test_review_rows_say_which_rule_fired(trained, g, floor):
    """As detected (the simulator's key anomalies hide: unknown keys and parameters), with a small
    g (top-g rows) and with a high probability floor (floor rows)."""
    wb, _ = trained
    review = ReviewView(wb, runner=TaskRunner(sync=True), page_size=500)
    kept = wb.key_model.min_probability_
    try:
        if floor is not None:
            wb.key_model.min_probability_ = floor
        wb.detect(g=g)  # the review table fills from the core's detect event
    finally:
        wb.key_model.min_probability_ = kept
    table, report = review.table, wb.report
    if g is not None:
        assert "top-g" in set(table["rule"])
    if floor is not None:
        assert "probability floor" in set(table["rule"])
    assert len(table) == len(report.anomalies) > 0
    assert set(table["rule"]) <= set(RULES)
    why = report.entries.set_index("line")["key_reason"]
    for _, row in table.iterrows():
        expected = {"unknown key": "unknown key", "session end": "session end",
                    "parameter": "parameter threshold"}.get(row["kind"])  # fmt: skip
        if expected is None:  # a key row: the entry's own reason says top-g or floor
            expected = {"key not in top-g": "top-g",
                        "key below probability floor": "probability floor"}[why.loc[row["line"]]]  # fmt: skip
        assert row["rule"] == expected, row.to_dict()
        label = review.row_buttons(int(row["id"]))["label"].value
        assert f">{row['rule']}</span>" in label, "the badge names the rule"
    counts = report_counts_by_rule(report)
    for rule, n in counts.items():
        if n:
            assert f"{n} {rule}" in review.counts.value
    assert "dl-rule" in review.row_buttons(int(table["id"].iloc[0]))["label"].value
    assert counts_html(table.iloc[:0], review.entries) == ""


def test_review_filters_by_rule(trained):
    wb, _ = trained
    review = ReviewView(wb, runner=TaskRunner(sync=True), page_size=500)
    wb.detect(g=2)
    rules = review.table["rule"].value_counts()
    assert len(rules) >= 2
    for rule, n in rules.items():
        review.rule_filter.value = rule
        shown = review.filtered()
        assert len(shown) == n and set(shown["rule"]) == {rule}
        assert all(f">{rule}</span>" in review.row_buttons(int(i))["label"].value
                   for i in review.visible_rows()["id"])  # fmt: skip
    review.rule_filter.value = "all"
    assert len(review.filtered()) == len(review.table)
