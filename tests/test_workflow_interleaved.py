"""Task separation and automata over an interleaved log without any session id (by time lag)."""

from __future__ import annotations

import numpy as np

from workbench.workflow.cooccurrence import build_workflows
from workbench.workflow.growing import drop_contained
from workbench.workflow.scores import edge_scores, match_tasks


def _simulated(n_instances: int, seed: int):
    """A parsed simulator log without its session column, and the true key sets and key-level
    edges of its tasks."""
    from workbench.logs.parser import LogParser
    from workbench.simulate.engine import simulate

    log = simulate(n_instances=n_instances, anomalies={}, seed=seed)
    df = LogParser("openstack").parse(log.lines)
    ev = df.merge(log.labels[["line", "event"]], on="line").dropna(subset=["event"])
    key_of = ev.groupby("event")["key"].agg(lambda s: int(s.value_counts().index[0]))
    keys = {n: {int(key_of[e]) for e in wf.events} for n, wf in log.tasks.items()}
    edges = {
        n: {(int(key_of[a]), int(key_of[b])) for a, b in wf.edges} for n, wf in log.tasks.items()
    }
    return df.drop(columns=["session"]), keys, edges


def test_every_score_over_0_9_on_a_busy_interleaved_log():
    """Seed 12 (not one the benchmark reports) gave Jaccard 0.85 and edge precision 0.80 before
    shared keys racing a task's own step joined it and busy stretches stopped passing for
    consistent lags."""
    df, keys, edges = _simulated(200, seed=12)
    graphs = build_workflows(df)
    assert {g.graph["mining"] for g in graphs} == {"time lag"}
    m = match_tasks([g.graph["keys"] for g in graphs], keys)
    sc = {n: edge_scores(graphs[i].edges, edges[n]) for n, (i, _) in m.items() if i is not None}
    assert len(sc) == len(keys)
    jaccard = float(np.mean([j for _, j in m.values()]))
    precision = float(np.mean([s["precision"] for s in sc.values()]))
    recall = float(np.mean([s["recall"] for s in sc.values()]))
    assert min(jaccard, precision, recall) >= 0.9, (jaccard, precision, recall)


def test_a_task_swallowed_by_a_weaker_seed_is_kept():
    """Containment drops a task only for one grown from a link at least as strong."""
    grown = [({1, 2, 3}, (1, 2), 1), ({1, 2, 3, 7, 8}, (3, 7), 1), ({7, 8}, (7, 8), 1)]
    kept = [s for s, _, _ in drop_contained(grown, [1.0, 0.8, 0.9])]
    assert kept == [{1, 2, 3}, {1, 2, 3, 7, 8}, {7, 8}]  # {7, 8}: from a stronger link too
    assert [s for s, _, _ in drop_contained(grown)] == [{1, 2, 3, 7, 8}]  # without strengths
