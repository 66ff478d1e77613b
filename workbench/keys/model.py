"""The DeepLog log-key model: a stacked LSTM that predicts the next log key from the last h keys.

:class:`~workbench.keys.config.KeyModelConfig` holds the settings (the paper's defaults: h = 10,
g = 9, L = 2, alpha = 64), :mod:`workbench.keys.networks` the networks, and :class:`KeyModel` is the
fitted wrapper: it owns the key vocabulary (external key ids -> internal indices with PAD, UNKNOWN
and END), trains the network with :func:`workbench.train.train_module` (the steps are
:mod:`workbench.keys.fitting`), chooses g (:mod:`workbench.keys.selection`), scores sessions
(:meth:`KeyModel.score`), applies the top-g rule (:meth:`KeyModel.detect`) and learns confirmed
false positives online (:meth:`KeyModel.partial_fit`, :mod:`workbench.keys.online`).

Choices made where the paper is silent (see docs/METHOD.md section 2):

- Sessions are framed with h PAD entries before and an END marker after; the model predicts the
  first key from pure padding and END after the last key, so short sessions are scored like any
  other and a session that stops where normal ones never stop is caught ("session ended
  unexpectedly").
- Training uses each *distinct* (window -> next key) example once, weighted by how often it occurs
  in the normal training sessions; the loss is the same weighted cross-entropy as over all windows.
- A long log is fitted on a seeded uniform sample of its sessions holding at most
  ``max_distinct_sessions`` distinct sequences (:func:`workbench.keys.splits.sample_sessions`;
  ``fit_info_`` says how many of how many), so the fit's cost follows the distinct sequences and
  windows, not the lines; a log under the cap is fitted on every session.
- ``fit`` holds out part of the normal training sessions: early stopping watches their loss, and g
  (plus an optional probability floor) is chosen on them (:func:`workbench.keys.selection.select_g`).
  The default split (``validation_split="novel"``) holds out whole *sequences* among those seen
  once (:func:`workbench.keys.splits.split_novel`): normal training files repeat a few sequences
  many times, a random share of the sessions is mostly made of copies of sequences that stay in
  training, and its false-positive rate says little about new normal sessions never seen before,
  which is where false positives come from. The false-positive rate of new sessions is estimated
  as ``novel_share * FPR(held-out sequences) + (1 - novel_share) * FPR(training sequences)``, with
  the Good-Turing ``novel_share`` (sequences seen once / sessions); g and the floor are chosen on
  that estimate. Training sets without sequences seen once fall back to a random session split.
  With ``end_limit`` (and g and the floor both ``"auto"``) the END entry gets its own rank limit,
  and g, that limit and the floor are chosen together
  (:func:`workbench.keys.selection.select_rule`): the rule flagging most synthetic anomalies made from
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
  probabilities averaged (:class:`~workbench.keys.networks.KeyEnsemble`).

>>> sessions = [(1, 2, 3, 4)] * 30 + [(1, 3, 2, 4)] * 10
>>> model = KeyModel(KeyModelConfig(window=3, hidden_size=16, max_epochs=60, top_g="auto"))
>>> model = model.fit(sessions, seed=0, device="cpu")
>>> model.detect([(1, 2, 3, 4), (1, 2, 4), (1, 2, 3, 9)]).reason.tolist()
['', 'key not in top-g', 'unknown key']
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from workbench.keys import confirmed, fitting, online
from workbench.keys.config import KeyModelConfig
from workbench.keys.examples import check_sessions, history_rows
from workbench.keys.networks import KeyEnsemble, NextKeyLSTM, build_network
from workbench.keys.scores import KeyScores, score_sessions
from workbench.keys.selection import GSelection
from workbench.keys.topg import Detection, detect
from workbench.keys.vocabulary import KeyVocabulary
from workbench.train import CPU_THREADS, Callback, History, pick_device, torch_threads

# KeyModelConfig is imported from here by the notebooks and the documented examples.
__all__ = ["KeyModel", "KeyModelConfig"]

logger = logging.getLogger(__name__)

STATE_KIND = "deeplog-workbench/key-model"
STATE_VERSION = 1


class KeyModel:
    """DeepLog's log-key anomaly detector (fitted wrapper around its network).

    Parameters
    ----------
    config
        Settings; :class:`~workbench.keys.config.KeyModelConfig` defaults when None.

    Attributes
    ----------
    vocab_ : KeyVocabulary
        Keys seen in training (plus spare slots filled by :meth:`partial_fit`).
    module_ : NextKeyLSTM | KeyEnsemble
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

    vocab_: KeyVocabulary
    module_: NextKeyLSTM | KeyEnsemble

    def __init__(self, config: KeyModelConfig | None = None) -> None:
        self.config = KeyModelConfig() if config is None else config

    @property
    def count_columns(self) -> int:
        """Columns of session key counts after each window (0 without ``session_counts``)."""
        return self.vocab_.size if self.config.session_counts else 0

    # ------------------------------------------------------------------ fitting

    def fit(
        self,
        sessions: Iterable[Sequence[int]],
        *,
        validation_fraction: float | None = None,
        callbacks: Iterable[Callback] = (),
        seed: int = 0,
        device: str | torch.device | None = None,
    ) -> KeyModel:
        """Learn the next-key model from normal sessions (the steps: :mod:`workbench.keys.fitting`).

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
        kw = {"callbacks": callbacks, "seed": seed, "device": device}
        self.confirmed_ = confirmed.empty()  # pairs confirmed under earlier weights go with them
        if self.config.weighting == "auto":
            return fitting.fit_weighting(self, sessions, validation_fraction, **kw)
        sessions = check_sessions(sessions)
        if not sessions:
            raise ValueError("no training sessions")
        c, dev, t0 = self.config, pick_device(device), time.perf_counter()
        sessions, used = fitting.training_sample(sessions, c, seed)
        folds = fitting.validation_folds(sessions, c, validation_fraction, seed)
        history = History()
        run = {"callbacks": list(callbacks), "seed": seed, "device": dev, "history": history}
        results = fitting.train_folds(self, sessions, folds, **run)
        vocab, module, result, _, _ = results.kept
        self.vocab_, self.module_ = vocab, module
        info = {**fitting.fit_info(sessions, folds, results, device=dev, seed=seed), **used}
        self._use_rule(fitting.choose_rule(c, results, folds, info))
        if c.refit and folds.n_validation and result.stopped != "interrupted" and result.best_epoch:
            info.update(fitting.refit(self, sessions, results.kept, **run))
        self.history_ = history
        self.updates_ = 0
        self.feedback_ = {"windows": [], "targets": []}
        info["seconds"] = time.perf_counter() - t0
        self.fit_info_ = info
        return self

    def _use_rule(self, selection: GSelection) -> None:
        self.g_selection_ = selection
        self.g_ = selection.g
        self.min_probability_ = selection.min_probability
        self.end_g_ = selection.end_g

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
        defaults to ``max(g_, 10)``. Entries that are pairs a person confirmed normal are marked
        (``confirmed``, :mod:`workbench.keys.confirmed`): the top-g rule accepts them.
        """
        self._check_fitted()
        k = max(self.g_, 10) if top_k is None else top_k
        return score_sessions(
            check_sessions(sessions),
            self.vocab_,
            self.config.window,
            self.predict_proba,
            top_k=k,
            count_columns=self.count_columns,
            accept=lambda w, t: confirmed.confirmed_mask(self, w, t),
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
        seed: int = 0,
    ) -> KeyModel:
        """Gradient steps that teach the model the given (history -> next key) examples.

        Meant for confirmed false positives: ``histories[i]`` holds the keys before the entry and
        ``next_keys[i]`` the actual key (``keyids.END`` for the end of a session); ``replay`` holds
        normal sessions mixed in so the update does not erase what training learned (keep the same
        object between calls). The update's settings are the ``update_*`` fields of the config; how
        it goes is :func:`workbench.keys.online.partial_fit`. ``g_`` is kept; ``last_update_`` says
        how many steps were taken and whether the new examples were accepted.
        """
        self._check_fitted()
        online.partial_fit(self, histories, next_keys, replay=replay, seed=seed)
        return self

    # ------------------------------------------------------------------ persistence

    def to_state(self) -> dict[str, Any]:
        """Everything needed to rebuild the fitted model; JSON-able except ``module`` (tensors).

        Save with ``torch.save`` (or JSON for everything but ``module``); never pickles this object.
        """
        self._check_fitted()
        return {
            "kind": STATE_KIND,
            "version": STATE_VERSION,
            "config": self.config.to_dict(),
            "vocab": self.vocab_.to_state(),
            "module": {k: v.detach().cpu() for k, v in self.module_.state_dict().items()},
            "g": self.g_,
            "min_probability": self.min_probability_,
            "end_g": self.end_g_,
            "g_selection": self.g_selection_.to_dict(),
            "history": list(self.history_),
            "fit_info": dict(self.fit_info_),
            "updates": self.updates_,
            "feedback": dict(getattr(self, "feedback_", None) or {"windows": [], "targets": []}),
            "confirmed": confirmed.confirmed_state(self),
        }

    @classmethod
    def from_state(
        cls, state: Mapping[str, Any], *, device: str | torch.device | None = None
    ) -> KeyModel:
        """Rebuild a fitted model from :meth:`to_state` output."""
        if state.get("kind") != STATE_KIND or state.get("version") != STATE_VERSION:
            raise ValueError(
                f"not a key-model state (kind {state.get('kind')!r}, "
                f"version {state.get('version')!r})"
            )
        model = cls(KeyModelConfig.from_dict(state["config"]))
        model.vocab_ = KeyVocabulary.from_state(state["vocab"])
        model.device_ = pick_device(device)
        model.module_ = build_network(model.config, model.vocab_.size)
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
        model.confirmed_ = confirmed.from_state(state.get("confirmed"), window=model.config.window)
        return model

    def __repr__(self) -> str:
        fitted = f", g_={self.g_}, {self.vocab_!r}" if hasattr(self, "g_") else ""
        return f"KeyModel({self.config!r}{fitted})"
