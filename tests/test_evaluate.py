"""The evaluate pipeline and the command line."""

from __future__ import annotations

import json

import pytest

from workbench.cli import commands as cli_commands
from workbench.cli import main
from workbench.eval.command import add_evaluate_command
from workbench.eval.protocol import evaluate

REQUIRED = "tp fp fn tn precision recall f1 fpr g window model " + (
    "train_seconds detect_seconds keys_per_second"
)


@pytest.fixture(autouse=True)
def only_evaluate(monkeypatch):
    """Other sub-commands live in other modules; these tests need only ``evaluate``."""
    monkeypatch.setattr(cli_commands, "COMMANDS", [add_evaluate_command])


@pytest.fixture
def files(tmp_path):
    train = tmp_path / "train"
    train.write_text("1 2 3 4 \n" * 40 + "1 3 2 4 \n" * 10)
    normal = tmp_path / "normal"
    normal.write_text("1 2 3 4\n" * 7)
    abnormal = tmp_path / "abnormal"
    abnormal.write_text("1 2\n1 9 4\n1 2\n")
    return train, normal, abnormal


@pytest.mark.parametrize("model", ["ngram", "pca", "im", "simple"])
def test_cli_json(files, capsys, model):
    train, normal, abnormal = files
    argv = [
        "evaluate",
        "--train",
        str(train),
        "--test-normal",
        str(normal),
        "--test-abnormal",
        str(abnormal),
        "--model",
        model,
        "--json",
    ]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(REQUIRED.split()) <= set(out)
    assert out["fp"] + out["tn"] == 7 and out["tp"] + out["fn"] == 3  # with multiplicity


def test_cli_deeplog_with_fixed_g(files, capsys):
    train, normal, abnormal = files
    argv = [
        "evaluate",
        "--train",
        str(train),
        "--test-normal",
        str(normal),
        "--test-abnormal",
        str(abnormal),
        "--window",
        "3",
        "--top-g",
        "2",
        "--json",
    ]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["g"] == 2 and out["window"] == 3 and out["g_selection"]["method"] == "fixed"
    assert out["tp"] == 3 and out["fp"] == 0


def test_cli_bad_input_is_a_clear_error(files, tmp_path, capsys):
    train, normal, _ = files
    bad = tmp_path / "bad"
    bad.write_text("1 2\n1 two\n")
    argv = [
        "evaluate",
        "--train",
        str(train),
        "--test-normal",
        str(normal),
        "--test-abnormal",
        str(bad),
        "--format",
        "keys",
        "--model",
        "pca",
        "--json",
    ]
    assert main(argv) == 2
    assert f"{bad}:2: bad log key 'two'" in capsys.readouterr().err


def test_evaluate_never_sees_test_when_choosing_g():
    train = [(1, 2, 3)] * 50
    a = evaluate(train, [(1, 2, 3)], [(1, 3)], model="ngram")
    b = evaluate(train, [(1, 3, 2)] * 5, [(1, 3)] * 9, model="ngram")
    assert a["g"] == b["g"] and a["g_selection"] == b["g_selection"]


@pytest.mark.data
@pytest.mark.slow
def test_hdfs_invariant_mining(shared_data, capsys):
    d = shared_data / "deeplog_hdfs"
    r = d / "derived_logdeep_robustlog"
    argv = [
        "evaluate",
        "--train",
        str(d / "hdfs_train"),
        "--test-normal",
        str(r / "robust_log_train.csv"),
        str(r / "robust_log_valid.csv"),
        "--test-abnormal",
        str(d / "hdfs_test_abnormal"),
        "--model",
        "im",
        "--json",
    ]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["fp"] + out["tn"] == 7000 and out["tp"] + out["fn"] == 16838
    assert out["dropped_rows"]["test_normal"] == 7000


def test_cli_deeplog_with_session_counts_and_an_ensemble(files, capsys):
    train, normal, abnormal = files
    argv = ["evaluate", "--train", str(train), "--test-normal", str(normal)]
    argv += ["--test-abnormal", str(abnormal), "--window", "2", "--top-g", "2"]
    options = ["--session-counts", "--ensemble", "2", "--validation-folds", "2", "--json"]
    assert main([*argv, *options]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["config"]["session_counts"] is True and out["config"]["ensemble"] == 2
    assert out["config"]["validation_folds"] == 2
    assert out["fp"] + out["tn"] == 7 and out["tp"] + out["fn"] == 3
    with pytest.raises(SystemExit):
        main([*argv, "--ensemble", "0"])
    assert "positive integer" in capsys.readouterr().err


def test_counts_by_rule_add_up_and_name_the_rules(files, capsys):
    """Every anomalous test session is counted under the rule that fired first; the reasons are
    the detectors' own and map onto the rule names the rest of the workbench shows."""
    from workbench.detect.rules import RULES, rule_of

    train, normal, abnormal = files
    argv = ["evaluate", "--train", str(train), "--test-normal", str(normal)]
    argv += ["--test-abnormal", str(abnormal), "--window", "2", "--top-g", "1", "--json"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    by_rule = out["by_rule"]
    assert sum(by_rule["abnormal"].values()) == out["tp"] == 3
    assert sum(by_rule["normal"].values()) == out["fp"]
    assert by_rule["abnormal"]["unknown key"] == 1  # 1 9 4: key 9 never seen in training
    assert by_rule["abnormal"]["session end"] == 2  # 1 2, twice
    assert {rule_of(r) for r in by_rule["abnormal"]} == set(RULES) - {"parameter threshold"}

    assert main([a for a in argv if a != "--json"]) == 0
    text = capsys.readouterr().out
    assert "by rule" in text and "session end" in text


@pytest.mark.parametrize("model", ["ngram", "pca", "im", "simple"])
def test_counts_by_rule_of_the_baselines(model):
    train = [(1, 2, 3, 4)] * 40 + [(1, 3, 2, 4)] * 10
    result = evaluate(train, [(1, 2, 3, 4)] * 5, [(1, 2), (1, 9, 4), (1, 2)], model=model)
    assert sum(result["by_rule"]["abnormal"].values()) == result["tp"]
    assert sum(result["by_rule"]["normal"].values()) == result["fp"]
