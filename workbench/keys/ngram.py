"""The paper's N-gram baseline: next-key probabilities by relative frequency, then the top-g rule.

Framed like the LSTM's sessions (PAD before, END after), so the two differ only in how they predict
the next key (docs/METHOD.md section 2).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from workbench.keys.scores import KeyScores, score_sessions
from workbench.keys.selection import GSelection, select_g
from workbench.keys.topg import Detection, detect
from workbench.keys.vocabulary import KeyVocabulary, Session
from workbench.keys.windows import frame_sessions, unique_sessions

__all__ = ["NGramModel"]


def _sessions(sessions: Iterable[Sequence[int]]) -> list[Session]:
    return [tuple(int(k) for k in s) for s in sessions]


def _split(
    sessions: list[Session], fraction: float, seed: int
) -> tuple[list[Session], list[Session]]:
    """(fit part, validation part): a random share of the sessions held out."""
    n_val = min(round(fraction * len(sessions)), len(sessions) - 1)
    if n_val <= 0:
        return sessions, []
    perm = np.random.default_rng(seed).permutation(len(sessions))
    return [sessions[i] for i in perm[n_val:]], [sessions[i] for i in perm[:n_val]]


class NGramModel:
    """The N-gram next-key model with the top-g rule (the paper's baseline).

    P[next | previous n-1 keys] is the relative frequency in the framed training sessions; an unseen
    context backs off to its longest seen suffix (down to the key frequencies). A key that never
    followed the context has probability 0 and is anomalous for every g. g is chosen like the LSTM's
    (:func:`workbench.keys.selection.select_g`) on held-out normal sessions, after which the counts are
    taken over all training sessions.

    >>> model = NGramModel(n=2, top_g=1).fit([(1, 2, 3)] * 3)
    >>> model.detect([(1, 2, 3), (1, 3)]).reason.tolist()
    ['', 'key not in top-g']
    """

    def __init__(
        self,
        n: int = 3,
        *,
        top_g: int | str = "auto",
        min_probability: float = 0.0,
        target_fpr: float = 0.003,
    ) -> None:
        if n < 2:
            raise ValueError(f"n must be >= 2, got {n}")
        self.n = n
        self.top_g = top_g
        self.min_probability = min_probability
        self.target_fpr = target_fpr

    @property
    def window(self) -> int:
        """History length: n - 1."""
        return self.n - 1

    def _count(self, sessions: list[Session]) -> None:
        vocab = KeyVocabulary.from_sessions(sessions)
        distinct, _, weight = unique_sessions(sessions)
        framed = frame_sessions([vocab.encode(s) for s in distinct], self.window)
        tables: dict[tuple[int, ...], np.ndarray] = {}
        w = weight[framed.session]
        for window, target, count in zip(framed.windows.tolist(), framed.targets, w, strict=True):
            for start in range(self.window + 1):  # every suffix, for back-off
                ctx = tuple(window[start:])
                row = tables.get(ctx)
                if row is None:
                    row = tables[ctx] = np.zeros(vocab.size)
                row[target] += count
        self.vocab_, self.tables_ = vocab, tables

    def predict_proba(self, windows: np.ndarray) -> np.ndarray:
        """``(n, n-1)`` internal windows -> ``(n, vocab size)`` relative frequencies."""
        out = np.zeros((len(windows), self.vocab_.size))
        for i, window in enumerate(windows.tolist()):
            for start in range(self.window + 1):
                row = self.tables_.get(tuple(window[start:]))
                if row is not None:
                    out[i] = row / row.sum()
                    break
        return out

    def fit(
        self,
        sessions: Iterable[Sequence[int]],
        *,
        validation_fraction: float = 0.2,
        seed: int = 0,
        **_: Any,
    ) -> NGramModel:
        """Count n-grams of normal sessions; choose g on a held-out share when ``top_g="auto"``."""
        sessions = _sessions(sessions)
        fixed = None if self.top_g == "auto" else int(self.top_g)
        fit_part, val_part = _split(sessions, validation_fraction, seed)
        if val_part:
            self._count(fit_part)
            self.g_selection_ = select_g(
                self.score(val_part),
                target_fpr=self.target_fpr,
                fixed=fixed,
                floor=self.min_probability,
            )
        else:
            g = 9 if fixed is None else fixed
            self.g_selection_ = GSelection(
                g,
                "fixed" if fixed else "default",
                "no validation split",
                None,
                0,
                {},
                self.min_probability,
            )
        self.g_ = self.g_selection_.g
        self._count(sessions)
        return self

    def score(self, sessions: Iterable[Sequence[int]], *, top_k: int = 10) -> KeyScores:
        """Per-entry ranks and candidates, like ``KeyModel.score``."""
        return score_sessions(
            _sessions(sessions), self.vocab_, self.window, self.predict_proba, top_k=top_k
        )

    def detect(self, sessions: Iterable[Sequence[int]], g: int | None = None) -> Detection:
        """Top-g verdicts per entry and per session (``g`` defaults to ``g_``)."""
        g = self.g_ if g is None else int(g)
        return detect(self.score(sessions, top_k=max(g, 10)), g, self.g_selection_.min_probability)
