"""Logs larger than memory and than one machine: chunked and Dask detection give the verdicts of one
process, row for row (bench/scale.py measures the speed)."""

from __future__ import annotations

import pickle
import re

import numpy as np
import pandas as pd
import pytest

from workbench.detect.chunked import Scorer, end_keys
from workbench.detect.distributed import detect_dask, parse_dask
from workbench.detect.follow import OnlineDetector
from workbench.detect.shuffle import byte_ranges, local_client, read_range
from workbench.detect.streaming import detect_streaming, read_chunks
from workbench.simulate.engine import simulate
from workbench.workbench import Workbench

VERDICTS = ["line", "session", "key", "position", "key_anomalous", "key_reason", "param_status"]
VERDICTS += ["param_anomalous", "anomalous"]


@pytest.fixture(scope="module")
def fitted():
    wb = Workbench.from_simulation(n_instances=60, test_instances=20, seed=1)
    wb.fit(key_config={"max_epochs": 3}, param_config={"max_epochs": 3}, workflows=False)
    yield wb
    wb.close()


@pytest.fixture(scope="module")
def log_file(tmp_path_factory):
    """A simulated OpenStack log (as `deeplog-workbench simulate` writes it) with every kind of
    anomaly: ~3,000 lines of 80 interleaved instances."""
    log = simulate(
        n_instances=80, seed=7, anomalies={"performance": 0.1, "execution": 0.1, "parameter": 0.1}
    )
    return log.write(tmp_path_factory.mktemp("scale") / "openstack.log")


@pytest.fixture(scope="module")
def reference(fitted, log_file):
    return fitted.detect(str(log_file))


def _same(ref, other) -> None:
    """Identical verdicts: every entry's, and the anomaly table's ids, kinds and lines."""
    a = ref.entries[VERDICTS].reset_index(drop=True)
    b = other.entries[VERDICTS].reset_index(drop=True)
    assert len(a) == len(b)
    for c in VERDICTS:
        x, y = (f[c].astype(object).where(f[c].notna(), None) for f in (a, b))
        diff = np.asarray([u != v for u, v in zip(x.tolist(), y.tolist(), strict=True)])
        assert not diff.any(), f"{c} differs on lines {a['line'][diff].tolist()[:10]}"
    # scores agree up to float rounding of batched inference
    np.testing.assert_allclose(a_mse := ref.entries["mse"].to_numpy(float),
                               other.entries["mse"].to_numpy(float), rtol=1e-4, atol=1e-6)  # fmt: skip
    assert np.isfinite(a_mse).any()
    cols = ["id", "kind", "line", "session", "key", "position", "rank", "status"]
    x, y = (_plain(r.anomalies[cols]) for r in (ref, other))
    assert x == y


def _plain(df: pd.DataFrame) -> list[list]:
    """Rows as lists, missing values as None (whatever the column dtypes)."""
    return df.astype(object).where(df.notna(), None).to_numpy().tolist()


def _spread(log_file, blocksize: int) -> int:
    """How many sessions have lines in more than one byte range."""
    seen: dict[str, set[int]] = {}
    rx = re.compile(r"\[instance: ([0-9a-f-]{36})\]")
    for p, (path, start, end) in enumerate(byte_ranges([log_file], blocksize)):
        for raw in read_range(path, start, end):
            m = rx.search(raw.decode())
            if m:
                seen.setdefault(m.group(1), set()).add(p)
    return sum(len(v) > 1 for v in seen.values())


def test_the_log_crosses_partitions_and_chunks(reference, log_file):
    e = reference.entries
    assert reference.anomalies["kind"].nunique() >= 2  # key and parameter anomalies both present
    assert e["param_anomalous"].any() and e["key_anomalous"].any()
    assert _spread(log_file, 60_000) > 20  # many sessions split across parse partitions
    assert len(e) > 5 * 500  # and across several 500-line chunks


