"""The built-in log simulator: format, determinism, ground truth and the injected anomalies."""

from __future__ import annotations

import argparse
import re
from collections import defaultdict

import numpy as np
import pandas as pd
import pytest

from workbench.simulate.command import add_simulate_command
from workbench.simulate.config import SimulatorConfig
from workbench.simulate.engine import simulate
from workbench.simulate.truth import task_workflows
from workbench.simulate.vocabulary import transitions

LINE = re.compile(
    r"^(?P<record>nova-(?:compute|api|scheduler)\.log\S*) "
    r"(?P<date>\d{4}-\d{2}-\d{2}) (?P<time>\d{2}:\d{2}:\d{2}\.\d{3}) (?P<pid>\d+) "
    r"(?P<level>INFO|WARNING|ERROR) (?P<component>[\w.]+) \[(?P<addr>[^\]]*)\] (?P<content>.+)$"
)
INSTANCE = re.compile(
    r"^\[instance: ([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\] "
)
TOOK = re.compile(r"Took (\d+\.\d+) seconds")


@pytest.fixture(scope="module")
def normal():
    return simulate(n_instances=300, anomalies={}, seed=11)


@pytest.fixture(scope="module")
def anomalous():
    return simulate(
        n_instances=300,
        anomalies={"performance": 0.05, "execution": 0.05, "parameter": 0.05},
        seed=11,
    )


def _times(log) -> np.ndarray:
    stamps = [f"{m['date']}T{m['time']}" for m in map(LINE.match, log.lines)]
    ms = np.array(stamps, dtype="datetime64[ms]").astype(np.int64)
    return (ms - ms[0]) / 1000.0


def _frame(log) -> pd.DataFrame:
    """Labels joined with each line's time and content."""
    df = log.labels.copy()
    df["t"] = _times(log)
    df["content"] = [LINE.match(x)["content"] for x in log.lines]
    return df


def test_same_seed_same_lines_other_seed_other_lines():
    a = simulate(n_instances=40, seed=5)
    b = simulate(n_instances=40, seed=5)
    assert a.lines == b.lines
    assert a.labels.equals(b.labels)
    assert simulate(n_instances=40, seed=6).lines != a.lines


def test_every_line_has_the_openstack_format_and_instance_tags(anomalous):
    for line, instance in zip(anomalous.lines, anomalous.labels["instance"], strict=True):
        m = LINE.match(line)
        assert m, line
        tag = INSTANCE.match(m["content"])
        if instance is None:
            assert tag is None, line
        else:
            assert tag and tag.group(1) == instance, line


def test_timestamps_never_decrease(anomalous):
    assert np.all(np.diff(_times(anomalous)) >= 0)


def test_labels_cover_every_line(anomalous):
    labels = anomalous.labels
    assert list(labels.columns[:6]) == [
        "line",
        "instance",
        "task",
        "event",
        "anomaly",
        "anomaly_detail",
    ]
    assert labels["line"].tolist() == list(range(1, len(anomalous.lines) + 1))
    assert labels["event"].notna().all()
    bound = labels["instance"].notna()
    assert (labels["task"].notna() == bound).all()
    assert labels.loc[~bound, "anomaly"].isna().all()
    assert set(labels.loc[bound, "instance"]) == set(anomalous.instances["instance"])


def test_instances_overlap_so_lines_interleave(normal):
    lab = normal.labels
    bound = lab[lab["instance"].notna()]
    pos = bound.groupby("instance")["line"].agg(["min", "max"])
    foreign = [
        (bound["line"].between(lo, hi) & (bound["instance"] != u)).sum()
        for u, (lo, hi) in pos.iterrows()
    ]
    assert np.median(foreign) > 10


def test_background_noise_is_configurable():
    quiet = simulate(n_instances=20, anomalies={}, noise=0.0, api_lines=False, seed=2)
    assert quiet.labels["instance"].notna().all()
    noisy = simulate(n_instances=20, anomalies={}, noise=2.0, seed=2)
    events = set(noisy.labels.loc[noisy.labels["instance"].isna(), "event"])
    assert {"api.list_servers", "tracker.final_view", "api.create_server"} <= events
    assert any('"GET /v2/' in x and "/servers/detail HTTP/1.1" in x for x in noisy.lines)


def test_took_values_agree_with_timestamps(normal):
    df = _frame(normal)
    spans = {
        "create.took_spawn": "create.image",
        "create.took_build": "create.claim",
        "delete.took_destroy": "delete.terminate",
        "delete.took_deallocate": "delete.took_destroy",
        "create.network": "create.claim_successful",
    }
    checked = 0
    for _, g in df[df["instance"].notna()].groupby("instance"):
        at = dict(zip(g["event"], g["t"], strict=False))
        for event, since in spans.items():
            row = g[g["event"] == event].iloc[0]
            took = float(TOOK.search(row["content"]).group(1))
            assert took == pytest.approx(at[event] - at[since], abs=0.0051)
            checked += 1
    assert checked == 5 * 300


