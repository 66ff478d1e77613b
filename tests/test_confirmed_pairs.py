"""A flagged false positive's (window, key) pair is accepted by scoring from then on, whatever the
weights do: in one process, chunked streaming and on a Dask worker; undo takes it back; it is
saved with the run; the command line's flag and undo go the same way."""

from __future__ import annotations

import json

import numpy as np
import pytest

from workbench.cli import main
from workbench.detect.distributed import detect_dask
from workbench.detect.shuffle import local_client
from workbench.detect.streaming import detect_streaming
from workbench.keys import confirmed
from workbench.keys.model import KeyModel
from workbench.simulate.engine import simulate
from workbench.workbench import Workbench

# No Adam step in an update: the weights do not move, so only the confirmed pair can make a
# flagged entry normal.
FROZEN = {"max_epochs": 3, "update_steps": 0, "update_max_steps": 0}


@pytest.fixture(scope="module")
def log_file(tmp_path_factory):
    log = simulate(n_instances=40, seed=7, anomalies={"execution": 0.2})
    return log.write(tmp_path_factory.mktemp("pairs") / "openstack.log")


@pytest.fixture()
def flagged(tmp_path, log_file):
    wb = Workbench.from_simulation(n_instances=60, test_instances=5, seed=1, run_dir=tmp_path / "r")
    wb.fit(key_config=FROZEN, param_config={"max_epochs": 2}, workflows=False)
    report = wb.detect(str(log_file))
    a = report.anomalies
    row = a[a["kind"] == "key"].iloc[0]
    yield wb, report, row
    wb.close()


def _key_lines(report) -> set[int]:
    """Lines of the key anomalies reported and not reviewed as false positives."""
    a = report.anomalies
    return set(a.loc[(a["kind"] == "key") & (a["status"] != "false positive"), "line"].astype(int))


def test_a_flagged_pair_is_accepted_in_every_detect_path_and_undo_takes_it_back(
    flagged, log_file, tmp_path
):
    wb, report, row = flagged
    line = int(row["line"])
    before = _key_lines(report)
    result = wb.flag_false_positive(int(row["id"]))
    assert wb.key_model.last_update_["steps"] == 0  # the weights did not move
    assert len(wb.key_model.confirmed_["targets"]) == 1
    again = wb.detect(str(log_file))
    assert line not in _key_lines(again)
    e = again.entries.set_index("line")
    assert e.loc[line, "key_rank"] > again.g or e.loc[line, "key_probability"] < (
        wb.key_model.min_probability_
    )  # still ranked as before: accepted as a confirmed pair, not by the network
    assert line not in _key_lines(result.report)
    assert not result.report.entries.set_index("line").loc[line, "key_anomalous"]
    streamed = detect_streaming(wb, str(log_file), chunk_lines=300, keep_entries=True)
    assert _key_lines(streamed) == _key_lines(again)
    with local_client(1) as client:
        spread = detect_dask(wb, [log_file], client, blocksize=60_000, partitions=2)
    assert _key_lines(spread) == _key_lines(again)
    wb.undo()
    assert wb.key_model.confirmed_["targets"] == []
    assert _key_lines(wb.detect(str(log_file))) == before


def test_the_pairs_are_saved_with_the_run(flagged, log_file):
    wb, _, row = flagged
    wb.flag_false_positive(int(row["id"]))
    expected = _key_lines(wb.detect(str(log_file)))
    wb.save(wb.run_dir)
    run = wb.run_dir
    wb.close()
    back = Workbench.load(run)
    try:
        assert back.key_model.confirmed_ == wb.key_model.confirmed_
        assert _key_lines(back.detect(str(log_file))) == expected
    finally:
        back.close()


def test_a_pair_matches_on_the_key_window_or_on_the_whole_row():
    m = KeyModel.from_state(_small_state())
    rows = m.input_rows([[5, 6], [6, 6]])  # the same window of 1 key, other session counts
    confirmed.confirm(m, rows[:1], np.array([3]))
    assert confirmed.confirmed_mask(m, rows, np.array([3, 3])).tolist() == [True, True]
    confirmed.set_match(m, "row")
    assert confirmed.confirmed_mask(m, rows, np.array([3, 3])).tolist() == [True, False]
    back = KeyModel.from_state(json.loads(json.dumps({**m.to_state(), "module": {}}))
                               | {"module": m.to_state()["module"]})  # fmt: skip
    assert back.confirmed_ == m.confirmed_
    confirmed.set_match(m, "last:1")
    assert confirmed.confirmed_mask(m, rows, np.array([3, 3])).tolist() == [True, True]
    with pytest.raises(ValueError):
        confirmed.set_match(m, "exact")


def _small_state():
    from workbench.keys.config import KeyModelConfig

    m = KeyModel(KeyModelConfig(window=1, hidden_size=4, max_epochs=1, session_counts=True))
    return m.fit([(5, 6)] * 4, validation_fraction=0.0, device="cpu").to_state()


def test_the_command_line_flag_and_undo(tmp_path, capsys):
    train = simulate(n_instances=80, anomalies={}, seed=31)
    test = simulate(n_instances=30, anomalies={"execution": 0.2}, seed=32)
    (tmp_path / "train.log").write_text("\n".join(train.lines) + "\n")
    (tmp_path / "test.log").write_text("\n".join(test.lines) + "\n")
    run, out = tmp_path / "run", tmp_path / "r.json"
    assert main(["train", str(tmp_path / "train.log"), "--out", str(run),
                 "--preset", "paper", "--epochs", "3"]) == 0  # fmt: skip

    def detect() -> list[dict]:
        main(["detect", str(run), str(tmp_path / "test.log"), "--out", str(out)])
        capsys.readouterr()
        return json.loads(out.read_text())["anomalies"]

    first = next(a for a in detect() if a["kind"] == "key")
    assert main(["flag", str(run), str(first["id"])]) == 0
    capsys.readouterr()
    wb = Workbench.load(run, read_only=True)
    assert len(wb.key_model.confirmed_["targets"]) == 1
    wb.close()
    assert first["line"] not in {a["line"] for a in detect() if a["kind"] == "key"}
    assert main(["undo", str(run)]) == 0
    wb = Workbench.load(run, read_only=True)
    assert wb.key_model.confirmed_["targets"] == []
    wb.close()
    assert first["line"] in {a["line"] for a in detect() if a["kind"] == "key"}


def test_the_key_stream_accepts_a_flagged_pair_the_weights_did_not_learn():
    from workbench.feedback.stream import stream_detect
    from workbench.keys.config import KeyModelConfig

    train = [1, 2, 3] * 40
    config = KeyModelConfig(window=2, hidden_size=8, max_epochs=40, top_g=1, spare_keys=2,
                            update_steps=0, update_max_steps=0)  # fmt: skip
    model = KeyModel(config).fit([train], seed=0, device="cpu", validation_fraction=0.0)
    stream = np.array([1, 2, 3, 1, 3, 2, 1, 2, 3, 1, 3, 2])
    plain = stream_detect(model, stream, context=train)
    assert plain.flagged[[4, 10]].all()  # 3 after (3, 1): a situation training never showed
    learned = stream_detect(model, stream, context=train, oracle=lambda i: False)
    assert learned.flagged[4] and not learned.flagged[10]
    assert learned.rank[10] > 1  # the weights did not move: the pair is accepted as confirmed
