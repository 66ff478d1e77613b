"""The steps of fitting the log-key model (:meth:`workbench.keys.model.KeyModel.fit`).

0. :func:`training_sample`: a long log's sessions are sampled down to a bounded number of distinct
   sequences (:func:`workbench.keys.splits.sample_sessions`), so every later step's cost is bounded;
1. :func:`validation_folds`: which normal training sessions are held out (whole rare sequences by
   default, :mod:`workbench.keys.splits`; a random share of the sessions otherwise);
2. :func:`train_folds`: a network trained on the rest of each fold (early stopping on the held-out
   loss), and the held-out sessions scored by the network that never saw them, with synthetic
   anomalies made from them when the rule is chosen on those too;
3. :func:`choose_rule`: g, the END limit and the probability floor chosen on those scores
   (:mod:`workbench.keys.selection`);
4. :func:`refit`: the first fold's network fine-tuned on every training session.

:func:`fit_weighting` runs the whole fit twice for ``weighting="auto"``.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from workbench.keys.config import KeyModelConfig
from workbench.keys.examples import distinct_examples
from workbench.keys.networks import build_network, cross_entropy
from workbench.keys.parallel import FoldWorkers, use_workers
from workbench.keys.scores import KeyScores, concat_scores
from workbench.keys.selection import GSelection, select_g, select_rule, synthetic_anomalies
from workbench.keys.splits import sample_sessions, split_novel, split_novel_folds
from workbench.keys.vocabulary import KeyVocabulary, Session
from workbench.keys.windows import unique_sessions
from workbench.train import Callback, History, seed_everything, train_module

if TYPE_CHECKING:
    from workbench.keys.model import KeyModel

__all__ = [
    "FoldResults",
    "Folds",
    "choose_rule",
    "example_tensors",
    "fit_info",
    "fit_weighting",
    "refit",
    "train_folds",
    "training_sample",
    "validation_folds",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Folds:
    """The held-out parts of the training sessions: ``(fit indices, validation indices)`` each."""

    split: str  # "novel" (whole rare sequences held out) or "sessions" (a random share)
    folds: list[tuple[np.ndarray, np.ndarray]]
    novel_share: float  # Good-Turing share of new sessions never seen before (novel split)

    @property
    def n_validation(self) -> int:
        """Sessions held out by the first fold (0: no validation)."""
        return len(self.folds[0][1])


@dataclass
class FoldResults:
    """What :func:`train_folds` leaves for choosing the rule and refitting."""

    kept: tuple  # the first fold's (vocabulary, network, training result, held-out, n examples)
    parallel: bool = False  # the later folds trained in worker processes meanwhile
    chosen: list[KeyScores] = field(default_factory=list)  # normal sessions the rule is chosen on
    weights: list[np.ndarray] = field(default_factory=list)  # their weights (estimated FPR)
    planted: list[KeyScores] = field(default_factory=list)  # synthetic anomalies
    epochs: list[int] = field(default_factory=list)  # epochs early stopping kept, per fold


def training_sample(
    sessions: list[Session], config: KeyModelConfig, seed: int
) -> tuple[list[Session], dict[str, int]]:
    """Step 0: the sessions the model is fitted on (all of them when they hold at most
    ``max_distinct_sessions`` distinct sequences, else a seeded uniform sample holding that many),
    and what ``fit_info_`` says of it: ``n_sessions`` and ``n_distinct_sessions`` of the log, and
    ``..._used`` of the sample."""
    kept = sample_sessions(sessions, config.max_distinct_sessions, seed)
    n_distinct = len(set(sessions))
    used = {"n_sessions": len(sessions), "n_distinct_sessions": n_distinct}
    if kept is not None:
        sessions = [sessions[i] for i in kept]
        logger.info(
            "key model: a sample of %d of %d sessions (%d of %d distinct sequences)",
            len(sessions), used["n_sessions"], config.max_distinct_sessions, n_distinct,
        )  # fmt: skip
    used["n_sessions_used"] = len(sessions)
    used["n_distinct_sessions_used"] = n_distinct if kept is None else len(set(sessions))
    return sessions, used


def validation_folds(
    sessions: Sequence[Session],
    config: KeyModelConfig,
    validation_fraction: float | None,
    seed: int,
) -> Folds:
    """Step 1: the novel split (``validation_folds`` cross-fitted folds, or one), else a random
    share of the sessions (also when no sequence is seen once)."""
    c = config
    splits = []
    if c.validation_split == "novel" and validation_fraction != 0.0:
        if c.validation_folds > 1 and validation_fraction is None:
            splits = split_novel_folds(sessions, c.validation_folds, seed)
        if not splits:
            fraction = 0.5 if validation_fraction is None else validation_fraction
            one = split_novel(sessions, fraction, seed)
            splits = [one] if len(one.validation) else []  # none seen once: nothing held out
    if splits:
        return Folds("novel", [(f.fit, f.validation) for f in splits], splits[0].novel_share)
    fraction = 0.2 if validation_fraction is None else validation_fraction
    n_val = min(round(fraction * len(sessions)), len(sessions) - 1)
    perm = np.random.default_rng(seed).permutation(len(sessions))
    return Folds("sessions", [(perm[n_val:], perm[:n_val]) if n_val else (perm, perm[:0])], 0.0)


def example_tensors(
    config: KeyModelConfig, sessions: Sequence[Session], vocab: KeyVocabulary
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Distinct examples of ``sessions`` as input rows, targets and weights ``f(count)``."""
    w, t, c = distinct_examples(
        sessions,
        vocab,
        config.window,
        count_columns=vocab.size if config.session_counts else 0,
    )
    c = {"count": c, "sqrt": np.sqrt(c), "log": np.log1p(c), "unit": np.ones_like(c)}[
        config.weighting
    ]
    return torch.from_numpy(w), torch.from_numpy(t), torch.from_numpy(c.astype(np.float32))


