"""The shortcuts of chunked detection give what the plain reading gives: the halo (each trained
key's last parameter vectors) read from each key's last rows back, and the parameters of a chunk's
rows read with their raw tokens' numbers remembered."""

from __future__ import annotations

import numpy as np
import pandas as pd

from workbench.detect.chunked import _HALO, Scorer
from workbench.logs.template_keys import numeric_params, row_params


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


def test_row_params_are_numeric_params_of_each_row():
    rng = np.random.default_rng(1)
    words = ["12", "3.5e2", "x7", "[9].", "ms=943,", "ratio=0.54", "user=bob", "1e999", "-4",
             "+5.", "nan", "(7)", "\u0663", "0.25;", "a=b=3", "..", "=", "7e"]  # fmt: skip
    contents, masked, positions = [], [], {}
    for i in range(3000):
        toks = rng.choice(words, size=rng.integers(0, 7)).tolist()
        m = f"m{len(toks)}{toks[:1]}"  # a message's mask follows from its content
        positions.setdefault(m, tuple(sorted(set(rng.integers(0, 8, rng.integers(0, 4)).tolist()))))
        contents.append(" ".join(toks))
        masked.append(m if i % 17 else None)
    for named in (False, True):
        want = [numeric_params(c, positions[m], named) if m else () for c, m in
                zip(contents, masked, strict=True)]  # fmt: skip
        assert row_params(contents, masked, positions, named) == want
    assert any(want) and not all(want)


def test_masking_skips_the_whole_text_cache_when_messages_do_not_repeat():
    from workbench.logs.masks import DEFAULT_MASKS, Masker

    rng = np.random.default_rng(2)
    unique = [f"req {i} took {rng.random():.4f} s from 10.0.{i % 7}.1:80" for i in range(20000)]
    repeated = [f"step {i % 5} done at 12:0{i % 10}" for i in range(20000)]
    m, plain = Masker(DEFAULT_MASKS), Masker(DEFAULT_MASKS)
    off = []
    for texts in (unique, repeated, unique[:3000] + repeated):
        want = [" ".join(plain.mask_token(t) for t in x.split()) for x in texts]
        assert [m.mask(x) for x in texts] == want
        off.append(m._texts_off)
    assert off[0] > 0  # unique messages turned the whole-text look-ups off for a while
