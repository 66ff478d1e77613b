"""How an anomaly reads: its score against its rule, time, session, status, the row's HTML line,
the raw lines around it and the model's top-g candidates. Pure functions of a table row (and of the
scored log for the context), so every text is tested without a widget."""

from __future__ import annotations

import html
import math
import re
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "WIDTHS",
    "candidates_html",
    "candidates_text",
    "context_html",
    "coverage_text",
    "detail_html",
    "readable_sentence",
    "row_classes",
    "row_html",
    "score_text",
    "session_text",
    "severity",
    "status_text",
    "when_text",
]

BADGES = {
    "key": "key",
    "unknown key": "unknown",
    "session end": "session",
    "parameter": "parameter",
}
#: what each rule means, as a badge's tooltip
RULE_TIPS = {
    "top-g": "the key is not among the g keys the model found most likely here",
    "probability floor": "the key is among the top g, but less likely than the validated floor",
    "session end": "the session stopped where the model did not expect it to end",
    "unknown key": "a message never seen in training",
    "parameter threshold": "the parameter values are off: MSE above the confidence threshold",
}
# first line of a row: fixed columns that the sort buttons sit above; the raw line goes below
WIDTHS = {"time": 120, "session": 150, "rule": 160, "severity": 190, "status": 170}
CONTEXT_LINES = 4  # raw lines shown before and after the selected one, in its session


def _num(value: Any) -> float | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def severity(row: pd.Series) -> float:
    """One number to sort by: rank / g for keys, MSE / threshold for parameters, inf otherwise.

    >>> severity(pd.Series({"kind": "key", "rank": 18, "g": 9}))
    2.0
    >>> severity(pd.Series({"kind": "unknown key", "rank": None, "g": 9}))
    inf
    """
    if row.get("kind") == "parameter":
        mse, thr = _num(row.get("mse")), _num(row.get("threshold"))
        return mse / thr if mse is not None and thr else math.inf
    rank, g = _num(row.get("rank")), _num(row.get("g"))
    return rank / g if rank is not None and g else math.inf


def coverage_text(report: Any) -> str:
    """What a detection checked and found, with its warnings: never "no anomalies" when nothing
    was checked.

    >>> from types import SimpleNamespace as NS
    >>> cov = NS(warnings=["only 3 of 200 lines fit the format linux (2%): wrong format?"])
    >>> coverage_text(NS(verdict="nothing was checked (0 of 200 lines parsed)", coverage=cov))
    'nothing was checked (0 of 200 lines parsed) · only 3 of 200 lines fit the format linux (2%): wrong format?'
    """
    verdict = str(getattr(report, "verdict", "") or f"{len(report.anomalies)} anomalies")
    cov = getattr(report, "coverage", None)
    warnings = list(getattr(cov, "warnings", []) or [])
    return " · ".join([verdict, *warnings])


def score_text(row: pd.Series) -> str:
    """The raw score against its rule: 'rank 12 > g = 9' or 'MSE 5.2 > 1.8 (99 % CI)'; a row that
    an update made normal has no comparison any more.

    >>> score_text(pd.Series({"kind": "parameter", "mse": 5.2, "threshold": 1.8, "level": 0.99}))
    'MSE 5.2 > 1.8 (99 % CI)'
    >>> score_text(pd.Series({"kind": "parameter", "mse": 5.2, "verdict": "normal"}))
    'now within its rule'
    """
    kind = row.get("kind")
    if row.get("verdict", "anomalous") != "anomalous":
        return "now within its rule"
    if kind == "parameter":
        mse, thr, level = _num(row.get("mse")), _num(row.get("threshold")), _num(row.get("level"))
        text = f"MSE {mse:.3g}" if mse is not None else "MSE –"
        if thr is not None:
            text += f" > {thr:.3g}"
        if level is not None:
            text += f" ({round(level * 100, 6):g} % CI)"
        return text
    if kind == "unknown key":
        return "key never seen in training"
    rank, g = _num(row.get("rank")), _num(row.get("g"))
    if rank is None:
        return "not predicted" if kind != "session end" else "end not expected"
    if g is None:
        return f"rank {rank:.0f}"
    if row.get("rule") == "probability floor":
        p = _num(row.get("probability"))
        below = "below the floor" if p is None else f"p {p:.2g} below the floor"
        return f"rank {rank:.0f} ≤ g, {below}"
    return f"rank {rank:.0f}, not in the top g = {g:.0f}"