@pytest.mark.parametrize("chunk_lines", [500, 137])
def test_streaming_gives_the_one_process_verdicts(
    fitted, reference, log_file, chunk_lines, tmp_path
):
    rep = detect_streaming(
        fitted, str(log_file), chunk_lines=chunk_lines, keep_entries=True, out=tmp_path
    )
    _same(reference, rep)
    c = rep.counts
    assert c["lines"] == len(reference.entries) and c["sessions_reopened"] == 0
    assert c["sessions"] == reference.entries["session"].nunique()
    assert c["chunks"] > 5 and "80 sessions" in rep.summary()
    # what was written as it was decided is the same as what came back
    parts = sorted(tmp_path.glob("entries-*.parquet"))
    assert len(parts) >= 1
    written = pd.concat([pd.read_parquet(p) for p in parts]).sort_values("line")
    assert written["anomalous"].tolist() == rep.entries["anomalous"].tolist()
    assert pd.read_csv(tmp_path / "anomalies.csv")["id"].tolist() == rep.anomalies["id"].tolist()


def test_detection_reads_detached_models_not_the_workbench(fitted, reference, log_file):
    """Chunked and follow detection take the fitted models detached from the workbench (picklable,
    no journal, no lock) and give the one-process verdicts."""
    models = pickle.loads(pickle.dumps(fitted.scorer(end_keys=True)))
    assert models.end_keys == frozenset(end_keys(fitted.entries))
    _same(reference, detect_streaming(models, str(log_file), chunk_lines=400, keep_entries=True))
    live = OnlineDetector(models, idle_lines=10**9)  # everything closes at the end
    rows = live.feed(log_file.read_text().splitlines()) + live.close()
    assert live.coverage.lines == len(reference.entries) and live.anomalies == len(rows)
    cols = ["id", "kind", "line", "session", "key", "position", "rank"]
    got = pd.DataFrame(rows).sort_values(["line", "id"], kind="stable")[cols]
    assert _plain(got) == _plain(reference.anomalies[cols])  # in the order sessions closed


def test_follow_closes_sessions_as_chunked_detection_does(fitted, reference, log_file):
    """Lines arriving a few at a time: sessions close on their end key or when idle, as in chunked
    detection, and the anomalies are those of one process (none was closed too early)."""
    lines = log_file.read_text().splitlines()
    live = OnlineDetector(fitted, idle_lines=1500)
    rows, first_seen = [], {}
    for i in range(0, len(lines), 37):
        for r in live.feed(lines[i : i + 37]):
            rows.append(r)
            first_seen[int(r["id"])] = i + 37
    rows += live.close()
    assert live.sessions_reopened == 0
    cols = ["id", "kind", "line", "session", "key", "position", "rank"]
    got = pd.DataFrame(rows).sort_values(["line", "id"], kind="stable")[cols]
    assert _plain(got) == _plain(reference.anomalies[cols])
    assert live.peak_rows < len(lines) / 2  # ended sessions are not held
    assert len(first_seen) >= len(rows) / 3  # many reported before the end of the input
    c = live.coverage
    assert (c.lines, c.sessions) == (len(lines), reference.entries["session"].nunique())


def test_workbench_detect_streams_a_large_log(fitted, reference, log_file, monkeypatch):
    """``wb.detect`` reads a log file over the size limit (lowered here) in chunks: the anomalies
    of one process, progress after each chunk, and the report says what it checked."""
    import workbench.detect.streaming as streaming

    seen: list[dict] = []
    monkeypatch.setattr(streaming, "STREAM_ABOVE_BYTES", 1000)
    rep = fitted.detect(str(log_file), progress=seen.append)
    assert rep.counts["chunks"] >= 1 and seen and seen[-1]["lines"] == len(reference.entries)
    cols = ["id", "kind", "line", "session", "key", "position", "rank"]
    assert _plain(rep.anomalies[cols]) == _plain(reference.anomalies[cols])
    a, b = rep.coverage, reference.coverage  # the same "what was checked" as one process
    for name in ("lines", "parsed", "sessions", "key_entries", "param_entries", "loose_entries",
                 "unknown_rule_entries", "unknown_keys", "timestamps", "unparsed_reasons"):  # fmt: skip
        assert getattr(a, name) == getattr(b, name), name
    assert a.lines_summary() == b.lines_summary() and rep.verdict == reference.verdict
    assert fitted.detect(str(log_file), stream=False).entries is not None  # asked: in memory
    monkeypatch.setattr(streaming, "STREAM_ABOVE_BYTES", 10**12)
    assert type(fitted.detect(str(log_file))) is type(reference)  # small: in memory


