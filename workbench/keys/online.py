"""The key model's online update: learning confirmed false positives (docs/METHOD.md section 4).

:func:`partial_fit` (called as :meth:`workbench.keys.model.KeyModel.partial_fit`) takes a few Adam
steps that teach the model (history -> next key) examples a person confirmed normal. Its settings
are the ``update_*`` fields of :class:`~workbench.keys.config.KeyModelConfig`:

- at least ``update_steps`` steps of size ``update_learning_rate`` (smaller than training's, so one
  update moves the other predictions little), then on, up to ``update_max_steps``, until every new
  example is accepted by the fitted rule (rank within ``g_``, or ``end_g_`` for END, and probability
  at least ``min_probability_``): the same situation is then not reported again (a batch of many
  examples may take more steps, :func:`max_steps`);
- each step teaches again up to ``update_memory_size`` examples of earlier updates (``feedback_``,
  saved with the model), so a later update does not undo an earlier one, and mixes in
  ``update_replay_size`` distinct examples of the ``replay`` sessions (normal ones), drawn in
  proportion to how often they occur and weighing together as much as the taught ones, so the
  update does not erase what training learned;
- guards: all the earlier feedback (up to :data:`FEEDBACK_MEMORY` examples, not only those taught
  again) and the ``update_guard_size`` most frequent replay examples the
  model accepted before the update, in other contexts than the taught ones (in its own context a
  confirmed example may take an old successor's place in the top ``g_``), must stay accepted; one
  that a step pushed out joins the taught examples until all are accepted again.

The taught pairs are also kept as they are (:mod:`workbench.keys.confirmed`): scoring accepts them
whatever a later update does to their rank.

A key new to the vocabulary takes a spare slot, and its output row is imprinted from the taught
context (:func:`imprint`); with no slot left it stays unknown and its example is skipped.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from workbench import keyids
from workbench.keys.confirmed import confirm, record_steps
from workbench.keys.examples import check_sessions, distinct_examples
from workbench.keys.networks import cross_entropy, mixture
from workbench.keys.vocabulary import END_INDEX, UNKNOWN_INDEX
from workbench.train import CPU_THREADS, torch_threads

if TYPE_CHECKING:
    from workbench.keys.model import KeyModel

__all__ = ["FEEDBACK_MEMORY", "partial_fit", "replay_sample"]

logger = logging.getLogger(__name__)

FEEDBACK_MEMORY = 1024  # distinct examples taught online that later updates keep teaching

Tensors = tuple[torch.Tensor, torch.Tensor]


def replay_sample(sessions: Sequence[tuple[int, ...]], n: int, seed: int) -> list[tuple[int, ...]]:
    """At most ``n`` training sessions, drawn once (seeded): replayed beside every online update
    of the key model, and its fixed validation sample."""
    if len(sessions) <= n:
        return list(sessions)
    idx = np.random.default_rng(seed).choice(len(sessions), size=n, replace=False)
    return [sessions[i] for i in sorted(idx)]


def partial_fit(
    model: KeyModel,
    histories: Sequence[Sequence[int]],
    next_keys: Sequence[int],
    *,
    replay: Sequence[Sequence[int]] | None = None,
    seed: int = 0,
) -> None:
    """Teach ``model`` the (history -> next key) examples, in place (see the module docstring).

    ``histories[i]`` holds the keys before the entry (the last ``h`` are used; fewer means the
    session started there, as in scoring) and ``next_keys[i]`` the actual key (``keyids.END`` for
    the end of a session). The replay example table is built once per replay object and vocabulary
    (keep the same object between calls; it is read, never changed). ``g_`` is kept;
    ``last_update_`` says how many steps were taken and whether the new examples were accepted.
    """
    if len(histories) != len(next_keys):
        raise ValueError("histories and next_keys must have the same length")
    if not len(next_keys):
        return
    known = model.vocab_.candidate_mask()
    windows, targets = _taught_examples(model, histories, next_keys)
    model.updates_ += len(next_keys)
    confirm(model, windows, targets)  # accepted by scoring from now on, whatever the weights do
    if replay:  # the normal steps a window holding a key learned online backs off to
        rw, rt, _ = replay_table(model, replay)
        record_steps(model, rw.numpy(), rt.numpy())
    if not len(targets):
        model.last_update_ = {"steps": 0, "accepted": False, "taught": 0}
        return
    fresh = ~known[targets] & (targets != END_INDEX)  # keys that just took a spare slot
    rng = np.random.default_rng(seed)
    new = len(targets)  # the update goes on until these are accepted
    fw, ft = feedback_memory(model)  # all earlier feedback must stay accepted
    x, y, w, n = _update_batch(model, windows, targets, replay, rng)
    guards = _guards(model, torch.from_numpy(fw), torch.from_numpy(ft), windows, replay)
    if fresh.any():  # after the guards are taken: imprinting moves what they check
        # With the thread count of the steps below: switching it between calls rebuilds
        # torch's thread pool, which costs more than the update itself.
        with torch_threads(_threads(model)):
            imprint(model, windows[fresh], targets[fresh], known)
    dev = model.device_
    taken, accepted = _steps(model, (x.to(dev), y.to(dev)), w.to(dev), new, guards)
    model.last_update_ = {"steps": taken, "accepted": accepted, "taught": n, "new": new}


def _threads(model: KeyModel) -> int | None:
    return CPU_THREADS if model.device_.type == "cpu" else None


def _taught_examples(
    model: KeyModel, histories: Sequence[Sequence[int]], next_keys: Sequence[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Input rows and target indices of the examples; new keys take spare slots first.

    Only the taught keys join the vocabulary: a key in a history that the model does not know
    stays unknown context (it may be a log parser's "unknown template" marker). A key without a
    slot cannot be predicted: its example is dropped.
    """
    for key in [k for k in next_keys if k != keyids.END]:
        if key not in model.vocab_ and not model.vocab_.add(int(key)):
            logger.warning("no spare vocabulary slot for key %d: it stays unknown", key)
    windows = model.input_rows(histories)
    targets = np.array(
        [END_INDEX if k == keyids.END else int(model.vocab_.encode([k])[0]) for k in next_keys]
    )
    keep = targets != UNKNOWN_INDEX
    return windows[keep], targets[keep]