def when_text(ts: Any) -> str:
    """A readable time: 'HH:MM:SS.mmm' (the date is in the tooltip); '' when there is none.

    >>> when_text(pd.Timestamp("2017-05-16 00:00:05.280"))
    '00:00:05.280'
    >>> when_text(None), when_text(float("nan"))
    ('', '')
    """
    if ts is None or (not isinstance(ts, str) and pd.isna(ts)):
        return ""
    try:
        t = pd.Timestamp(ts)
    except (TypeError, ValueError):
        return str(ts)
    return t.strftime("%H:%M:%S.%f")[:-3]


def session_text(session: Any) -> str:
    """A session name, or 'no session' (never 'nan' or 'None').

    >>> session_text(None), session_text(float("nan")), session_text("blk_1")
    ('no session', 'no session', 'blk_1')
    """
    if session is None or (not isinstance(session, str) and pd.isna(session)):
        return "no session"
    text = str(session)
    return text if text not in ("", "nan", "None") else "no session"


def readable_sentence(sentence: Any) -> str:
    """A diagnosis sentence without placeholders for missing statistics ('?', 'nan', 'None').

    >>> readable_sentence("took 47 s, usually ? (p95 ?); value nan")
    'took 47 s; value unknown'
    """
    text = "" if sentence is None else str(sentence)
    text = re.sub(r",? usually \? \(p95 \?\)", "", text)
    return re.sub(r"(?<![\w?])(\?|nan|None)(?![\w?])", "unknown", text)


def candidates_text(candidates: Any, limit: int = 3) -> tuple[str, str]:
    """(short, full) texts of the top-g candidates ``[(key, template, probability), ...]``."""
    if candidates is None or (isinstance(candidates, float) and math.isnan(candidates)):
        return "", ""
    items = list(candidates)
    if not items:
        return "", ""
    short = ", ".join(f"k{k} {p:.0%}" for k, _, p in items[:limit])
    if len(items) > limit:
        short += f" +{len(items) - limit}"
    full = "\n".join(f"k{k} {p:.1%}  {t}" for k, t, p in items)
    return short, full


def status_text(row: pd.Series, new: bool = False) -> str:
    """The row's review status and, after an update, its verdict: 'false positive · normal now'.

    >>> status_text(pd.Series({"status": "open", "verdict": "normal"}))
    'normal now'
    >>> status_text(pd.Series({"status": "open", "verdict": "anomalous"}), new=True)
    'open · new'
    """
    status = str(row.get("status", "open"))
    if row.get("verdict", "anomalous") == "anomalous":
        text = status
    else:
        text = "normal now" if status == "open" else f"{status} · normal now"
    return text + " · new" if new else text


def _cell(text: str, width: int | None, cls: str = "", title: str | None = None) -> str:
    t = html.escape(title if title is not None else text, quote=True)
    size = f"width:{width}px" if width else "flex:1 1 auto;min-width:0"
    return f'<span class="dl-cell {cls}" style="{size}" title="{t}">{html.escape(text)}</span>'


def row_html(row: pd.Series, new: bool = False) -> str:
    """The row's first line: time, session, kind badge, score, status, expected keys."""
    ts = row.get("timestamp")
    when = when_text(ts)
    full_when = "" if not when else str(pd.Timestamp(ts))
    short, full = candidates_text(row.get("candidates"))
    kind = str(row.get("kind"))
    rule = str(row.get("rule") or kind)
    w = WIDTHS
    tip = html.escape(RULE_TIPS.get(rule, kind), quote=True)
    return (
        '<div class="dl-line">'
        + _cell(when or f"line {row.get('line')}", w["time"], title=full_when or None)
        + _cell(session_text(row.get("session")), w["session"])
        + f'<span class="dl-cell" style="width:{w["rule"]}px">'
        f'<span class="dl-badge dl-badge-{BADGES.get(kind, "key")} dl-rule" title="{tip}">'
        f"{html.escape(rule)}</span></span>"
        + _cell(score_text(row), w["severity"])
        + _cell(status_text(row, new), w["status"], "dl-state")
        + _cell(f"expected: {short}" if short else "", None, "dl-cands", title=full)
        + "</div>"
    )