def test_streaming_memory_is_bounded_by_open_sessions(fitted, reference, log_file):
    """Closing idle sessions keeps few open; a session that comes back is counted, never silent."""
    rep = detect_streaming(fitted, str(log_file), chunk_lines=300, idle_lines=300)
    assert rep.counts["peak_open_sessions"] < reference.entries["session"].nunique() / 2
    assert rep.counts["lines"] == len(reference.entries)
    tight = detect_streaming(fitted, str(log_file), chunk_lines=150, idle_lines=100)
    assert tight.counts["sessions_reopened"] > 0
    assert tight.counts["sessions"] > reference.entries["session"].nunique()
    quick = detect_streaming(fitted, str(log_file), chunk_lines=300, idle_seconds=5.0)
    assert quick.counts["sessions_reopened"] > 0  # closed after 5 s of log time without a line


@pytest.mark.parametrize("n_workers", [1, 2])
def test_local_cluster_gives_the_one_process_verdicts(
    fitted, reference, log_file, n_workers, tmp_path
):
    with local_client(n_workers) as client:
        rep = detect_dask(
            fitted,
            [log_file],
            client,
            blocksize=60_000,
            partitions=3,
            keep_entries=True,
            out=tmp_path,
        )
        assert len(client.scheduler_info()["workers"]) == n_workers
        if n_workers == 1:  # the facade's cluster path: same anomalies, and it says what it read
            via = fitted.detect(str(log_file), client=client)
            cols = ["id", "kind", "line", "session", "key", "status"]
            assert _plain(via.anomalies[cols]) == _plain(reference.anomalies[cols])
            assert via.coverage.lines == len(reference.entries) and via.coverage.sessions > 0
            assert via.coverage.session_rule == reference.coverage.session_rule
            for name in ("key_entries", "param_entries", "loose_entries", "unknown_rule_entries",
                         "unknown_keys", "timestamps"):  # fmt: skip
                assert getattr(via.coverage, name) == getattr(reference.coverage, name), name
        if n_workers == 2:  # parsing alone: the frame of one process, elapsed times included
            parsed = parse_dask(fitted.parser, log_file, client, blocksize=60_000)
            whole = fitted.parser.transform(str(log_file))
            assert list(parsed.columns) == list(whole.columns)
            assert _plain(parsed) == _plain(whole)
    _same(reference, rep)
    assert rep.counts["partitions"] > 10 and rep.counts["lines"] == len(reference.entries)
    assert rep.counts["sessions"] == reference.entries["session"].nunique()
    written = pd.concat(pd.read_parquet(p) for p in sorted(tmp_path.glob("entries-*.parquet")))
    assert len(written) == len(reference.entries)


def test_byte_ranges_cover_every_line_once(tmp_path):
    text = b"a\r\nbb\n\nccc\n" + b"x" * 50 + b"\nlast without newline"
    path = tmp_path / "log"
    path.write_bytes(text)
    whole = [r.removesuffix(b"\n") for r in text.split(b"\n")]
    for size in (1, 2, 3, 7, 50, 1000):
        for threads in (1, 2, 3):
            ranges = byte_ranges([path], size, threads)
            got = [ln for r in ranges for ln in read_range(*r)]
            assert got == whole, (size, threads)
            assert all(e - s <= size for _, s, e in ranges), "a piece is never over blocksize"
    # nine pieces of 50 bytes on two threads would leave one idle at the end: ten of 40 instead
    (even := tmp_path / "even").write_bytes(b"y" * 449 + b"\n")
    assert len(byte_ranges([even], 50, 1)) == 9 and len(byte_ranges([even], 50, 2)) == 10
    assert [len(c) for c in read_chunks(str(path), 2)] == [2, 2, 2]