def train_folds(
    model: KeyModel,
    sessions: list[Session],
    folds: Folds,
    *,
    callbacks: list[Callback],
    seed: int,
    device: torch.device,
    history: History,
) -> FoldResults:
    """Step 2: train a network without each fold's held-out sessions, and score those with it.
    The folds after the first train in worker processes meanwhile where that pays
    (:mod:`workbench.keys.parallel`); the networks are the same either way."""
    c = model.config
    use_rule = c.end_limit and c.top_g == "auto" and c.min_probability == "auto"
    data = [_fold_data(c, sessions, fit_idx, val_idx) for fit_idx, val_idx in folds.folds]
    run = {"seed": seed, "device": device}
    jobs = [partial(_train_fold, c, data[i], i, **run) for i in range(len(data))]
    parallel = use_workers(len(data), len(data[0][2][1]), c.max_epochs, device)
    results: FoldResults | None = None
    with FoldWorkers(jobs[1:] if parallel else []) as workers:
        parallel = bool(workers.workers)
        for i, (vocab, fold_fit, examples, fold_val, val_examples) in enumerate(data):
            if parallel and i:
                seed_everything(seed + i)
                module = build_network(c, vocab.size)
                result = workers.collect(i - 1, module, callbacks, history)
            else:
                extra = [workers.drain] if parallel else []
                module, result = jobs[i]([*callbacks, *extra], history)
            model.vocab_, model.module_, model.device_ = vocab, module.to(device), device
            if results is None:
                results = FoldResults((vocab, module, result, fold_val, len(examples[1])), parallel)
            results.epochs.append(result.best_epoch)
            if val_examples is not None and result.stopped != "interrupted":
                _score_fold(model, sessions, folds, fold_fit, fold_val, seed + i, use_rule, results)
            if result.stopped == "interrupted":
                break
    assert results is not None
    return results


def _fold_data(
    config: KeyModelConfig, sessions: list[Session], fit_idx: np.ndarray, val_idx: np.ndarray
) -> tuple:
    """A fold's vocabulary, training sessions and examples, held-out sessions and examples."""
    fold_val = [sessions[j] for j in val_idx]
    fold_fit = [sessions[j] for j in fit_idx] if len(val_idx) else sessions
    vocab = KeyVocabulary.from_sessions(fold_fit, spare=config.spare_keys)
    examples = example_tensors(config, fold_fit, vocab)
    val_examples = example_tensors(config, fold_val, vocab) if len(val_idx) else None
    return vocab, fold_fit, examples, fold_val, val_examples


def _train_fold(
    config: KeyModelConfig,
    data: tuple,
    i: int,
    callbacks: list[Callback],
    history: History,
    *,
    seed: int,
    device: torch.device,
) -> tuple[torch.nn.Module, Any]:
    """Train fold ``i``'s network from its own seed (here or in a worker: the same network)."""
    vocab, _, (x, y, w), _, val_examples = data
    seed_everything(seed + i)
    module = build_network(config, vocab.size)
    result = train_module(
        module,
        x,
        y,
        cross_entropy,
        weights=w,
        validation=val_examples,
        config=config.train_config(),
        callbacks=callbacks,
        seed=seed + i,
        device=device,
        phase="train" if val_examples is None else "split" if i == 0 else f"fold {i + 1}",
        history=history,
    )
    return module, result


def _score_fold(
    model: KeyModel,
    sessions: list[Session],
    folds: Folds,
    fold_fit: list[Session],
    fold_val: list[Session],
    seed: int,
    use_rule: bool,
    results: FoldResults,
) -> None:
    """Score the held-out sessions with the model that never saw them. With the novel split the new
    sessions' FPR is estimated: held-out (never seen) sequences weigh ``novel_share``, the training
    sequences (seen) the rest, each by how often it occurs."""
    chosen_on, weights = fold_val, np.full(len(fold_val), 1.0)
    if folds.split == "novel":
        seen, _, counts = unique_sessions(fold_fit)
        chosen_on = fold_val + seen
        n_novel = sum(len(v) for _, v in folds.folds)
        weights = np.concatenate(
            [
                np.full(len(fold_val), folds.novel_share / n_novel),
                (1.0 - folds.novel_share) * counts / counts.sum() / len(folds.folds),
            ]
        )
    results.chosen.append(model.score(chosen_on, top_k=10))
    results.weights.append(weights)
    planted = synthetic_anomalies(chosen_on, set(sessions), seed) if use_rule else []
    if planted:
        results.planted.append(model.score(planted, top_k=10))