def test_observed_workflows_equal_the_true_edges(normal):
    """Every consecutive pair inside a task is a true edge, and every true edge shows up."""
    workflows = normal.tasks
    observed = defaultdict(set)
    for _, g in normal.labels[normal.labels["instance"].notna()].groupby("instance"):
        events, tasks = g["event"].tolist(), g["task"].tolist()
        for a, b, ta, tb in zip(events, events[1:], tasks, tasks[1:], strict=False):
            if ta == tb and b not in workflows[tb].first:
                observed[ta].add((a, b))
    for name, wf in workflows.items():
        assert observed[name] == wf.edges, name
    create = workflows["create"]
    assert frozenset({"create.image", "create.network"}) in create.concurrent
    assert workflows["delete"].last == {"delete.vm_stopped"}


def test_task_workflows_are_data_independent_of_a_run(normal):
    assert task_workflows() == dict(normal.tasks)


def test_delete_always_ends_a_lifecycle(normal):
    bound = normal.labels[normal.labels["instance"].notna()]
    assert (bound.groupby("instance")["event"].last() == "delete.vm_stopped").all()
    assert normal.instances["tasks"].str.endswith(" delete").all()
    assert normal.instances["tasks"].str.startswith("create ").all()


def test_anomalous_instances_are_labelled_exactly(anomalous):
    inst = anomalous.instances
    assert inst["anomaly"].value_counts().to_dict() == {
        "performance": 15,
        "execution": 15,
        "parameter": 15,
    }
    lab = anomalous.labels
    marked = lab[lab["anomaly"].notna()]
    kind_of = dict(zip(inst["instance"], inst["anomaly"], strict=True))
    assert (marked["instance"].map(kind_of) == marked["anomaly"]).all()
    assert set(marked["instance"]) == set(inst.loc[inst["anomaly"].notna(), "instance"])


def test_performance_anomaly_slows_the_throttled_transition(anomalous):
    df = _frame(anomalous)
    bad = set(anomalous.instances.loc[anomalous.instances["anomaly"] == "performance", "instance"])
    elapsed, spawn = {}, {}
    for u, g in df[df["instance"].notna()].groupby("instance"):
        at = dict(zip(g["event"], g["t"], strict=False))
        if "create.image" in at and "create.vm_started" in at:
            elapsed[u] = at["create.vm_started"] - at["create.image"]
        line = g.loc[g["event"] == "create.took_spawn", "content"]
        spawn[u] = float(TOOK.search(line.iloc[0]).group(1))
    clean = set(anomalous.instances.loc[anomalous.instances["anomaly"].isna(), "instance"])
    slow = [elapsed[u] for u in bad]
    normal = [elapsed[u] for u in clean]
    assert min(slow) > max(normal)
    assert min(spawn[u] for u in bad) > max(spawn[u] for u in clean)
    assert 2.5 < np.median(slow) / np.median(normal) < 6
    marked = df[(df["anomaly"] == "performance")]
    assert set(marked["event"]) == {"create.vm_started", "create.took_spawn", "create.took_build"}
    assert (marked["anomaly_detail"] == "slow transition create.image -> create.vm_started").all()


def test_throttled_transition_can_be_chosen():
    log = simulate(
        n_instances=60,
        anomalies={"performance": 5},
        throttled=("create.sync_pending", "create.vif_plugged"),
        seed=4,
    )
    marked = log.labels[log.labels["anomaly"] == "performance"]
    assert set(marked["event"]) >= {"create.vm_resumed", "create.spawned", "create.took_spawn"}
    assert "create.vm_started" not in set(marked["event"])


def test_execution_anomalies_are_visible(anomalous):
    df = _frame(anomalous)
    inst = anomalous.instances.set_index("instance")
    for u in inst.index[inst["anomaly"] == "execution"]:
        detail = inst.loc[u, "detail"]
        g = df[df["instance"] == u]
        events = g["event"].tolist()
        if detail.startswith("missing "):
            assert detail.removeprefix("missing ") not in events
        elif detail.startswith("cleanup error"):
            assert "delete.cleanup_error" in events and "delete.files" not in events
            row = g[g["event"] == "delete.cleanup_error"].iloc[0]
            assert "ERROR" in anomaly_line(anomalous, row["line"])
            assert events.index("delete.cleanup_error") > events.index("delete.destroyed")
        else:
            second, first = re.match(r"out of order (\S+) before (\S+)", detail).groups()
            assert events.index(second) < events.index(first)
        assert (g["anomaly"] == "execution").sum() >= 1


def anomaly_line(log, line: int) -> str:
    return log.lines[line - 1]