def test_scorer_travels_by_its_state(fitted, log_file):
    sc = Scorer(fitted)
    back = pickle.loads(pickle.dumps(sc))
    lines = log_file.read_bytes().split(b"\n")[:300]
    a, b = sc.parse(lines), back.parse(lines)
    assert a["key"].tolist() == b["key"].tolist() and a["session"].equals(b["session"])
    assert back.end_keys == sc.end_keys == end_keys(fitted.entries)


def test_bad_input_says_what(fitted, tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        detect_streaming(fitted, str(tmp_path / "missing.log"))
    with pytest.raises(FileNotFoundError, match="not found"):
        byte_ranges([tmp_path / "missing.log"], 100)
    with pytest.raises(ValueError, match="whole log"):
        Scorer(fitted, session="window:60")


def test_the_command_line_says_what_is_wrong(tmp_path, capsys):
    from workbench.cli.cluster import main

    assert main([str(tmp_path), str(tmp_path / "missing.log"), "--workers", "1"]) == 2
    assert "not found" in capsys.readouterr().err
    log = tmp_path / "x.log"
    log.write_text("a\n")
    assert main([str(tmp_path / "norun"), str(log), "--workers", "1"]) == 2
    assert "cannot load the run" in capsys.readouterr().err


@pytest.mark.slow
def test_a_cluster_started_by_hand(fitted, reference, log_file, tmp_path):
    """`dask scheduler` and `dask worker` on loopback, then the module's command line."""
    import os
    import socket
    import subprocess
    import sys
    import time

    from workbench.cli.cluster import main

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    addr = f"tcp://127.0.0.1:{port}"
    run = fitted.save(tmp_path / "run")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    dask = [sys.executable, "-m", "dask"]  # the `dask` command of this environment
    quiet = {"env": env, "stderr": subprocess.DEVNULL}
    sched = ["scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"]
    work = ["worker", addr, "--host", "127.0.0.1", "--nworkers", "2", "--nthreads", "1"]
    procs = [subprocess.Popen([*dask, *sched], **quiet)]
    try:
        time.sleep(3)
        procs.append(subprocess.Popen([*dask, *work, "--no-dashboard"], **quiet))
        from dask.distributed import Client

        with Client(addr, timeout=30) as c:
            c.wait_for_workers(2, timeout=60)
        out = tmp_path / "verdicts"
        assert main([str(run), str(log_file), "--scheduler", addr, "--out", str(out)]) == 0
    finally:
        for p in reversed(procs):
            p.terminate()
            p.wait(timeout=30)
    got = pd.read_csv(out / "anomalies.csv")
    assert got["id"].tolist() == reference.anomalies["id"].tolist()
    assert got["kind"].tolist() == reference.anomalies["kind"].tolist()
    # the same file `detect --out` writes, its rule and why columns included
    from workbench.cli import main as cli

    assert cli(["detect", str(run), str(log_file), "--out", str(tmp_path / "one.csv")]) == 0
    assert (out / "anomalies.csv").read_bytes() == (tmp_path / "one.csv").read_bytes()


def test_detect_command_on_local_workers(fitted, reference, log_file, tmp_path, capsys):
    """`deeplog-workbench detect RUN LOG --workers 1` prints the one-process anomalies and what
    it checked; bad cluster input is one line and exit 2."""
    from workbench.cli import main

    run = tmp_path / "run"
    fitted.save(run)
    try:
        rc = main(["detect", str(run), str(log_file), "--workers", "1"])
    finally:
        fitted.close()  # the copy below reloads it
    out = capsys.readouterr().out
    assert rc == 0
    assert sum(ln.startswith("#") for ln in out.splitlines()) == len(reference.anomalies)
    assert f"lines read {len(reference.entries)}" in out and "key model:" in out
    assert main(["detect", str(run), "-", "--workers", "1"]) == 2
    assert "need a file, not stdin" in capsys.readouterr().err