def fit_info(
    sessions: list[Session], folds: Folds, results: FoldResults, *, device: torch.device, seed: int
) -> dict[str, Any]:
    """The training summary of ``fit_info_`` so far (the later steps add to it)."""
    _, _, result, _, n_examples = results.kept
    return {
        "n_sessions": len(sessions),
        "n_validation_sessions": sum(len(v) for _, v in folds.folds),
        "validation_split": folds.split if folds.n_validation else None,
        "validation_folds": len(folds.folds),
        "device": str(device),
        "seed": seed,
        "n_distinct_examples": n_examples,
        "epochs": result.best_epoch,
        "stopped": result.stopped,
        "fold_epochs": results.epochs,
        "parallel_folds": results.parallel,
    }


def choose_rule(
    config: KeyModelConfig, results: FoldResults, folds: Folds, info: dict[str, Any]
) -> GSelection:
    """Step 3: g (and the END limit and floor) on the held-out normal sessions; the paper's g = 9
    (or the user's) when nothing was held out."""
    c = config
    fixed = None if c.top_g == "auto" else int(c.top_g)
    floor = None if c.min_probability == "auto" else float(c.min_probability)
    if not results.chosen:
        g = 9 if fixed is None else fixed
        method = "fixed" if fixed is not None else "default"
        rule = "set by the user" if fixed is not None else "paper default (no validation split)"
        if fixed is None or floor is None:
            logger.warning("no validation split: using g = %d and no probability floor", g)
        return GSelection(g, method, rule, None, 0, {}, floor or 0.0)
    if folds.split == "novel":
        info["novel_share"] = folds.novel_share
    chosen = concat_scores(results.chosen)
    weights = np.concatenate(results.weights)
    if results.planted:
        planted = concat_scores(results.planted)
        info["n_synthetic_anomalies"] = planted.n_sessions
        return select_rule(chosen, planted, target_fpr=c.target_fpr, weights=weights)
    return select_g(chosen, target_fpr=c.target_fpr, fixed=fixed, floor=floor, weights=weights)


def refit(
    model: KeyModel,
    sessions: list[Session],
    kept: tuple,
    *,
    callbacks: list[Callback],
    seed: int,
    device: torch.device,
    history: History,
) -> dict[str, Any]:
    """Step 4: fine-tune on every training session, starting from the split model's weights, for
    ``refit_fraction`` of the epochs early stopping kept. Keys seen only in the held-out sessions
    take spare vocabulary slots. Returns what goes into ``fit_info_``."""
    vocab, module, result, val_sessions, _ = kept
    backup = copy.deepcopy(module.state_dict()), copy.deepcopy(vocab)
    for key in sorted({k for s in val_sessions for k in s} - set(vocab.keys)):
        if not vocab.add(key):
            logger.warning("no spare slot for key %d seen only in validation", key)
    x, y, w = example_tensors(model.config, sessions, vocab)
    epochs = max(1, math.ceil(model.config.refit_fraction * result.best_epoch))
    again = train_module(
        module,
        x,
        y,
        cross_entropy,
        weights=w,
        config=model.config.train_config(max_epochs=epochs),
        callbacks=callbacks,
        seed=seed + 1,
        device=device,
        phase="refit",
        history=history,
    )
    if again.stopped == "interrupted":
        logger.warning("refit interrupted: keeping the model trained on the split")
        module.load_state_dict(backup[0])
        model.vocab_ = backup[1]
    return {"refit": again.stopped, "refit_epochs": epochs, "refit_examples": len(y)}


def fit_weighting(
    model: KeyModel, sessions: Sequence[Sequence[int]], validation_fraction: float | None, **kw: Any
) -> KeyModel:
    """``weighting="auto"``: train with ``"log"`` and with ``"count"`` example weights and keep
    the model whose validation-chosen rule flags the larger share of synthetic anomalies
    (ties: the lower estimated FPR, then ``"log"``). Log weights lift rare transitions, which
    suits logs whose rare normal orderings must not be flagged (HDFS); count weights keep the
    true frequencies, which separates steps that never follow each other in branchy workflows
    (the simulator's missing and reordered steps)."""
    sessions = list(sessions)
    trials: dict[str, KeyModel] = {}
    for weighting in ("log", "count"):
        trial = type(model)(replace(model.config, weighting=weighting))
        trials[weighting] = trial.fit(sessions, validation_fraction=validation_fraction, **kw)

    def merit(w: str) -> tuple[float, float, int]:
        sel = trials[w].g_selection_
        recall = sel.synthetic_recall if sel.synthetic_recall is not None else -1.0
        fpr = sel.estimated_fpr if sel.estimated_fpr is not None else 1.0
        return (recall, -fpr, int(w == "log"))

    best = max(trials, key=merit)
    model.__dict__.update(trials[best].__dict__)
    model.fit_info_ = {
        **model.fit_info_,
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
    logger.info("example weighting %r chosen on validation (%s)", best, model.fit_info_)
    return model