def row_classes(row: pd.Series, *, selected: bool = False, new: bool = False) -> tuple[str, ...]:
    """CSS classes of a row: its anomaly id, and selected / new / cleared / confirmed / fp marks.

    >>> row_classes(pd.Series({"id": 3, "status": "false positive", "verdict": "normal"}))
    ('dl-row', 'dl-anomaly-3', 'dl-row-cleared', 'dl-row-fp')
    """
    status, verdict = str(row.get("status", "open")), row.get("verdict", "anomalous")
    marks = {
        "dl-row-selected": selected,
        "dl-row-new": new,
        "dl-row-cleared": verdict != "anomalous",
        "dl-row-confirmed": status == "confirmed",
        "dl-row-fp": status == "false positive",
    }
    return ("dl-row", f"dl-anomaly-{int(row['id'])}", *(c for c, on in marks.items() if on))


def detail_html(row: pd.Series, message: str, sentence: str, entries: pd.DataFrame) -> str:
    """The card below the table for a selected row: where and what, the diagnosis ``sentence``,
    the top-g candidates and the raw lines around it."""
    return (
        f'<div class="dl-card dl-context"><b>Anomaly {row.get("id")}</b> · line {row.get("line")}'
        f" · {html.escape(when_text(row.get('timestamp')) or 'no time')}"
        f" · session {html.escape(session_text(row.get('session')))}"
        f" · {html.escape(score_text(row))}"
        f"<br><b>{html.escape(message)}</b>"
        f"<br><b>Diagnosis:</b> {html.escape(readable_sentence(sentence)) or '–'}"
        f"{candidates_html(row)}{context_html(entries, row)}</div>"
    )


def context_html(entries: pd.DataFrame, row: pd.Series) -> str:
    """The raw lines around ``row``'s line (a table of the scored log ``entries``): in its session,
    else in the log."""
    e = entries
    if not len(e) or "line" not in e:
        return ""
    line = int(row.get("line"))
    sess = row.get("session")
    has_session = session_text(sess) != "no session" and "session" in e
    part = e[e["session"] == sess] if has_session else e
    lines = part["line"].to_numpy()
    at = int(np.searchsorted(lines, line))
    lo, hi = max(0, at - CONTEXT_LINES), min(len(part), at + CONTEXT_LINES + 1)
    body = []
    for _, r in part.iloc[lo:hi].iterrows():
        mark = ' class="dl-context-hit"' if int(r["line"]) == line else ""
        bad = bool(r.get("anomalous", False))
        text = str(r.get("content") or r.get("raw", ""))
        raw = html.escape(str(r.get("raw", "")), quote=True)
        body.append(
            f"<tr{mark}><td>{int(r['line'])}</td><td>{html.escape(when_text(r.get('timestamp')))}"
            f"</td><td>k{html.escape(str(r.get('key', '')))}</td><td>{'⚠' if bad else ''}</td>"
            f'<td class="dl-raw dl-context-msg" title="{raw}">{html.escape(text[:200])}</td></tr>'
        )
    where = f"in session {html.escape(session_text(sess))}" if has_session else "in the log"
    return (
        f"<br><b>Context</b> ({where}):"
        f'<table class="dl-table dl-context-table"><tr><th>line</th><th>time</th><th>key</th>'
        f"<th></th><th>message (hover: raw line)</th></tr>{''.join(body)}</table>"
    )


def candidates_html(row: pd.Series) -> str:
    """The model's top-g candidates of a key anomaly as a table, the key the log had beside."""
    cands = row.get("candidates")
    if cands is None or (isinstance(cands, float) and math.isnan(cands)) or not len(cands):
        return ""
    g = _num(row.get("g"))
    body = "".join(
        f"<tr><td>k{html.escape(str(k))}</td><td>{p:.1%}</td><td>{html.escape(str(t))}</td></tr>"
        for k, t, p in cands
    )
    actual = f"k{row.get('key')}"
    rank = _num(row.get("rank"))
    got = f"; the log had {html.escape(actual)}" + (
        f" at rank {rank:.0f}" if rank is not None else ""
    )
    return (
        f"<br><b>The model's top {len(cands) if g is None else int(g)} candidates</b>"
        f" (a key among them is normal{got}):"
        f'<table class="dl-table"><tr><th>key</th><th>p</th><th>template</th></tr>{body}</table>'
    )
