"""The halo of chunked detection (each trained key's last parameter vectors) read from each key's
last rows back is the one read from every row."""

from __future__ import annotations

import numpy as np
import pandas as pd

from workbench.detect.chunked import _HALO, Scorer


def test_last_series_rows_are_the_tail_of_all_series_rows():
    rng = np.random.default_rng(0)
    n = 3000
    keys = rng.integers(0, 6, n)
    lengths = np.where(rng.random(n) < 0.2, 1, keys % 3)  # some rows of the wrong length
    df = pd.DataFrame(
        {
            "line": np.arange(1, n + 1),
            "key": keys,
            "params": [tuple(range(m)) for m in lengths],
            "parsed": rng.random(n) < 0.95,
            "session": None,
            "dt_session": np.nan,
            "dt_global": 1.0,
        }
    )
    sc = Scorer.__new__(Scorer)
    sc.n_params, sc.history = {1: 1, 2: 2, 3: 0, 4: 1, 5: 9}, 5  # key 5: no row fits
    old = (
        pd.concat([p.loc[sc.series_rows(p), _HALO] for p in (df.iloc[:1000], df.iloc[1000:])])
        .groupby("key", sort=False)
        .tail(sc.history)
        .reset_index(drop=True)
    )
    new = sc.halo([df.iloc[:1000], df.iloc[1000:]])
    pd.testing.assert_frame_equal(new, old)
    assert len(new) == 4 * sc.history
