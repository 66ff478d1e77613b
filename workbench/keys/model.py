"""The DeepLog log-key model: a stacked LSTM that predicts the next log key from the last h keys.

:class:`KeyModelConfig` holds the settings (the paper's defaults: h = 10, g = 9, L = 2, alpha = 64),
:class:`NextKeyLSTM` is the network, and :class:`KeyModel` is the fitted wrapper: it owns the key
vocabulary (external key ids -> internal indices with PAD, UNKNOWN and END), trains the network with
:func:`workbench.train.train_module`, chooses g, scores sessions (:func:`score`) and applies the
top-g rule (:func:`detect`).

Choices made where the paper is silent (see DEEPLOG.md):

- Sessions are framed with h PAD entries before and an END marker after; the model predicts the
  first key from pure padding and END after the last key, so short sessions are scored like any
  other and a session that stops where normal ones never stop is caught ("session ended
  unexpectedly").
- Training uses each *distinct* (window -> next key) example once, weighted by how often it occurs
  in the normal training sessions; the loss is the same weighted cross-entropy as over all windows.
- ``fit`` holds out part of the normal training sessions: early stopping watches their loss, and g
  (plus an optional probability floor) is chosen on them (:func:`workbench.keys.topg.select_g`).
  The default split (``validation_split="novel"``) holds out whole *sequences* among those seen
  once (:func:`workbench.keys.windows.split_novel`): normal training files repeat a few sequences
  many times, a random share of the sessions is mostly made of copies of sequences that stay in
  training, and its false-positive rate says little about new normal sessions never seen before,
  which is where false positives come from. The false-positive rate of new sessions is estimated
  as ``novel_share * FPR(held-out sequences) + (1 - novel_share) * FPR(training sequences)``, with
  the Good-Turing ``novel_share`` (sequences seen once / sessions); g and the floor are chosen on
  that estimate. Training sets without sequences seen once fall back to a random session split.
  With ``end_limit`` (and g and the floor both ``"auto"``) the END entry gets its own rank limit,
  and g, that limit and the floor are chosen together
  (:func:`workbench.keys.topg.select_rule`): the rule flagging most synthetic anomalies made from
  the validation sessions (cut short, a key dropped, a key moved) within the FPR budget.
  With ``refit`` (default) the network is then fine-tuned on all training sessions for
  ``refit_fraction`` of the epochs early stopping kept, so no training session is wasted; g stays
  the one chosen on validation. With ``validation_folds = k > 1`` the rare sequences are split in
  k folds, a model is trained without each, and the rule is chosen on all of them together (every
  rare sequence judged once by a model that never saw it); the first fold's model is refitted.

Beyond the paper, both off by default:

- ``session_counts``: the network also gets each key's count so far in the session (from its
  first key, not only the last h), so it knows what the session has done before the window, e.g.
  that an HDFS block was re-replicated before a deletion started, whatever the interleaving of its
  parallel threads. Sessions only: a stream has no session start (:mod:`workbench.feedback.stream` refuses
  such a model).
- ``ensemble``: several networks differing in their initial weights, trained side by side, their
  probabilities averaged (:class:`KeyEnsemble`).

>>> sessions = [(1, 2, 3, 4)] * 30 + [(1, 3, 2, 4)] * 10
>>> model = KeyModel(KeyModelConfig(window=3, hidden_size=16, max_epochs=60, top_g="auto"))
>>> model = model.fit(sessions, seed=0, device="cpu")
>>> model.detect([(1, 2, 3, 4), (1, 2, 4), (1, 2, 3, 9)]).reason.tolist()
['', 'key not in top-g', 'unknown key']
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Literal

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from workbench import keyids
from workbench.keys.topg import (
    Detection,
    GSelection,
    KeyScores,
    concat_scores,
    detect,
    score_sessions,
    select_g,
    select_rule,
    synthetic_anomalies,
)
from workbench.keys.windows import (
    END_INDEX,
    PAD_INDEX,
    UNKNOWN_INDEX,
    KeyVocabulary,
    NovelSplit,
    Session,
    frame_sessions,
    split_novel,
    split_novel_folds,
    unique_rows,
    unique_sessions,
)
from workbench.train import (
    CPU_THREADS,
    Callback,
    History,
    TrainConfig,
    pick_device,
    seed_everything,
    torch_threads,
    train_module,
)

__all__ = ["KeyModel", "KeyModelConfig", "NextKeyLSTM"]

logger = logging.getLogger(__name__)

STATE_KIND = "deeplog-workbench/key-model"
STATE_VERSION = 1
FEEDBACK_MEMORY = 1024  # distinct examples taught online that later updates keep teaching


@dataclass(frozen=True)
class KeyModelConfig:
    """Settings of the log-key model; the defaults are the paper's where it gives them."""

    window: int = 10  # h: history length
    top_g: int | Literal["auto"] = 9  # g: candidates accepted; "auto" = chosen on validation
    min_probability: float | Literal["auto"] = 0.0  # floor on the key's probability; 0 = paper
    num_layers: int = 2  # L: stacked LSTM layers
    hidden_size: int = 64  # alpha: units per LSTM layer
    encoding: Literal["onehot", "embedding"] = "onehot"  # key input encoding
    embedding_dim: int = 16  # size of the key embedding when encoding == "embedding"
    # distinct example weight f(count); "auto": "log" and "count" both trained, the one whose rule
    # flags more synthetic anomalies on validation kept (twice the training time)
    weighting: Literal["count", "sqrt", "log", "unit", "auto"] = "log"
    spare_keys: int = 8  # free vocabulary slots for keys learned online (partial_fit)
    session_counts: bool = False  # also see how often each key occurred so far in the session
    ensemble: int = 1  # networks whose probabilities are averaged (different initial weights)
    max_epochs: int = 40  # upper bound; early stopping on validation usually ends sooner
    batch_size: int = 256  # distinct examples per gradient step
    learning_rate: float = 1e-2  # Adam step size
    patience: int = 5  # epochs without validation improvement before stopping
    target_fpr: float = (
        0.001  # g / floor selection: tolerated extra (estimated) false-positive rate
    )
    validation_split: Literal["novel", "sessions"] = "novel"  # held-out rare sequences, or sessions
    validation_folds: int = 1  # novel split: > 1 cross-fits, every rare sequence held out once
    end_limit: bool = True  # with auto g and floor: a separate END rank limit (select_rule)
    refit: bool = True  # then fine-tune on all training sessions (validation ones included)
    refit_fraction: float = 0.25  # refit epochs = ceil(this * epochs chosen by early stopping)

    def __post_init__(self) -> None:
        assert self.window >= 1, f"window must be >= 1, got {self.window}"
        assert self.top_g == "auto" or (isinstance(self.top_g, int) and self.top_g >= 1), (
            f"top_g must be a positive int or 'auto', got {self.top_g!r}"
        )
        assert self.num_layers >= 1, f"num_layers must be >= 1, got {self.num_layers}"
        assert self.hidden_size >= 1, f"hidden_size must be >= 1, got {self.hidden_size}"
        assert self.encoding in ("onehot", "embedding"), f"bad encoding {self.encoding!r}"
        assert self.embedding_dim >= 1, f"embedding_dim must be >= 1, got {self.embedding_dim}"
        assert self.weighting in ("count", "sqrt", "log", "unit", "auto"), (
            f"bad weighting {self.weighting!r}"
        )
        assert self.spare_keys >= 0, f"spare_keys must be >= 0, got {self.spare_keys}"
        assert 0.0 <= self.target_fpr < 1.0, f"target_fpr must be in [0, 1), got {self.target_fpr}"
        assert self.min_probability == "auto" or (
            isinstance(self.min_probability, int | float) and 0.0 <= self.min_probability < 1.0
        ), f"min_probability must be in [0, 1) or 'auto', got {self.min_probability!r}"
        assert 0.0 < self.refit_fraction <= 1.0, f"bad refit_fraction {self.refit_fraction}"
        assert self.ensemble >= 1, f"ensemble must be >= 1, got {self.ensemble}"
        assert self.validation_folds >= 1, (
            f"validation_folds must be >= 1, got {self.validation_folds}"
        )
        assert self.validation_split in ("novel", "sessions"), (
            f"bad validation_split {self.validation_split!r}"
        )

    @classmethod
    def preset(cls, name: str = "recommended", **changes: Any) -> KeyModelConfig:
        """A named configuration, with ``changes`` on top.

        ``"recommended"``: the configuration validated on HDFS (README: h = 5, session counts, an
        ensemble of 3 networks, g and the probability floor chosen on 2 cross-fitted folds of the
        training sequences); what the workbench and the command line use unless told otherwise.
        ``"paper"``: the paper's exact model (h = 10, g = 9, L = 2, alpha = 64, one network, no
        session counts).

        >>> KeyModelConfig.preset("recommended").ensemble, KeyModelConfig.preset("paper").top_g
        (3, 9)
        """
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; expected one of {sorted(PRESETS)}")
        return cls.from_dict({**PRESETS[name], **changes})

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> KeyModelConfig:
        """Build from a dict, rejecting unknown keys.

        >>> KeyModelConfig.from_dict({"window": 5}).window
        5
        >>> KeyModelConfig.from_dict({"windwo": 5})
        Traceback (most recent call last):
        ...
        ValueError: unknown KeyModelConfig fields: ['windwo']
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown KeyModelConfig fields: {unknown}")
        return cls(**d)

    def train_config(self, max_epochs: int | None = None) -> TrainConfig:
        """The optimisation settings handed to :func:`workbench.train.train_module`."""
        return TrainConfig(
            max_epochs=self.max_epochs if max_epochs is None else max_epochs,
            batch_size=self.batch_size,
            learning_rate=self.learning_rate,
            patience=self.patience,
        )


#: Named key-model configurations (see :meth:`KeyModelConfig.preset`).
PRESETS: dict[str, dict[str, Any]] = {
    "recommended": {
        "window": 5,
        "top_g": "auto",
        "min_probability": "auto",
        "session_counts": True,
        "ensemble": 3,
        "validation_folds": 2,
    },
    "paper": {
        "window": 10,
        "top_g": 9,
        "min_probability": 0.0,
        "num_layers": 2,
        "hidden_size": 64,
        "session_counts": False,
        "ensemble": 1,
        "validation_folds": 1,
    },
}


class NextKeyLSTM(nn.Module):
    """Stacked LSTM over a window of key indices -> logits over the next key.

    With ``session_counts`` each input row ends with ``n_keys`` more columns, the session's count
    of every key so far; a small network of ``log(1 + count)`` adds its logits to the LSTM's, so the
    prediction knows what the session has done before the window (how many replicas were written,
    whether a re-replication happened), whatever the interleaving of its parallel threads.

    >>> net = NextKeyLSTM(n_keys=7, hidden_size=8, num_layers=2)
    >>> net(torch.zeros(4, 10, dtype=torch.long)).shape
    torch.Size([4, 7])
    >>> NextKeyLSTM(7, hidden_size=8, num_layers=1, session_counts=True)(
    ...     torch.zeros(4, 10 + 7, dtype=torch.long)
    ... ).shape
    torch.Size([4, 7])
    """

    def __init__(
        self,
        n_keys: int,
        *,
        hidden_size: int,
        num_layers: int,
        embedding_dim: int | None = None,
        session_counts: bool = False,
    ) -> None:
        super().__init__()
        self.n_keys = n_keys
        self.embed = None if embedding_dim is None else nn.Embedding(n_keys, embedding_dim)
        in_dim = n_keys if embedding_dim is None else embedding_dim
        self.lstm = nn.LSTM(in_dim, hidden_size, num_layers=num_layers, batch_first=True)
        self.head = nn.Linear(hidden_size, n_keys)
        self.counts = (
            nn.Sequential(nn.Linear(n_keys, hidden_size), nn.Tanh(), nn.Linear(hidden_size, n_keys))
            if session_counts
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.dim() == 2, f"expected (batch, window) key indices, got shape {tuple(x.shape)}"
        if self.counts is not None:
            x, counts = x[:, : -self.n_keys], x[:, -self.n_keys :]  # (B, h), (B, V)
        if self.embed is None:  # noqa: SIM108 (one shape comment per branch)
            e = F.one_hot(x, self.n_keys).float()  # (B, h, V)
        else:
            e = self.embed(x)  # (B, h, E)
        out, _ = self.lstm(e)  # (B, h, H)
        logits = self.head(out[:, -1])  # (B, V) logits over the next key
        if self.counts is not None:
            logits = logits + self.counts(torch.log1p(counts.float()))
        return logits


class KeyEnsemble(nn.Module):
    """Several :class:`NextKeyLSTM` members whose next-key probabilities are averaged.

    Members differ in their initial weights only and are trained side by side on the same batches,
    each on its own cross-entropy (in training mode ``forward`` returns every member's logits,
    ``(M, B, V)``); in evaluation mode it returns the log of the members' mean probability, so a
    softmax over it is the averaged distribution. Averaging tempers one member's overconfidence about
    an ordering it never saw, which is where false positives of new normal sessions come from.

    >>> net = KeyEnsemble([NextKeyLSTM(5, hidden_size=4, num_layers=1) for _ in range(3)])
    >>> net.train()(torch.zeros(2, 3, dtype=torch.long)).shape
    torch.Size([3, 2, 5])
    >>> p = net.eval()(torch.zeros(2, 3, dtype=torch.long)).softmax(-1)
    >>> p.shape, bool(torch.allclose(p.sum(-1), torch.ones(2)))
    (torch.Size([2, 5]), True)
    """

    def __init__(self, members: Sequence[NextKeyLSTM]) -> None:
        super().__init__()
        assert len(members) >= 2, "an ensemble needs at least two members"
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = torch.stack([m(x) for m in self.members])  # (M, B, V)
        return logits if self.training else _mixture(logits)


def _mixture(logits: torch.Tensor) -> torch.Tensor:
    """``(M, B, V)`` member logits -> ``(B, V)`` log of the members' mean probability."""
    return torch.logsumexp(F.log_softmax(logits, dim=-1), dim=0) - math.log(logits.shape[0])