def test_parameter_anomaly_changes_only_the_number(normal, anomalous):
    """Same seed with and without parameter anomalies: the lines differ only in the number."""
    with_param = simulate(n_instances=300, anomalies={"parameter": 0.05}, seed=11)
    assert len(with_param.lines) == len(normal.lines)
    differ = [
        i for i, (a, b) in enumerate(zip(normal.lines, with_param.lines, strict=True)) if a != b
    ]
    assert len(differ) == 15
    assert set(differ) == set(np.flatnonzero(with_param.labels["anomaly"].notna()))
    for i in differ:
        a, b = normal.lines[i], with_param.lines[i]
        assert TOOK.sub("Took N seconds", a) == TOOK.sub("Took N seconds", b)
        assert float(TOOK.search(b).group(1)) > 5 * float(TOOK.search(a).group(1))


def test_normal_head_keeps_the_first_instances_clean():
    log = simulate(n_instances=100, anomalies={"execution": 0.2}, normal_head=0.5, seed=3)
    assert log.instances["anomaly"].iloc[:50].isna().all()
    assert log.instances["anomaly"].notna().sum() == 20


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_instances": 0}, "n_instances must be > 0"),
        ({"anomalies": {"performance": 1.5}}, r"must be in \[0, 1\]"),
        ({"anomalies": {"bogus": 0.1}}, "unknown anomaly kind"),
        ({"anomalies": {"execution": 0.7, "parameter": 0.6}}, "anomalous instances requested"),
        ({"slowdown": 0.0}, "slowdown must be > 0"),
        ({"noise": -1.0}, "noise must be >= 0"),
        ({"throttled": ("create.claim", "delete.terminate")}, "throttled must be"),
        ({"operation_probability": 1.0}, "operation_probability"),
        ({"start": "yesterday"}, "start must look like"),
        ({"execution_kinds": ("explode",)}, "execution_kinds"),
    ],
)
def test_config_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SimulatorConfig(**kwargs)


def test_config_from_dict_rejects_unknown_keys():
    assert SimulatorConfig.from_dict({"n_instances": 5}).n_instances == 5
    with pytest.raises(ValueError, match="unknown SimulatorConfig fields"):
        SimulatorConfig.from_dict({"colour": "red"})


def test_config_round_trips_through_a_plain_dict():
    cfg = SimulatorConfig(
        n_instances=30,
        anomalies={"execution": 2, "parameter": 0.1},
        throttled=("stop.off", "stop.shutdown"),
    )
    data = cfg.to_dict()
    assert data["anomalies"] == {"execution": 2, "parameter": 0.1} and data["throttled"] == [
        "stop.off",
        "stop.shutdown",
    ]
    assert SimulatorConfig.from_dict(data) == cfg
    assert cfg.replace(seed=4).seed == 4
    with pytest.raises(ValueError, match="n_instances must be > 0"):
        cfg.replace(n_instances=0)
    assert simulate(cfg).lines == simulate(SimulatorConfig.from_dict(data)).lines


def test_transitions_include_the_image_copy():
    assert ("create.image", "create.vm_started") in transitions()


def test_write_creates_log_and_labels(tmp_path, anomalous):
    path = anomalous.write(tmp_path / "deep" / "sim.log")
    assert path.read_text().splitlines() == anomalous.lines
    labels = pd.read_csv(f"{path}.labels.csv")
    assert len(labels) == len(anomalous.lines)
    assert pd.read_csv(f"{path}.instances.csv")["anomaly"].notna().sum() == 45


def _run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="deeplog-workbench")
    add_simulate_command(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_simulate_writes_files(tmp_path, capsys):
    out = tmp_path / "cli" / "sim.log"
    argv = [
        "simulate",
        "--out",
        str(out),
        "--instances",
        "30",
        "--anomalies",
        "execution=3",
        "--seed",
        "1",
    ]
    assert _run_cli(argv) == 0
    assert out.exists() and (tmp_path / "cli" / "sim.log.labels.csv").exists()
    inst = pd.read_csv(tmp_path / "cli" / "sim.log.instances.csv")
    assert inst["anomaly"].value_counts().to_dict() == {"execution": 3}
    printed = capsys.readouterr().out
    assert "30 instances" in printed and "execution 3" in printed


@pytest.mark.parametrize(
    "argv",
    [
        ["--instances", "0"],
        ["--anomalies", "slow=0.1"],
        ["--anomalies", "performance=2.5"],
        ["--throttle", "create.image->delete.terminate"],
        ["--noise", "-1"],
    ],
)
def test_cli_rejects_bad_arguments(tmp_path, capsys, argv):
    with pytest.raises(SystemExit) as exc:
        _run_cli(["simulate", "--out", str(tmp_path / "x.log"), *argv])
    assert exc.value.code == 2
    assert "simulate: error:" in capsys.readouterr().err
