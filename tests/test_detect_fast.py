"""The fast paths of detection give the verdicts of the straightforward ones they replaced: the
parameter LSTM as one fused call per key against the stacked module's step-by-step loop, and the
key model's verdicts spread over entries with arrays against a loop over sessions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from workbench.detect import scoring
from workbench.detect.report import candidates
from workbench.keys.topg import detect
from workbench.params import scoring as param_scoring
from workbench.params.batches import to_global
from workbench.simulate.engine import simulate
from workbench.workbench import Workbench


@pytest.fixture(scope="module")
def fitted():
    wb = Workbench.from_simulation(n_instances=60, test_instances=20, seed=3)
    wb.fit(key_config={"max_epochs": 3}, param_config={"max_epochs": 3}, workflows=False)
    yield wb
    wb.close()


@pytest.fixture(scope="module")
def entries(fitted):
    log = simulate(
        n_instances=60, seed=11, anomalies={"performance": 0.1, "execution": 0.1, "parameter": 0.1}
    )
    return fitted.scorer().parser.transform(log.lines)


def _loop_predict(model, key, x, batch=8192):
    """The previous scoring: the stacked module's own forward, one key selected."""
    info = model.keys_[key]
    d = len(info["names"])
    slot = torch.as_tensor([info["slot"]])
    out = []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            xb = torch.from_numpy(to_global(x[i : i + batch], d, model.n_dims_))
            out.append(model.module_(xb[None], slot)[0, :, :d].numpy())
    return np.concatenate(out) if out else np.zeros((0, d), dtype=np.float32)


def test_fused_parameter_lstm_gives_the_loop_verdicts(fitted, entries, monkeypatch):
    pm = fitted.scorer().param_model
    fast = pm.score(entries)
    monkeypatch.setattr(param_scoring, "predict", _loop_predict)
    slow = pm.score(entries)
    scored = (slow["status"] == "scored").to_numpy()
    assert scored.sum() > 500
    assert fast["status"].tolist() == slow["status"].tolist()
    np.testing.assert_allclose(fast["mse"], slow["mse"], rtol=1e-4, atol=1e-7)
    for col in ("anomalous_99", "anomalous_95", "dimension"):
        if col in slow:
            a, b = (f[col].astype(object).where(f[col].notna(), None) for f in (fast, slow))
            assert a.tolist() == b.tolist(), col
    assert fast["anomalous_99"].fillna(False).any()  # parameter anomalies are there to compare


def _loop_sessions(models, entries, names, kv, g):
    """The previous key pass: one loop over the sessions (non-overlapping ones)."""
    key_model, parser = models.key_model, models.parser
    keys = entries["key"].to_numpy()
    sessions = [tuple(int(k) for k in keys[grp]) for grp in kv.groups]
    scores = key_model.score(sessions, top_k=max(g, 10))
    end_g = key_model.end_g_ if g == key_model.g_ else None
    verdict = detect(scores, g, float(key_model.min_probability_), end_g=end_g).entries
    bad = verdict["anomalous"].to_numpy(dtype=bool)
    why = verdict["reason"].astype(str).to_numpy()
    starts = np.concatenate([[0], np.cumsum(scores.session_length + 1)[:-1]])
    for s, grp in enumerate(kv.groups):
        base, m = starts[s], len(grp)
        sl = slice(base, base + m)
        kv.rank[grp] = scores.rank[sl]
        kv.prob[grp] = scores.probability[sl]
        kv.position[grp] = np.arange(m)
        for j in np.flatnonzero(bad[sl]):
            row = int(grp[j])
            if not kv.bad[row]:
                kv.reason[row] = why[base + j]
                kv.cand[row] = candidates(parser, scores.candidates(base + j), g)
        kv.bad[grp] |= bad[sl]
        if bad[base + m] and not kv.bad[grp[-1]]:
            kv.end_rows[int(grp[-1])] = (
                int(scores.rank[base + m]),
                float(scores.probability[base + m]),
                candidates(parser, scores.candidates(base + m), g),
            )


@pytest.mark.parametrize("g", [None, 1])
def test_key_verdicts_spread_with_arrays_equal_the_session_loop(fitted, entries, g, monkeypatch):
    models = fitted.scorer()
    fast = scoring.score(models, entries, g=g)
    monkeypatch.setattr(scoring, "_score_sessions", _loop_sessions)
    slow = scoring.score(models, entries, g=g)
    cols = ["position", "key_rank", "key_probability", "key_anomalous", "key_reason", "anomalous"]
    for c in cols:
        a, b = (r.entries[c].astype(object).where(r.entries[c].notna(), None) for r in (fast, slow))
        assert a.tolist() == b.tolist(), c
    assert fast.anomalies.drop(columns=["candidates"]).equals(
        slow.anomalies.drop(columns=["candidates"])
    )
    assert fast.anomalies["candidates"].tolist() == slow.anomalies["candidates"].tolist()
    assert {"session end", "unknown key"} <= set(fast.anomalies["kind"])
    assert fast.entries["key_anomalous"].any()