def _check_sessions(sessions: Iterable[Sequence[int]]) -> list[Session]:
    """Sessions as tuples of non-negative ints. Readers share one tuple between repeated sessions,
    so each distinct object is converted and checked once (``done`` keeps it alive: ids stay
    unique)."""
    out: list[Session] = []
    done: dict[int, tuple[object, Session]] = {}
    for i, s in enumerate(sessions):
        found = done.get(id(s))
        if found is not None and found[0] is s:
            out.append(found[1])
            continue
        session = tuple(int(k) for k in s)
        if session and min(session) < 0:
            raise ValueError(f"session {i}: log keys must be non-negative integers")
        if isinstance(s, tuple):
            done[id(s)] = (s, session)
        out.append(session)
    return out


def distinct_examples(
    sessions: Sequence[Session], vocab: KeyVocabulary, window: int, *, count_columns: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct (window -> next key) examples of framed sessions and how often each occurs.

    Returns ``windows (n, h)`` (``(n, h + count_columns)`` with the session's key counts so far,
    see :func:`workbench.keys.windows.frame_sessions`), ``targets (n,)`` (internal indices) and
    ``counts (n,)``.

    >>> w, t, c = distinct_examples([(1, 2)] * 3 + [(1,)], KeyVocabulary([1, 2]), 2)
    >>> w.tolist(), t.tolist(), c.tolist()
    ([[0, 0], [0, 3], [0, 3], [3, 4]], [3, 2, 4, 2], [4.0, 1.0, 3.0, 3.0])
    """
    distinct, _, counts = unique_sessions(sessions)
    framed = frame_sessions(
        [vocab.encode(s) for s in distinct], window, count_columns=count_columns
    )
    if len(framed) == 0:
        return framed.windows, framed.targets, np.zeros(0)
    pairs = np.concatenate([framed.windows, framed.targets[:, None]], axis=1)  # (n, h + 1)
    uniq, inverse = unique_rows(pairs)
    weight = np.bincount(inverse, weights=counts[framed.session], minlength=len(uniq))
    return uniq[:, :-1], uniq[:, -1], weight


def history_rows(
    histories: Sequence[Sequence[int]], vocab: KeyVocabulary, window: int, count_columns: int = 0
) -> np.ndarray:
    """Input rows (as in :func:`workbench.keys.windows.frame_sessions`) of entries given by their
    whole history: the last ``window`` keys, left-padded, then ``count_columns`` key counts.

    >>> history_rows([[], [5], [5, 6, 6]], KeyVocabulary([5, 6]), 2, count_columns=5).tolist()
    [[0, 0, 0, 0, 0, 0, 0], [0, 3, 0, 0, 0, 1, 0], [4, 4, 0, 0, 0, 1, 2]]
    """
    rows = np.full((len(histories), window + count_columns), PAD_INDEX, dtype=np.int64)
    for i, hist in enumerate(histories):
        enc = (
            np.asarray(vocab.encode(list(hist)), dtype=np.int64)
            if len(hist)
            else np.zeros(0, np.int64)
        )
        tail = enc[-window:]
        rows[i, window - len(tail) : window] = tail
        if count_columns:
            rows[i, window:] = np.bincount(enc, minlength=count_columns)[:count_columns]
    return rows


def _cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    if logits.dim() == 3:  # an ensemble in training: the mean of its members' losses
        m, b, v = logits.shape
        losses = F.cross_entropy(logits.reshape(m * b, v), targets.repeat(m), reduction="none")
        return losses.reshape(m, b).mean(dim=0)  # (B,)
    return F.cross_entropy(logits, targets, reduction="none")  # (B,)


@contextlib.contextmanager
def _no_denormals() -> Iterator[None]:
    """Flush denormal floats to zero on the CPU for the duration (an online update).

    The probabilities of keys the model learned never to predict (free vocabulary slots) shrink
    towards zero with every update; once they are denormal floats, the arithmetic on them is many
    times slower and one update's cost grows with the updates made before it. torch has no getter
    for the setting and the package turns it on nowhere else, so it is turned off afterwards.
    """
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


class _ReplayCache:
    """The encoded replay examples of :meth:`KeyModel.partial_fit` for one replay object and
    vocabulary. Copies of a model share it (its tables are never changed in place; the vocabulary
    signature tells whether a table fits the model that asks)."""

    def __init__(self) -> None:
        self.replay: object = None
        self.signature: tuple = ()
        self.table: tuple[torch.Tensor, torch.Tensor, np.ndarray] = ()  # type: ignore[assignment]
        self.builds = 0  # how many times a table was built

    def __deepcopy__(self, memo: dict) -> _ReplayCache:
        return self


class KeyModel:
    """DeepLog's log-key anomaly detector (fitted wrapper around :class:`NextKeyLSTM`).

    Parameters
    ----------
    config
        Settings; :class:`KeyModelConfig` defaults when None.

    Attributes
    ----------
    vocab_ : KeyVocabulary
        Keys seen in training (plus spare slots filled by :meth:`partial_fit`).
    module_ : NextKeyLSTM
        The trained network.
    history_ : History
        Per-epoch records of every training phase.
    g_ : int
        The g used by :meth:`detect` when none is given.
    g_selection_ : GSelection
        How g was chosen, with the validation false-positive rate for every g.
    fit_info_ : dict
        Training summary: epochs, how training stopped, seconds, number of examples.
    """

    def __init__(self, config: KeyModelConfig | None = None) -> None:
        self.config = KeyModelConfig() if config is None else config

    # ------------------------------------------------------------------ fitting

    def _new_module(self, vocab: KeyVocabulary) -> NextKeyLSTM | KeyEnsemble:
        c = self.config
        members = [
            NextKeyLSTM(
                vocab.size,
                hidden_size=c.hidden_size,
                num_layers=c.num_layers,
                embedding_dim=c.embedding_dim if c.encoding == "embedding" else None,
                session_counts=c.session_counts,
            )
            for _ in range(c.ensemble)
        ]
        return members[0] if c.ensemble == 1 else KeyEnsemble(members)

    @property
    def count_columns(self) -> int:
        """Columns of session key counts after each window (0 without ``session_counts``)."""
        return self.vocab_.size if self.config.session_counts else 0

    def _tensors(
        self, sessions: Sequence[Session], vocab: KeyVocabulary
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        w, t, c = distinct_examples(
            sessions,
            vocab,
            self.config.window,
            count_columns=vocab.size if self.config.session_counts else 0,
        )
        c = {"count": c, "sqrt": np.sqrt(c), "log": np.log1p(c), "unit": np.ones_like(c)}[
            self.config.weighting
        ]
        return (
            torch.from_numpy(w),
            torch.from_numpy(t),
            torch.from_numpy(c.astype(np.float32)),
        )

    def fit(
        self,
        sessions: Iterable[Sequence[int]],
        *,
        validation_fraction: float | None = None,
        callbacks: Iterable[Callback] = (),
        seed: int = 0,
        device: str | torch.device | None = None,
    ) -> KeyModel:
        """Learn the next-key model from normal sessions.

        Parameters
        ----------
        sessions
            Normal training sessions (external key ids), with their repetitions.
        validation_fraction
            Share held out for early stopping and the choice of g: of the sequences seen once
            (default 0.5) with ``validation_split="novel"``, of the sessions (default 0.2) with
            ``"sessions"`` or when no sequence is seen once. With 0 there is no early stopping
            (``max_epochs`` run) and an ``"auto"`` g falls back to the paper's 9.
        callbacks
            Progress callbacks (see :mod:`workbench.train`); phases are ``"split"`` (training on
            the sessions not held out), then ``"refit"`` (all sessions), or ``"train"`` without a
            split.
        seed
            Seeds the split, the weight initialisation and the shuffling.
        device
            Default: CUDA when available, else the CPU.
        """
        if validation_fraction is not None and not 0.0 <= validation_fraction < 1.0:
            raise ValueError(f"validation_fraction must be in [0, 1), got {validation_fraction}")
        if self.config.weighting == "auto":
            return self._fit_weighting(
                sessions,
                validation_fraction=validation_fraction,
                callbacks=callbacks,
                seed=seed,
                device=device,
            )
        sessions = _check_sessions(sessions)
        if not sessions:
            raise ValueError("no training sessions")
        c = self.config
        callbacks = list(callbacks)
        dev = pick_device(device)
        t0 = time.perf_counter()
        splits: list[NovelSplit] = []
        if c.validation_split == "novel" and validation_fraction != 0.0:
            if c.validation_folds > 1 and validation_fraction is None:
                splits = split_novel_folds(sessions, c.validation_folds, seed)
            if not splits:
                one = split_novel(
                    sessions, 0.5 if validation_fraction is None else validation_fraction, seed
                )
                splits = [one] if len(one.validation) else []  # none seen once: nothing held out
        if splits:
            split, folds = "novel", [(f.fit, f.validation) for f in splits]
        else:
            split = "sessions"
            fraction = 0.2 if validation_fraction is None else validation_fraction
            n_val = min(round(fraction * len(sessions)), len(sessions) - 1)
            perm = np.random.default_rng(seed).permutation(len(sessions))
            folds = [(perm[n_val:], perm[:n_val]) if n_val else (perm, perm[:0])]
        n_val = len(folds[0][1])
        history = History()
        info: dict[str, Any] = {
            "n_sessions": len(sessions),
            "n_validation_sessions": sum(len(v) for _, v in folds),
            "validation_split": split if n_val else None,
            "validation_folds": len(folds),
            "device": str(dev),
            "seed": seed,
        }
        fixed = None if c.top_g == "auto" else int(c.top_g)
        floor = None if c.min_probability == "auto" else float(c.min_probability)
        use_rule = c.end_limit and fixed is None and floor is None
        novel_share = splits[0].novel_share if splits else 0.0
        chosen_parts: list[KeyScores] = []
        planted_parts: list[KeyScores] = []
        weight_parts: list[np.ndarray] = []
        kept: tuple | None = None
        fold_epochs: list[int] = []
        for i, (fit_idx, val_idx) in enumerate(folds):
            fold_val = [sessions[j] for j in val_idx]
            fold_fit = [sessions[j] for j in fit_idx] if len(val_idx) else sessions
            vocab = KeyVocabulary.from_sessions(fold_fit, spare=c.spare_keys)
            seed_everything(seed + i)
            module = self._new_module(vocab)
            x, y, w = self._tensors(fold_fit, vocab)
            validation = self._tensors(fold_val, vocab) if len(val_idx) else None
            phase = "train" if not len(val_idx) else "split" if i == 0 else f"fold {i + 1}"
            result = train_module(
                module,
                x,
                y,
                _cross_entropy,
                weights=w,
                validation=validation,
                config=c.train_config(),
                callbacks=callbacks,
                seed=seed + i,
                device=dev,
                phase=phase,
                history=history,
            )
            self.vocab_, self.module_, self.device_ = vocab, module, dev
            fold_epochs.append(result.best_epoch)
            if i == 0:
                kept = (vocab, module, result, fold_val, len(y))
            if len(val_idx) and result.stopped != "interrupted":
                # Score the held-out sessions with the model that never saw them. With the novel
                # split the new sessions' FPR is estimated: held-out (never seen) sequences weigh
                # novel_share, the training sequences (seen) the rest, each by how often it occurs.
                chosen_on, weights = fold_val, np.full(len(fold_val), 1.0)
                if split == "novel":
                    seen, _, counts = unique_sessions(fold_fit)
                    chosen_on = fold_val + seen
                    n_novel = sum(len(v) for _, v in folds)
                    weights = np.concatenate(
                        [
                            np.full(len(fold_val), novel_share / n_novel),
                            (1.0 - novel_share) * counts / counts.sum() / len(folds),
                        ]
                    )
                chosen_parts.append(self.score(chosen_on, top_k=10))
                weight_parts.append(weights)
                planted = (
                    synthetic_anomalies(chosen_on, set(sessions), seed + i) if use_rule else []
                )
                if planted:
                    planted_parts.append(self.score(planted, top_k=10))
            if result.stopped == "interrupted":
                break
        assert kept is not None
        vocab, module, result, val_sessions, n_examples = kept
        self.vocab_, self.module_ = vocab, module
        info.update(
            n_distinct_examples=n_examples,
            epochs=result.best_epoch,
            stopped=result.stopped,
            fold_epochs=fold_epochs,
        )

        # Choose g (and the END limit and floor) on the held-out normal sessions.
        if chosen_parts:
            if split == "novel":
                info["novel_share"] = novel_share
            chosen = concat_scores(chosen_parts)
            weights = np.concatenate(weight_parts)
            if planted_parts:
                planted_scores = concat_scores(planted_parts)
                info["n_synthetic_anomalies"] = planted_scores.n_sessions
                self.g_selection_ = select_rule(
                    chosen, planted_scores, target_fpr=c.target_fpr, weights=weights
                )
            else:
                self.g_selection_ = select_g(
                    chosen, target_fpr=c.target_fpr, fixed=fixed, floor=floor, weights=weights
                )
        else:
            g = 9 if fixed is None else fixed
            method = "fixed" if fixed is not None else "default"
            rule = "set by the user" if fixed is not None else "paper default (no validation split)"
            if fixed is None or floor is None:
                logger.warning("no validation split: using g = %d and no probability floor", g)
            self.g_selection_ = GSelection(g, method, rule, None, 0, {}, floor or 0.0)
        self.g_ = self.g_selection_.g
        self.min_probability_ = self.g_selection_.min_probability
        self.end_g_ = self.g_selection_.end_g

        if c.refit and n_val and result.stopped != "interrupted" and result.best_epoch > 0:
            # Fine-tune on every training session, starting from the split model's weights. Keys
            # seen only in the held-out sessions take spare vocabulary slots.
            backup = copy.deepcopy(module.state_dict()), copy.deepcopy(vocab)
            for key in sorted({k for s in val_sessions for k in s} - set(vocab.keys)):
                if not vocab.add(key):
                    logger.warning("no spare slot for key %d seen only in validation", key)
            x, y, w = self._tensors(sessions, vocab)
            epochs = max(1, math.ceil(c.refit_fraction * result.best_epoch))
            refit = train_module(
                module,
                x,
                y,
                _cross_entropy,
                weights=w,
                config=c.train_config(max_epochs=epochs),
                callbacks=callbacks,
                seed=seed + 1,
                device=dev,
                phase="refit",
                history=history,
            )
            if refit.stopped == "interrupted":
                logger.warning("refit interrupted: keeping the model trained on the split")
                module.load_state_dict(backup[0])
                self.vocab_ = backup[1]
            info.update(refit=refit.stopped, refit_epochs=epochs, refit_examples=len(y))
        self.history_ = history
        self.updates_ = 0
        self.feedback_ = {"windows": [], "targets": []}
        info["seconds"] = time.perf_counter() - t0
        self.fit_info_ = info
        return self

    def _fit_weighting(self, sessions: Iterable[Sequence[int]], **kw: Any) -> KeyModel:
        """``weighting="auto"``: train with ``"log"`` and with ``"count"`` example weights and keep
        the model whose validation-chosen rule flags the larger share of synthetic anomalies
        (ties: the lower estimated FPR, then ``"log"``). Log weights lift rare transitions, which
        suits logs whose rare normal orderings must not be flagged (HDFS); count weights keep the
        true frequencies, which separates steps that never follow each other in branchy workflows
        (the simulator's missing and reordered steps)."""
        sessions = list(sessions)
        trials: dict[str, KeyModel] = {}
        for weighting in ("log", "count"):
            model = KeyModel(replace(self.config, weighting=weighting))
            trials[weighting] = model.fit(sessions, **kw)

        def merit(w: str) -> tuple[float, float, int]:
            sel = trials[w].g_selection_
            recall = sel.synthetic_recall if sel.synthetic_recall is not None else -1.0
            fpr = sel.estimated_fpr if sel.estimated_fpr is not None else 1.0
            return (recall, -fpr, int(w == "log"))

        best = max(trials, key=merit)
        self.__dict__.update(trials[best].__dict__)
        self.fit_info_ = {
            **self.fit_info_,
            "weighting_choice": {
                w: {
                    "synthetic_recall": trials[w].g_selection_.synthetic_recall,
                    "estimated_fpr": trials[w].g_selection_.estimated_fpr,
                    "g": trials[w].g_,
                }
                for w in trials
            },
            "weighting": best,
        }
        logger.info("example weighting %r chosen on validation (%s)", best, self.fit_info_)
        return self

    # ------------------------------------------------------------------ scoring

    def _check_fitted(self) -> None:
        if not hasattr(self, "module_"):
            raise RuntimeError("this KeyModel is not fitted yet; call fit() or from_state()")

    def input_rows(self, histories: Sequence[Sequence[int]]) -> np.ndarray:
        """The network's input rows for entries given by their whole history in the session.

        ``histories[i]`` holds the external keys before the entry, from the start of its session:
        the last h are the window (left-padded when fewer), and with ``session_counts`` all of them
        are counted. Keys outside the vocabulary are unknown.

        >>> m = KeyModel(KeyModelConfig(window=2, hidden_size=4, max_epochs=1))
        >>> m = m.fit([(5, 6)] * 4, validation_fraction=0.0, device="cpu")
        >>> m.input_rows([[], [5], [5, 6, 6]]).tolist()
        [[0, 0], [0, 3], [4, 4]]
        """
        self._check_fitted()
        return history_rows(histories, self.vocab_, self.config.window, self.count_columns)

    def predict_proba(self, windows: np.ndarray, *, batch_size: int = 16384) -> np.ndarray:
        """``(n, h)`` internal key indices -> ``(n, vocab size)`` next-key probabilities.

        With ``session_counts`` the rows are ``(n, h + vocab size)``: each window followed by the
        session's key counts so far (:func:`workbench.keys.windows.frame_sessions`).

        PAD, UNKNOWN and free slots are masked out (probability 0).
        """
        self._check_fitted()
        mask = torch.from_numpy(self.vocab_.candidate_mask()).to(self.device_)
        module = self.module_.eval()
        out = np.empty((len(windows), self.vocab_.size), dtype=np.float32)
        threads = torch_threads(CPU_THREADS if self.device_.type == "cpu" else None)
        with torch.inference_mode(), threads:
            for start in range(0, len(windows), batch_size):
                xb = torch.from_numpy(np.ascontiguousarray(windows[start : start + batch_size]))
                logits = module(xb.to(self.device_))  # (B, V)
                logits = logits.masked_fill(~mask, float("-inf"))
                out[start : start + len(xb)] = torch.softmax(logits, dim=1).cpu().numpy()
        return out

    def score(self, sessions: Iterable[Sequence[int]], *, top_k: int | None = None) -> KeyScores:
        """Per-entry scores: rank of the actual key and the top candidates with probabilities.

        Every session yields ``len(session) + 1`` entries (the last predicts END). ``top_k``
        defaults to ``max(g_, 10)``.
        """
        self._check_fitted()
        k = max(self.g_, 10) if top_k is None else top_k
        return score_sessions(
            _check_sessions(sessions),
            self.vocab_,
            self.config.window,
            self.predict_proba,
            top_k=k,
            count_columns=self.count_columns,
        )

    def detect(
        self,
        sessions: Iterable[Sequence[int]],
        g: int | None = None,
        *,
        min_probability: float | None = None,
        end_g: int | None = None,
    ) -> Detection:
        """Per-entry and per-session verdicts under the top-g rule.

        ``g`` and ``min_probability`` default to the fitted ``g_`` and ``min_probability_``;
        ``end_g`` (the END entry's rank limit) to the fitted ``end_g_`` when ``g`` is not given,
        else to ``g``.
        """
        if end_g is None and g is None:
            end_g = self.end_g_
        g = self.g_ if g is None else int(g)
        floor = self.min_probability_ if min_probability is None else float(min_probability)
        detection = detect(self.score(sessions, top_k=max(g, 10)), g, floor, end_g=end_g)
        detection.info["g_method"] = self.g_selection_.method if g == self.g_ else "given"
        return detection

    # ------------------------------------------------------------------ online update

    def partial_fit(
        self,
        histories: Sequence[Sequence[int]],
        next_keys: Sequence[int],
        *,
        replay: Sequence[Sequence[int]] | None = None,
        replay_size: int = 32,
        memory_size: int = 16,
        steps: int = 1,
        max_steps: int = 6,
        learning_rate: float = 3e-3,
        seed: int = 0,
        guard_size: int = 64,
    ) -> KeyModel:
        """Gradient steps that teach the model the given (history -> next key) examples.

        Meant for confirmed false positives. ``histories[i]`` holds the keys before the entry (the
        last ``h`` are used; fewer means the session started there, as in scoring) and
        ``next_keys[i]`` the actual key (``keyids.END`` for the end of a session). A key new to the
        vocabulary takes a spare slot, and its output row is imprinted from the taught context
        (:meth:`_imprint`); with no slot left it stays unknown and its example is skipped.

        The update takes at least ``steps`` Adam steps (step size ``learning_rate``, smaller than
        training's, so one update moves the other predictions little) and goes on, up to
        ``max_steps``, until every new example is accepted by the fitted rule (rank within
        ``g_``, or ``end_g_`` for END, and probability at least ``min_probability_``): the same
        situation is then not reported again. Each step also teaches again up to ``memory_size``
        examples of earlier updates (``feedback_``, saved with the model), so a later update does
        not undo an earlier one, and mixes in ``replay_size`` distinct examples of the ``replay``
        sessions (normal ones), drawn in proportion to how often they occur and weighing together
        as much as the taught ones, so the update does not erase what training learned. What the
        update must not break is checked at every step: the earlier feedback taught again, and the
        ``guard_size`` most frequent replay examples the model accepted before the update, in
        other contexts than the taught ones (in its own context a confirmed example may take an
        old successor's place in the top ``g_``); one that the step pushed out of the top ``g_``
        joins the taught examples, and the update goes on (up to ``max_steps``) until all are
        accepted again. The replay example table is built once per replay object and vocabulary (keep the same object
        between calls; it is read, never changed). ``g_`` is kept. ``last_update_`` says how many
        steps were taken and whether the new examples were accepted.
        """
        self._check_fitted()
        if len(histories) != len(next_keys):
            raise ValueError("histories and next_keys must have the same length")
        if not len(next_keys):
            return self
        # Only the taught keys join the vocabulary: a key in a history that the model does not know
        # stays unknown context (it may be a log parser's "unknown template" marker).
        known = self.vocab_.candidate_mask()
        for key in [k for k in next_keys if k != keyids.END]:
            if key not in self.vocab_ and not self.vocab_.add(int(key)):
                logger.warning("no spare vocabulary slot for key %d: it stays unknown", key)
        windows = self.input_rows(histories)
        targets = np.array(
            [END_INDEX if k == keyids.END else int(self.vocab_.encode([k])[0]) for k in next_keys]
        )
        keep = (
            targets != UNKNOWN_INDEX
        )  # a key without a slot cannot be predicted: nothing to teach
        windows, targets = windows[keep], targets[keep]
        self.updates_ += len(next_keys)
        if not len(targets):
            self.last_update_ = {"steps": 0, "accepted": False, "taught": 0}
            return self
        fresh = ~known[targets] & (targets != END_INDEX)  # keys that just took a spare slot
        fresh_windows, fresh_targets = windows[fresh], targets[fresh]
        rng = np.random.default_rng(seed)
        # Earlier feedback is taught again with the new examples, so a later update does not undo
        # it (it is confirmed normal behaviour, like the replay sessions, but rare in them).
        fw, ft = self._feedback_memory()
        if len(ft) > memory_size:
            pick = np.sort(rng.choice(len(ft), memory_size, replace=False))
            fw, ft = fw[pick], ft[pick]
        self._remember(windows, targets)
        new = len(targets)  # the update goes on until these are accepted
        windows, targets = np.concatenate([windows, fw]), np.concatenate([targets, ft])
        n = len(targets)
        x = torch.from_numpy(windows)
        y = torch.from_numpy(targets)
        w = torch.ones(n)
        if replay:
            rw, rt, p = self._replay_table(replay)
            if len(rt) > replay_size:
                # Drawn in proportion to frequency, so each replayed example weighs the same.
                pick = rng.choice(len(rt), replay_size, replace=False, p=p)
                rw, rt, p = rw[pick], rt[pick], np.full(replay_size, 1.0 / replay_size)
            if len(rt):  # all replayed examples together weigh as much as the taught ones
                x, y = torch.cat([x, rw]), torch.cat([y, rt])
                w = torch.cat([w, torch.from_numpy((p * n).astype(np.float32))])
        mask = torch.from_numpy(self.vocab_.candidate_mask()).to(self.device_)
        # Guards: what the model accepts now and must still accept after the update (a new
        # branch must not push an old successor out of the top g).
        gx, gy = x[new:n], y[new:n]  # earlier feedback, taught again
        if replay and guard_size > 0:
            rw, rt, p = self._replay_table(replay)
            top = np.argsort(-p, kind="stable")[:guard_size]
            gx, gy = torch.cat([gx, rw[top]]), torch.cat([gy, rt[top]])
        if len(gy):  # in a taught example's own context the user's verdict comes first
            taught = {tuple(r) for r in windows[:new].tolist()}
            other = torch.tensor([tuple(r) not in taught for r in gx.tolist()], dtype=torch.bool)
            gx, gy = gx[other], gy[other]
        gx, gy = gx.to(self.device_), gy.to(self.device_)
        glimit = self._limits(gy)
        with torch.no_grad(), torch_threads(CPU_THREADS if self.device_.type == "cpu" else None):
            self.module_.eval()
            keep_ok = self._accepted(self._judged(gx), gy, glimit, mask)
        gx, gy, glimit = gx[keep_ok], gy[keep_ok], glimit[keep_ok]
        if len(fresh_targets):  # after the guards are taken: imprinting moves what they check
            # With the thread count of the steps below: switching it between calls rebuilds
            # torch's thread pool, which costs more than the update itself.
            with torch_threads(CPU_THREADS if self.device_.type == "cpu" else None):
                self._imprint(fresh_windows, fresh_targets, known)
        x, y, w = x.to(self.device_), y.to(self.device_), w.to(self.device_)
        limit = self._limits(y[:new])
        lr = learning_rate
        fused = self.device_.type in ("cpu", "cuda")  # one kernel for all parameters
        optimizer = torch.optim.Adam(self.module_.parameters(), lr=lr, fused=fused)
        self.module_.train()
        taken, accepted = 0, False
        lost = torch.zeros(len(gy), dtype=torch.bool, device=self.device_)
        with torch_threads(CPU_THREADS if self.device_.type == "cpu" else None), _no_denormals():
            while True:
                logits = self.module_(torch.cat([x, gx]))  # (B, V); an ensemble: (M, B, V)
                glogits = logits[..., len(y) :, :]
                logits = logits[..., : len(y), :]
                with torch.no_grad():
                    judged = logits if logits.dim() == 2 else _mixture(logits)
                    accepted = bool(self._accepted(judged[:new], y[:new], limit, mask).all())
                    if len(gy):
                        gj = glogits if glogits.dim() == 2 else _mixture(glogits)
                        lost |= ~self._accepted(gj, gy, glimit, mask)  # taught from now on
                        accepted &= bool(self._accepted(gj, gy, glimit, mask).all())
                if taken >= max(steps, 0) and (accepted or taken >= max_steps):
                    break
                loss = (_cross_entropy(logits, y) * w).sum()
                if lost.any():  # a pushed-out successor weighs as much as a taught example
                    loss = loss + _cross_entropy(glogits, gy)[..., lost].sum()
                loss = loss / (w.sum() + lost.sum())
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                taken += 1
        self.module_.eval()
        self.last_update_ = {"steps": taken, "accepted": accepted, "taught": n, "new": new}
        return self

    def _imprint(self, windows: np.ndarray, targets: np.ndarray, known: np.ndarray) -> None:
        """Give keys that just took a spare slot an output row made from the taught contexts.

        A spare slot was trained never to be predicted, and gradient steps alone would have to move
        the whole network to lift it. Weight imprinting instead sets the key's output row to
        the (scaled) hidden state of its context, and its bias so that in that context it scores as
        high as the best known key; the following steps then adjust it.
        """
        members = getattr(self.module_, "members", None) or [self.module_]
        x = torch.from_numpy(windows).to(self.device_)
        old = torch.from_numpy(known).to(self.device_)
        for member in members:  # each network of an ensemble gets its own row
            head = member.head
            captured: list[torch.Tensor] = []
            hook = head.register_forward_hook(
                lambda _m, inp, _out, into=captured: into.append(inp[0])
            )
            try:
                with torch.no_grad(), _no_denormals():
                    logits = member.eval()(x)  # (n, V)
            finally:
                hook.remove()
            hidden = captured[0]  # (n, H)
            with torch.no_grad():
                scale = head.weight[old].norm(dim=1).mean()
                for j in np.unique(targets):
                    rows = torch.from_numpy(targets == j).to(self.device_)
                    hc = hidden[rows].mean(dim=0)  # (H,)
                    w = scale * hc / hc.norm().clamp_min(1e-6)
                    top = logits[rows][:, old].max(dim=1).values  # (m,) best known key per context
                    # What the rest of the network (the session-count part) adds to key j's logit.
                    rest = logits[rows][:, j] - hidden[rows] @ head.weight[j] - head.bias[j]
                    head.weight[j] = w
                    head.bias[j] = (top - hidden[rows] @ w - rest).mean()

    def _feedback_memory(self) -> tuple[np.ndarray, np.ndarray]:
        """The distinct examples taught by earlier updates: input rows ``(m, h [+ counts])`` and
        targets ``(m,)`` as internal indices (they stay valid: keys learned later take new slots)."""
        memory = getattr(self, "feedback_", None)
        if memory is None or not len(memory["targets"]):
            width = self.config.window + self.count_columns
            return np.zeros((0, width), dtype=np.int64), np.zeros(0, dtype=np.int64)
        return np.asarray(memory["windows"], dtype=np.int64), np.asarray(memory["targets"])

    def _remember(self, windows: np.ndarray, targets: np.ndarray) -> None:
        fw, ft = self._feedback_memory()
        pairs = np.concatenate([fw, ft[:, None]], axis=1).tolist()
        seen = {tuple(p) for p in pairs}
        for row, t in zip(windows.tolist(), targets.tolist(), strict=True):
            if (*row, t) not in seen:
                seen.add((*row, t))
                pairs.append([*row, t])
        pairs = pairs[-FEEDBACK_MEMORY:]  # the most recent ones
        self.feedback_ = {
            "windows": [p[:-1] for p in pairs],
            "targets": [p[-1] for p in pairs],
        }

    def _limits(self, targets: torch.Tensor) -> torch.Tensor:
        """``(n,)`` the rank each target must reach: ``g_``, or ``end_g_`` for END."""
        limit = torch.full((len(targets),), self.g_, device=targets.device)
        if self.end_g_ is not None:
            limit[targets == END_INDEX] = self.end_g_
        return limit

    def _judged(self, windows: torch.Tensor) -> torch.Tensor:
        logits = self.module_(windows)
        return logits if logits.dim() == 2 else _mixture(logits)

    def _accepted(
        self, logits: torch.Tensor, targets: torch.Tensor, limit: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        """``(n,)`` bool: the fitted rule accepts each target key under these logits."""
        lg = logits.masked_fill(~mask, float("-inf"))  # (n, V)
        actual = lg.gather(1, targets[:, None])  # (n, 1)
        rank = 1 + (lg > actual).sum(dim=1)  # (n,)
        prob = torch.softmax(lg, dim=1).gather(1, targets[:, None])[:, 0]  # (n,)
        return (rank <= limit) & (prob >= self.min_probability_)

    def _replay_table(
        self, replay: Sequence[Sequence[int]]
    ) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
        """Distinct examples of the replay sessions, encoded, with their sampling probabilities.

        Cached per replay object and vocabulary: adding a key to a spare slot moves no index, but
        the replay sessions that hold that key encode differently, so the table is built again.
        """
        signature = (self.vocab_.size, tuple(self.vocab_.keys))
        cache = getattr(self, "_replay_cache", None)
        if cache is None:
            cache = self._replay_cache = _ReplayCache()
        if cache.replay is not replay or cache.signature != signature:
            rw, rt, rc = distinct_examples(
                _check_sessions(replay),
                self.vocab_,
                self.config.window,
                count_columns=self.count_columns,
            )
            keep = rt != UNKNOWN_INDEX  # targets the model cannot predict teach nothing
            rw, rt, rc = rw[keep], rt[keep], rc[keep]
            p = rc / rc.sum() if len(rc) else rc
            cache.replay, cache.signature = replay, signature
            cache.table = (torch.from_numpy(rw), torch.from_numpy(rt), p)
            cache.builds += 1
        return cache.table

    # ------------------------------------------------------------------ persistence

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to rebuild the fitted model; JSON-able except ``module`` (tensors).

        Save with ``torch.save`` (or JSON for everything but ``module``); never pickles this object.
        """
        self._check_fitted()
        return {
            "kind": STATE_KIND,
            "version": STATE_VERSION,
            "config": self.config.to_dict(),
            "vocab": self.vocab_.to_dict(),
            "module": {k: v.detach().cpu() for k, v in self.module_.state_dict().items()},
            "g": self.g_,
            "min_probability": self.min_probability_,
            "end_g": self.end_g_,
            "g_selection": self.g_selection_.to_dict(),
            "history": list(self.history_),
            "fit_info": dict(self.fit_info_),
            "updates": self.updates_,
            "feedback": dict(getattr(self, "feedback_", None) or {"windows": [], "targets": []}),
        }

    @classmethod
    def from_state(
        cls, state: Mapping[str, Any], *, device: str | torch.device | None = None
    ) -> KeyModel:
        """Rebuild a fitted model from :meth:`state_dict` output."""
        if state.get("kind") != STATE_KIND or state.get("version") != STATE_VERSION:
            raise ValueError(
                f"not a key-model state (kind {state.get('kind')!r}, "
                f"version {state.get('version')!r})"
            )
        model = cls(KeyModelConfig.from_dict(state["config"]))
        model.vocab_ = KeyVocabulary.from_dict(state["vocab"])
        model.device_ = pick_device(device)
        model.module_ = model._new_module(model.vocab_)
        model.module_.load_state_dict(state["module"])
        model.module_.to(model.device_).eval()
        model.g_ = int(state["g"])
        model.min_probability_ = float(state.get("min_probability", 0.0))
        model.end_g_ = None if state.get("end_g") is None else int(state["end_g"])
        model.g_selection_ = GSelection.from_dict(state["g_selection"])
        model.history_ = History(state.get("history", []))
        model.fit_info_ = dict(state.get("fit_info", {}))
        model.updates_ = int(state.get("updates", 0))
        feedback = state.get("feedback") or {"windows": [], "targets": []}
        model.feedback_ = {
            "windows": [[int(k) for k in w] for w in feedback["windows"]],
            "targets": [int(t) for t in feedback["targets"]],
        }
        return model

    def __repr__(self) -> str:
        fitted = f", g_={self.g_}, {self.vocab_!r}" if hasattr(self, "g_") else ""
        return f"KeyModel({self.config!r}{fitted})"
