"""Scoring a parsed log with fitted models: the key model first, then the parameter models.

:func:`score` is the one scoring of the package: :meth:`Workbench.detect
<workbench.workbench.Workbench.detect>` calls it on the whole log, chunked and distributed detection
(:mod:`workbench.detect.streaming`, :mod:`workbench.detect.distributed`) on whole sessions, and
the command line's ``--follow`` on the sessions that closed. It reads a :class:`FittedModels`, the
parser and models detached from the workbench that fitted them.

* The key model scores sessions (instances, blocks, nodes, windows) in batches of distinct
  windows; entries that belong to no session are judged by the unknown-key rule only.
* An entry's parameter vector is checked only when its key was normal (the paper's order; see
  docs/METHOD.md). A session that ends where normal sessions never end is reported on its last
  entry with kind ``'session end'``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from workbench import keyids
from workbench.detect.coverage import Coverage
from workbench.detect.report import (
    ANOMALY_COLUMNS,
    DetectionReport,
    anomaly_row,
    candidates,
    set_unscored_params,
)
from workbench.keys.model import KeyModel
from workbench.keys.topg import detect
from workbench.logs.parser import LogParser
from workbench.logs.sessions import session_groups
from workbench.params.levels import level_name
from workbench.params.model import ParamModel

__all__ = [
    "FittedModels",
    "ParamScoreCache",
    "param_scores",
    "score",
    "session_rows",
    "trained_keys",
]

Candidates = list[tuple[int, str, float]]


@dataclass(frozen=True)
class FittedModels:
    """What detection reads of a fitted workbench: its parser, key model and parameter models,
    the confidence level of the parameter verdicts, and the keys that only ever ended training
    sessions (``end_keys``, for detection that must close sessions as it reads; empty when not
    computed). Built by :meth:`Workbench.scorer <workbench.workbench.Workbench.scorer>`; it holds
    no journal, no lock and no run folder, and pickles through the models' own states."""

    parser: LogParser
    key_model: KeyModel
    param_model: ParamModel | None
    level: float = 0.99
    params_elapsed: bool = False  # the parameter vectors start with an elapsed time
    end_keys: frozenset[int] = field(default_factory=frozenset)

    def __getstate__(self) -> dict[str, Any]:
        """Travels by the models' own states (a cluster, another process), never by pickles of
        their insides."""
        pm = self.param_model
        return {
            "parser": self.parser.to_state(),
            "key": self.key_model.to_state(),
            "param": None if pm is None else pm.to_state(),
            "level": self.level,
            "params_elapsed": self.params_elapsed,
            "end_keys": sorted(self.end_keys),
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        p = state["param"]
        values = {
            "parser": LogParser.from_state(state["parser"]),
            "key_model": KeyModel.from_state(state["key"]),
            "param_model": None if p is None else ParamModel.from_state(p, device="cpu"),
            "level": state["level"],
            "params_elapsed": state["params_elapsed"],
            "end_keys": frozenset(state["end_keys"]),
        }
        for name, value in values.items():  # a frozen dataclass is built once, here
            object.__setattr__(self, name, value)

    def key_only(self) -> FittedModels:
        """The same without parameter models (the session-wise pass of chunked detection)."""
        return replace(self, param_model=None)


@dataclass
class _KeyVerdicts:
    """The key model's verdicts per entry of a frame (positional arrays) and per session."""

    rank: np.ndarray
    prob: np.ndarray
    bad: np.ndarray
    reason: np.ndarray
    position: np.ndarray
    groups: list[np.ndarray]
    cand: dict[int, Candidates] = field(default_factory=dict)
    end_rows: dict[int, tuple[int, float, Candidates]] = field(default_factory=dict)


def session_rows(parser: LogParser, entries: pd.DataFrame) -> tuple[list[str], list[np.ndarray]]:
    """Session names and, per session, the positional rows of its parsed entries in order."""
    return session_groups(entries, parser.session_rule)


def score(
    models: FittedModels,
    entries: pd.DataFrame,
    *,
    g: int | None = None,
    status_of: dict[int, str] | None = None,
    params: pd.DataFrame | None = None,
) -> DetectionReport:
    """Score a parsed frame: the key model on its sessions, then the parameter models where the
    key was normal. ``g`` defaults to the key model's; ``status_of`` gives the review status of
    anomaly ids already reviewed (default: every anomaly is ``'open'``). ``params`` are the
    parameter models' scores of every entry (:func:`param_scores`, computed before): given, the
    parameter models are not run again and the result is the same."""
    key_model = models.key_model
    g = int(key_model.g_ if g is None else g)
    status_of = {} if status_of is None else status_of
    kv = _key_verdicts(models, entries, g)
    out = entries.copy()
    out["position"] = kv.position
    out["key_rank"] = kv.rank
    out["key_probability"] = kv.prob
    out["key_anomalous"] = kv.bad
    out["key_reason"] = kv.reason
    _param_columns(out, entries, models.param_model, kv.bad, models.level, params)
    out["anomalous"] = out["key_anomalous"] | out["param_anomalous"]
    anomalies = _anomaly_table(out, kv, g, models.level, status_of)
    coverage = _coverage(models, out, kv.groups)
    return DetectionReport(out, anomalies, g, models.level, coverage=coverage)


def _key_verdicts(models: FittedModels, entries: pd.DataFrame, g: int) -> _KeyVerdicts:
    n = len(entries)
    keys = entries["key"].to_numpy()
    names, groups = session_rows(models.parser, entries)
    kv = _KeyVerdicts(
        rank=np.full(n, np.nan),
        prob=np.full(n, np.nan),
        bad=np.zeros(n, dtype=bool),
        reason=np.full(n, "", dtype=object),
        position=np.full(n, -1, dtype=np.int64),
        groups=groups,
    )
    if groups:
        _score_sessions(models, entries, names, kv, g)
    # entries outside every session: only the unknown-key rule applies to their key
    loose = entries["parsed"].to_numpy(dtype=bool) & (kv.position < 0) & (keys == keyids.UNKNOWN)
    kv.bad |= loose
    kv.reason[loose] = "unknown key"
    return kv


def _score_sessions(
    models: FittedModels, entries: pd.DataFrame, names: list[str], kv: _KeyVerdicts, g: int
) -> None:
    """The key model's pass over the sessions of ``kv.groups``, filling ``kv`` in place."""
    key_model, parser = models.key_model, models.parser
    keys = entries["key"].to_numpy()
    sessions = [tuple(keys[grp].tolist()) for grp in kv.groups]
    scores = key_model.score(sessions, top_k=max(g, 10))
    end_g = key_model.end_g_ if g == key_model.g_ else None
    verdict = detect(scores, g, float(key_model.min_probability_), end_g=end_g).entries
    bad = verdict["anomalous"].to_numpy(dtype=bool)
    why = verdict["reason"].astype(str).to_numpy()
    if parser.session_rule is not None and parser.session_rule.kind == "sliding":
        _sliding_sessions(parser, entries, names, kv, g, scores, bad, why)
        return
    # every entry is in one session: the scores' entries, less each session's END, are the
    # groups' rows end to end
    rows = np.concatenate(kv.groups)
    inner = ~scores.is_end
    kv.rank[rows] = scores.rank[inner]
    kv.prob[rows] = scores.probability[inner]
    kv.position[rows] = scores.position[inner]
    flagged = np.flatnonzero(inner & bad)  # entries of the scores
    at = rows[np.flatnonzero(bad[inner])]  # their rows, in the same order
    kv.bad[at] = True
    kv.reason[at] = why[flagged]
    memo: dict[int, str] = {}
    for row, j in zip(at.tolist(), flagged.tolist(), strict=True):
        kv.cand[row] = candidates(parser, scores.candidates(j), g, memo)
    ends = np.flatnonzero(scores.is_end & bad)
    for j in ends.tolist():
        last = int(kv.groups[int(scores.session[j])][-1])
        if not kv.bad[last]:
            kv.end_rows[last] = (
                int(scores.rank[j]),
                float(scores.probability[j]),
                candidates(parser, scores.candidates(j), g, memo),
            )


def _sliding_sessions(
    parser: LogParser,
    entries: pd.DataFrame,
    names: list[str],
    kv: _KeyVerdicts,
    g: int,
    scores: Any,
    bad: np.ndarray,
    why: np.ndarray,
) -> None:
    """:func:`_score_sessions` for overlapping windows: an entry is anomalous when any window
    covering it says so; its rank and position are those of its own window (its 'session'), or
    of the window that flagged it."""
    starts = np.concatenate([[0], np.cumsum(scores.session_length + 1)[:-1]])
    own = entries["session"].to_numpy(dtype=object)
    for s, grp in enumerate(kv.groups):
        base = starts[s]
        m = len(grp)
        sl = slice(base, base + m)
        take = (own[grp] == names[s]) | (bad[sl] & ~kv.bad[grp])
        take |= kv.position[grp] < 0
        kv.rank[grp[take]] = scores.rank[sl][take]
        kv.prob[grp[take]] = scores.probability[sl][take]
        kv.position[grp[take]] = np.arange(m)[take]
        for j in np.flatnonzero(bad[sl]):
            row = int(grp[j])
            if kv.bad[row]:
                continue
            kv.reason[row] = why[base + j]
            kv.cand[row] = candidates(parser, scores.candidates(base + j), g)
        kv.bad[grp] |= bad[sl]


def _param_columns(
    out: pd.DataFrame,
    entries: pd.DataFrame,
    param_model: ParamModel | None,
    key_bad: np.ndarray,
    level: float,
    params: pd.DataFrame | None = None,
) -> None:
    """The parameter models' columns of ``out``, only where the key was normal (in place); from
    ``params`` (every entry's scores) when given."""
    if param_model is None:
        set_unscored_params(out)
        return
    lv = level_name(level)
    checked = entries["parsed"].to_numpy(dtype=bool) & ~key_bad
    ps = param_model.score(entries, only=checked) if params is None else params
    out["mse"] = ps["mse"].to_numpy()
    status = ps["status"].to_numpy()
    if params is not None:  # what ``only=checked`` does: scored rows not checked are not decided
        status = np.where(~checked & (status == "scored"), "not checked", status).astype(object)
    out["param_status"] = status
    thr_col = f"threshold_{lv}"
    out["threshold"] = ps[thr_col].to_numpy() if thr_col in ps else np.nan
    flag = ps.get(f"anomalous_{lv}")
    out["param_anomalous"] = (
        flag.fillna(False).to_numpy(dtype=bool) & (checked if params is not None else True)
        if flag is not None
        else np.zeros(len(entries), bool)
    )
    out["dimension"] = ps["dimension"].to_numpy()
    out["observed"] = ps["observed"].to_numpy()
    out["predicted"] = ps["predicted"].to_numpy()


def _anomaly_table(
    out: pd.DataFrame, kv: _KeyVerdicts, g: int, level: float, status_of: dict[int, str]
) -> pd.DataFrame:
    """The review table of ``out``, in line order; a session end marks its row anomalous."""
    rows = []
    flagged = np.flatnonzero(out["anomalous"].to_numpy())
    records = out.iloc[flagged].to_dict("records")  # one frame slice, not a Series per row
    for r, e in zip(flagged.tolist(), records, strict=True):
        kind = "key" if kv.bad[r] else "parameter"
        if kind == "key" and kv.reason[r] == "unknown key":
            kind = "unknown key"
        rows.append(anomaly_row(e, kind, g, level, kv.cand.get(r, []), status_of))
    ends = list(kv.end_rows)
    records = out.iloc[ends].to_dict("records") if ends else []
    for r, e in zip(ends, records, strict=True):
        rk, pr, cands = kv.end_rows[r]
        row = anomaly_row(e, "session end", g, level, cands, status_of)
        row.update(rank=rk, probability=pr, id=-int(e["line"]))
        row["status"] = status_of.get(row["id"], "open")
        rows.append(row)
        out.iat[r, out.columns.get_loc("anomalous")] = True
    anomalies = pd.DataFrame(rows, columns=ANOMALY_COLUMNS)
    return anomalies.sort_values(["line", "id"], kind="stable").reset_index(drop=True)


def _coverage(models: FittedModels, out: pd.DataFrame, groups: list[np.ndarray]) -> Coverage:
    parsed = out["parsed"].to_numpy(dtype=bool)
    in_session = out["position"].to_numpy() >= 0
    param = (out["param_status"] == "scored").to_numpy(dtype=bool)
    reasons = pd.Series(out["error"].to_numpy()[~parsed], dtype=object).astype(str)
    rule = models.parser.effective_session_rule
    return Coverage(
        lines=len(out),
        parsed=int(parsed.sum()),
        unparsed_reasons={str(k): int(v) for k, v in reasons.value_counts().items()},
        sessions=len(groups),
        key_entries=int((parsed & in_session).sum()),
        param_entries=int(param.sum()),
        loose_entries=int((parsed & ~in_session).sum()),
        unknown_rule_entries=int((parsed & ~in_session & ~param).sum()),
        unknown_keys=int((parsed & (out["key"].to_numpy() == keyids.UNKNOWN)).sum()),
        timestamps=int((parsed & out["timestamp"].notna().to_numpy()).sum()),
        format=models.parser.format.name,
        session_rule=None if rule is None else str(rule),
        rule_needs_timestamps=bool(rule is not None and rule.needs_timestamps),
        params_need_timestamps=bool(models.params_elapsed and trained_keys(models.param_model)),
        problems=[
            str(out.attrs[k]) for k in ("timestamp_problem", "session_problem") if k in out.attrs
        ],
    )


def param_scores(
    param_model: ParamModel,
    entries: pd.DataFrame,
    *,
    keys: set[int] | None = None,
    base: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The parameter models' scores of every entry of ``entries`` (none left out), for
    :func:`score`'s ``params``. With ``keys`` and ``base`` (the scores of the same frame by a model
    that differs from ``param_model`` only in the models of ``keys``), only the entries of those
    keys are scored again; the others are taken from ``base``."""
    if keys is None or base is None:
        return param_model.score(entries)
    part = param_model.score(entries, keys=keys)
    idx = np.flatnonzero(np.isin(entries["key"].to_numpy(), list(keys)))
    out = base.copy()
    for col in out.columns:
        values = out[col].array.copy()
        values[idx] = part[col].array[idx]
        out[col] = values
    return out


class ParamScoreCache:
    """The parameter scores of the last log scored again after feedback, to reuse: unchanged
    when the parameter model is the same, its taught keys' entries scored again when the model
    differs from that one only there (an update teaches one key's model; the others' weights do
    not move), all of them otherwise."""

    def __init__(self) -> None:
        self._last: tuple[Any, ...] | None = None

    def scores(
        self,
        param_model: ParamModel | None,
        entries: pd.DataFrame,
        raw: pd.DataFrame,
        taught: tuple[ParamModel | None, set[int]] | None = None,
    ) -> pd.DataFrame | None:
        """Every entry's parameter scores of ``entries`` (the log is known by its ``raw`` lines);
        ``taught``: the model an update started from and the keys whose models it changed."""
        if param_model is None:
            return None
        keys, lines = entries["key"].to_numpy(), raw["raw"]
        ps, last = None, self._last
        if (
            last is not None
            and (last[0] is lines or last[0].equals(lines))
            and np.array_equal(last[1], keys)
        ):
            if last[2] is param_model:
                ps = last[3]
            elif taught is not None and last[2] is taught[0]:
                ps = param_scores(param_model, entries, keys=taught[1], base=last[3])
        if ps is None:
            ps = param_scores(param_model, entries)
        self._last = (lines, keys.copy(), param_model, ps)
        return ps


def trained_keys(param_model: ParamModel | None) -> list[int]:
    """Keys that have a trained parameter model."""
    if param_model is None:
        return []
    return [k for k, v in param_model.keys_.items() if v.get("status") == "trained"]