def _update_batch(
    model: KeyModel,
    windows: np.ndarray,
    targets: np.ndarray,
    replay: Sequence[Sequence[int]] | None,
    rng: np.random.Generator,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """Rows, targets and weights of every step: the new examples, earlier feedback taught again
    (it is confirmed normal behaviour, like the replay sessions, but rare in them), then replayed
    examples, and how many are taught (not replayed). The new ones are remembered for later
    updates."""
    c = model.config
    fw, ft = feedback_memory(model)
    if len(ft) > c.update_memory_size:
        pick = np.sort(rng.choice(len(ft), c.update_memory_size, replace=False))
        fw, ft = fw[pick], ft[pick]
    remember(model, windows, targets)
    windows, targets = np.concatenate([windows, fw]), np.concatenate([targets, ft])
    n = len(targets)
    x, y, w = torch.from_numpy(windows), torch.from_numpy(targets), torch.ones(n)
    if replay:
        rw, rt, p = replay_table(model, replay)
        size = c.update_replay_size
        if len(rt) > size:
            # Drawn in proportion to frequency, so each replayed example weighs the same.
            pick = rng.choice(len(rt), size, replace=False, p=p)
            rw, rt, p = rw[pick], rt[pick], np.full(size, 1.0 / size)
        if len(rt):  # all replayed examples together weigh as much as the taught ones
            x, y = torch.cat([x, rw]), torch.cat([y, rt])
            w = torch.cat([w, torch.from_numpy((p * n).astype(np.float32))])
    return x, y, w, n


def _guards(
    model: KeyModel,
    gx: torch.Tensor,
    gy: torch.Tensor,
    taught_windows: np.ndarray,
    replay: Sequence[Sequence[int]] | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """What the model accepts now and must still accept after the update (a new branch must not
    push an old successor out of the top g): the earlier feedback (``gx``, ``gy``) and
    the most frequent replay examples, outside the taught contexts. Returns rows, targets and rank
    limits, on the model's device."""
    guard_size = model.config.update_guard_size
    if replay and guard_size > 0:
        rw, rt, p = replay_table(model, replay)
        top = np.argsort(-p, kind="stable")[:guard_size]
        gx, gy = torch.cat([gx, rw[top]]), torch.cat([gy, rt[top]])
    if len(gy):  # in a taught example's own context the user's verdict comes first
        taught = {tuple(r) for r in taught_windows.tolist()}
        other = torch.tensor([tuple(r) not in taught for r in gx.tolist()], dtype=torch.bool)
        gx, gy = gx[other], gy[other]
    gx, gy = gx.to(model.device_), gy.to(model.device_)
    glimit = limits(model, gy)
    mask = torch.from_numpy(model.vocab_.candidate_mask()).to(model.device_)
    with torch.no_grad(), torch_threads(_threads(model)):
        model.module_.eval()
        keep_ok = accepted(model, judged(model, gx), gy, glimit, mask)
    return gx[keep_ok], gy[keep_ok], glimit[keep_ok]


def _steps(
    model: KeyModel,
    batch: Tensors,
    w: torch.Tensor,
    new: int,
    guards: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
) -> tuple[int, bool]:
    """The Adam steps of one update: at least ``update_steps``, then on until the new examples and
    the guards are accepted, at most ``update_max_steps``. Returns (steps taken, accepted)."""
    c = model.config
    x, y = batch
    gx, gy, glimit = guards
    mask = torch.from_numpy(model.vocab_.candidate_mask()).to(model.device_)
    limit = limits(model, y[:new])
    fused = model.device_.type in ("cpu", "cuda")  # one kernel for all parameters
    optimizer = torch.optim.Adam(model.module_.parameters(), lr=c.update_learning_rate, fused=fused)
    model.module_.train()
    taken, ok = 0, False
    lost = torch.zeros(len(gy), dtype=torch.bool, device=model.device_)
    most = max_steps(c.update_max_steps, new)
    with torch_threads(_threads(model)), _no_denormals():
        while True:
            # The guards are judged without gradients; only those a step pushed out are taught,
            # so a long feedback memory costs one forward pass per step, not a backward one.
            with torch.no_grad():
                if len(gy):
                    glogits = model.module_(gx)  # (G, V); an ensemble: (M, G, V)
                    gj = glogits if glogits.dim() == 2 else mixture(glogits)
                    kept = accepted(model, gj, gy, glimit, mask)
                    lost |= ~kept  # taught from now on
            rows = lost.nonzero().flatten()
            logits = model.module_(torch.cat([x, gx[rows]]))  # (B, V); an ensemble: (M, B, V)
            glogits = logits[..., len(y) :, :]
            logits = logits[..., : len(y), :]
            with torch.no_grad():
                judged_now = logits if logits.dim() == 2 else mixture(logits)
                ok = bool(accepted(model, judged_now[:new], y[:new], limit, mask).all())
                ok &= not len(gy) or bool(kept.all())
            if taken >= max(c.update_steps, 0) and (ok or taken >= most):
                break
            loss = (cross_entropy(logits, y) * w).sum()
            if len(rows):  # a pushed-out successor weighs as much as a taught example
                loss = loss + cross_entropy(glogits, gy[rows]).sum()
            loss = loss / (w.sum() + len(rows))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            taken += 1
    model.module_.eval()
    return taken, ok


def max_steps(per_example: int, new: int) -> int:
    """The most steps an update of ``new`` examples takes: ``per_example`` for one, one more
    ``per_example`` each time the batch doubles (many new contexts at once, e.g. a new operation's
    steps taught together, need more steps than one; the steps stop once all are accepted).

    >>> [max_steps(6, n) for n in (1, 2, 3, 4, 11, 66)]
    [6, 12, 12, 18, 24, 42]
    """
    return per_example * (1 + int(np.log2(max(new, 1))))


def imprint(model: KeyModel, windows: np.ndarray, targets: np.ndarray, known: np.ndarray) -> None:
    """Give keys that just took a spare slot an output row made from the taught contexts.

    A spare slot was trained never to be predicted, and gradient steps alone would have to move
    the whole network to lift it. Weight imprinting instead sets the key's output row to
    the (scaled) hidden state of its context, and its bias so that in that context it scores as
    high as the best known key; the following steps then adjust it.
    """
    members = getattr(model.module_, "members", None) or [model.module_]
    x = torch.from_numpy(windows).to(model.device_)
    old = torch.from_numpy(known).to(model.device_)
    for member in members:  # each network of an ensemble gets its own row
        head = member.head
        captured: list[torch.Tensor] = []
        hook = head.register_forward_hook(lambda _m, inp, _out, into=captured: into.append(inp[0]))
        try:
            with torch.no_grad(), _no_denormals():
                logits = member.eval()(x)  # (n, V)
        finally:
            hook.remove()
        hidden = captured[0]  # (n, H)
        with torch.no_grad():
            scale = head.weight[old].norm(dim=1).mean()
            for j in np.unique(targets):
                rows = torch.from_numpy(targets == j).to(model.device_)
                hc = hidden[rows].mean(dim=0)  # (H,)
                w = scale * hc / hc.norm().clamp_min(1e-6)
                top = logits[rows][:, old].max(dim=1).values  # (m,) best known key per context
                # What the rest of the network (the session-count part) adds to key j's logit.
                rest = logits[rows][:, j] - hidden[rows] @ head.weight[j] - head.bias[j]
                head.weight[j] = w
                head.bias[j] = (top - hidden[rows] @ w - rest).mean()


def feedback_memory(model: KeyModel) -> tuple[np.ndarray, np.ndarray]:
    """The distinct examples taught by earlier updates: input rows ``(m, h [+ counts])`` and
    targets ``(m,)`` as internal indices (they stay valid: keys learned later take new slots)."""
    memory = getattr(model, "feedback_", None)
    if memory is None or not len(memory["targets"]):
        width = model.config.window + model.count_columns
        return np.zeros((0, width), dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.asarray(memory["windows"], dtype=np.int64), np.asarray(memory["targets"])


def remember(model: KeyModel, windows: np.ndarray, targets: np.ndarray) -> None:
    fw, ft = feedback_memory(model)
    pairs = np.concatenate([fw, ft[:, None]], axis=1).tolist()
    seen = {tuple(p) for p in pairs}
    for row, t in zip(windows.tolist(), targets.tolist(), strict=True):
        if (*row, t) not in seen:
            seen.add((*row, t))
            pairs.append([*row, t])
    pairs = pairs[-FEEDBACK_MEMORY:]  # the most recent ones
    model.feedback_ = {
        "windows": [p[:-1] for p in pairs],
        "targets": [p[-1] for p in pairs],
    }


def limits(model: KeyModel, targets: torch.Tensor) -> torch.Tensor:
    """``(n,)`` the rank each target must reach: ``g_``, or ``end_g_`` for END."""
    limit = torch.full((len(targets),), model.g_, device=targets.device)
    if model.end_g_ is not None:
        limit[targets == END_INDEX] = model.end_g_
    return limit


def judged(model: KeyModel, windows: torch.Tensor) -> torch.Tensor:
    logits = model.module_(windows)
    return logits if logits.dim() == 2 else mixture(logits)


def accepted(
    model: KeyModel,
    logits: torch.Tensor,
    targets: torch.Tensor,
    limit: torch.Tensor,
    mask: torch.Tensor,
) -> torch.Tensor:
    """``(n,)`` bool: the fitted rule accepts each target key under these logits.

    The rank is counted as :func:`workbench.keys.scores.rank_of_actual` counts it (ties in the
    key's favour), on logits: a candidate's probability is positive unless its softmax underflows.
    """
    lg = logits.masked_fill(~mask, float("-inf"))  # (n, V)
    actual = lg.gather(1, targets[:, None])  # (n, 1)
    rank = 1 + (lg > actual).sum(dim=1)  # (n,)
    prob = torch.softmax(lg, dim=1).gather(1, targets[:, None])[:, 0]  # (n,)
    return (rank <= limit) & (prob >= model.min_probability_)


def replay_table(
    model: KeyModel, replay: Sequence[Sequence[int]]
) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """Distinct examples of the replay sessions, encoded, with their sampling probabilities.

    Cached per replay object and vocabulary: adding a key to a spare slot moves no index, but
    the replay sessions that hold that key encode differently, so the table is built again.
    """
    signature = (model.vocab_.size, tuple(model.vocab_.keys))
    cache = getattr(model, "_replay_cache", None)
    if cache is None:
        cache = model._replay_cache = _ReplayCache()
    if cache.replay is not replay or cache.signature != signature:
        rw, rt, rc = distinct_examples(
            check_sessions(replay),
            model.vocab_,
            model.config.window,
            count_columns=model.count_columns,
        )
        keep = rt != UNKNOWN_INDEX  # targets the model cannot predict teach nothing
        rw, rt, rc = rw[keep], rt[keep], rc[keep]
        p = rc / rc.sum() if len(rc) else rc
        cache.replay, cache.signature = replay, signature
        cache.table = (torch.from_numpy(rw), torch.from_numpy(rt), p)
        cache.builds += 1
    return cache.table


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
    """The encoded replay examples of :func:`partial_fit` for one replay object and
    vocabulary. Copies of a model share it (its tables are never changed in place; the vocabulary
    signature tells whether a table fits the model that asks)."""

    def __init__(self) -> None:
        self.replay: object = None
        self.signature: tuple = ()
        self.table: tuple[torch.Tensor, torch.Tensor, np.ndarray] = ()  # type: ignore[assignment]
        self.builds = 0  # how many times a table was built

    def __deepcopy__(self, memo: dict) -> _ReplayCache:
        return self
