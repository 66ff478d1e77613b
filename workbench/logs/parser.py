"""Log parsing: raw lines -> one DataFrame row per entry with its log key and parameter values.

DeepLog turns every log entry into a *log key* (the constant part of the message, its print statement)
and a *parameter value vector* (the variable numbers, preceded by the elapsed time). The template miner is
``drain3``; this module wraps it with line formats, masking, a refinement of Drain's clusters
(:mod:`workbench.logs.template_refine`: keys split on words that name message kinds, merged across
multi-token variables), a stable key vocabulary, an explicit unknown key in inference mode, and
careful handling of lines that do not fit.

The work is split so that a large log can be processed per partition: :meth:`LogParser.fit` mines
templates (on a sample, say), :meth:`LogParser.transform` only matches and never changes the parser, and
:func:`workbench.logs.sessions.add_elapsed_times` runs once over the concatenated result.

Row schema (one row per input line, in input order)

==============  ===========================================================================
``line``        1-based line number in the input
``raw``         the line as read (decoded, newline stripped)
``timestamp``   parsed timestamp, timezone-naive (NaT when the format has none or it fails)
``session``     session id (None when the line belongs to none)
``key``         log key id: 1..n for known templates, 0 (:data:`~workbench.keyids.UNKNOWN`) for a template never
                seen in training (inference mode), -1 (:data:`~workbench.keyids.UNPARSED`) for unparsed lines
``template``    the key's template text ('' for unparsed lines)
``params``      tuple of the numeric parameter values found at the template's variable positions
``dt_session``  seconds since the previous entry of the same session (NaN for the first)
``dt_global``   seconds since the previous entry of the whole log (NaN for the first)
``label``       the per-line label when the format carries one (BGL: '-' = normal), else None
``parsed``      False when the line did not fit the format (or was empty, binary or too long)
``error``       why it was not parsed, or a note such as invalid UTF-8 that was replaced
``content``     the message part the template was mined from
==============  ===========================================================================

>>> p = LogParser("<Level> <Content>")
>>> df = p.parse(["INFO took 3 s", "INFO took 5 s", "garbage"])
>>> df[["line", "key", "template", "params", "parsed"]].to_dict("list")["params"]
[(3.0,), (5.0,), ()]
>>> int(df["parsed"].sum()), p.summary(df)["unparsed"]
(2, 1)
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from drain3.drain import Drain

from workbench import keyids
from workbench.logs import parser_state
from workbench.logs.formats import LogFormat, field_columns, get_format
from workbench.logs.masks import Masker
from workbench.logs.reading import MAX_LINE_BYTES, read_texts
from workbench.logs.summary import ParseSummary, summarize
from workbench.logs.template_keys import TemplateKeys, row_params
from workbench.logs.timestamps import read_timestamps

__all__ = ["LogParser"]

logger = logging.getLogger(__name__)

_PARAM_STR = "<*>"
_COLUMNS = ["line", "raw", "timestamp", "session", "key", "template", "params"]
_COLUMNS += ["dt_session", "dt_global", "label", "parsed", "error", "content"]


@dataclass
class _Rows:
    """What reading and matching gave, one item per input line, before the keys are refined."""

    raw: list[str] = field(default_factory=list)
    content: list[str] = field(default_factory=list)
    cluster: list[int] = field(default_factory=list)  # Drain's cluster, or keyids.UNPARSED
    error: list[str | None] = field(default_factory=list)
    fields: list[dict[str, str] | None] = field(default_factory=list)
    masked: list[str | None] = field(default_factory=list)

    def unparsed(self, text: str, error: str | None) -> None:
        for column, value in zip(
            self.columns, (text, "", keyids.UNPARSED, error, None, None), strict=True
        ):
            column.append(value)

    @property
    def columns(self) -> tuple[list[Any], ...]:
        return self.raw, self.content, self.cluster, self.error, self.fields, self.masked


class LogParser(TemplateKeys):
    """Template mining and matching over one line format, with a persistent key vocabulary.

    Parameters
    ----------
    fmt
        A built-in format name (``"hdfs"``, ``"openstack"``, ``"bgl"``, ...), a loghub-style header
        containing ``<Content>``, a regular expression with ``(?P<Content>...)``, or a
        :class:`~workbench.logs.formats.LogFormat`.
    masks
        Override the format's masking rules (a sequence of :class:`~workbench.logs.masks.Mask`).
    sim_th, depth
        Override the format's Drain similarity threshold and tree depth.
    max_line_bytes
        Lines longer than this are kept as unparsed rows.
    max_word_values
        A wildcard position holding at most this many distinct plain words is split into one key per
        word (see :meth:`_refine`), unless those words also fill a wildcard of another template;
        0 keeps Drain's clusters as they are.
    merge
        Merge the keys of templates that share their constant skeleton (multi-word variables that
        Drain splits by token count; see :mod:`workbench.logs.template_refine`).
    session
        The session rule (``regex:PATTERN``, ``field:NAME``, ``window:SECONDS``,
        ``sliding:SECONDS,STEP`` or a :class:`~workbench.logs.sessions.SessionRule`); None uses the
        format's own rule. Kept as :attr:`session_rule` and applied by every later :meth:`parse`
        and :meth:`transform`, so a log scored later is grouped exactly as the training log was.
    year
        The year given to timestamps that carry none (syslog's ``Jan 14 15:16:01``); None means
        the current year.

    Key ids (1, 2, ...) are given in order of first appearance and never change once given, so
    they persist with :meth:`to_state`. After :meth:`fit`, :meth:`transform` maps unseen templates
    to :data:`~workbench.keyids.UNKNOWN`.
    """

    #: Version of the plain-JSON parser state written by :meth:`to_state`.
    STATE_VERSION = parser_state.STATE_VERSION

    def __init__(
        self,
        fmt: str | LogFormat = "openstack",
        *,
        masks: Iterable[Any] | None = None,
        sim_th: float | None = None,
        depth: int | None = None,
        max_line_bytes: int = MAX_LINE_BYTES,
        max_word_values: int = 8,
        merge: bool = True,
        session: Any = None,
        year: int | None = None,
    ) -> None:
        from workbench.logs.sessions import SessionRule

        base = get_format(fmt)
        changes: dict[str, Any] = {}
        if masks is not None:
            changes["masks"] = tuple(masks)
        if sim_th is not None:
            changes["sim_th"] = sim_th
        if depth is not None:
            changes["depth"] = depth
        self.format = base.with_options(**changes) if changes else base
        if max_line_bytes < 16:
            raise ValueError(f"max_line_bytes must be at least 16, got {max_line_bytes}")
        self.max_line_bytes = max_line_bytes
        self.named_numbers = True  # 'ms=943' is a parameter (False in a state saved before)
        self.drain_ = self._new_drain()
        self._masker = Masker(self.format.masks)
        self._cache: dict[str, int] = {}  # masked content -> cluster id
        self.counts_: Counter[int] = Counter()  # entries per key seen while mining
        super().__init__(max_word_values, merge)
        self.feedback_clusters_: set[int] = set()  # clusters created by learn_line
        self.session_rule: SessionRule | None = (
            SessionRule.parse(session) if isinstance(session, str) else session
        )
        if year is not None and not 1 <= int(year) <= 9999:
            raise ValueError(f"year must be between 1 and 9999, got {year!r}")
        self.year = None if year is None else int(year)

    @property
    def effective_session_rule(self) -> Any:
        """The rule sessions are grouped by: :attr:`session_rule`, else the format's own (or None)."""
        from workbench.logs.sessions import format_rule

        return self.session_rule or format_rule(self.format)

    def _new_drain(self) -> Drain:
        return Drain(
            sim_th=self.format.sim_th,
            depth=self.format.depth,
            max_children=100,
            param_str=_PARAM_STR,
        )

    # ------------------------------------------------------------------ matching
    def masked_content(self, line: str) -> str | None:
        """The content of ``line`` with the format's masks applied (numbers, ids, ... replaced),
        None when the line does not fit the format. Two messages that differ only in masked
        values give the same text.

        >>> p = LogParser("<Level> <Content>")
        >>> p.masked_content("INFO took 12 s") == p.masked_content("INFO took 7 s")
        True
        """
        fields = self.format.split(line)
        return None if fields is None else self._masker.mask(fields["Content"].strip())

    def _cluster_of(self, masked: str, learn: bool) -> int:
        cid = self._cache.get(masked)
        if cid is not None:
            return cid
        if learn:
            cluster, _ = self.drain_.add_log_message(masked)
        else:
            cluster = self.drain_.match(masked, "fallback")
            if cluster is None:
                return 0  # never cached: a later fit may learn it
        self._cache[masked] = cluster.cluster_id
        return cluster.cluster_id

    # ------------------------------------------------------------------ learning
    def fit(self, source: Any) -> LogParser:
        """Mine templates from ``source`` (a path, bytes, or lines) and return self."""
        self.parse(source, learn=True, sessions=False)
        return self

    def learn_line(self, line: str) -> int:
        """Learn one line a user confirmed as normal, without widening what was mined; its key.

        Mining a single line with Drain's usual similarity threshold would merge it into the most
        similar mined template and widen that template's wildcards, so unrelated messages (real
        anomalies among them) would start to match it. Here a line may only widen a template that
        earlier feedback created; otherwise it becomes a template of its own (or joins one it
        matches exactly).
        """
        fields = self.format.split(line)
        if fields is None:
            return keyids.UNPARSED
        masked = self._masker.mask(fields["Content"].strip())
        tokens = self.drain_.get_content_as_tokens(masked)
        near = self.drain_.tree_search(self.drain_.root_node, tokens, self.drain_.sim_th, False)
        strict = near is None or near.cluster_id not in self.feedback_clusters_
        previous = self.drain_.sim_th
        if strict:
            self.drain_.sim_th = 1.0
        try:
            df = self.parse([line], learn=True, sessions=False)
        finally:
            self.drain_.sim_th = previous
        key = int(df["key"].iloc[0])
        cid = self._cache.get(masked)
        if key > 0 and cid:
            self.feedback_clusters_.add(cid)
        return key

    # ------------------------------------------------------------------ parsing
    def transform(
        self, source: Any, *, first_line: int = 1, sessions: bool = True, fields: Any = None
    ) -> pd.DataFrame:
        """Parse without learning: templates never seen get :data:`~workbench.keyids.UNKNOWN`.
        Read-only."""
        return self.parse(source, learn=False, first_line=first_line, sessions=sessions,
                          fields=fields)  # fmt: skip

    def parse(
        self,
        source: Any,
        *,
        learn: bool = True,
        first_line: int = 1,
        sessions: bool = True,
        fields: Iterable[str] | None = None,
    ) -> pd.DataFrame:
        """Parse ``source`` into the row schema of this module.

        Parameters
        ----------
        source
            A file path (plain or gzip), bytes, or an iterable of lines.
        learn
            Mine new templates (True) or only match known ones (False, inference mode).
        first_line
            Line number of the first line, when parsing one partition of a larger log.
        sessions
            Assign sessions with :attr:`session_rule` (else the format's own rule) and compute
            elapsed times. Turn off when parsing partitions; run
            :func:`workbench.logs.sessions.assign_sessions` and
            :func:`workbench.logs.sessions.add_elapsed_times` on the whole result.
        fields
            The header fields kept as columns after the schema's (default: all of them).

        Problems that leave rows without a session or a timestamp are noted in ``df.attrs``:
        ``'session_problem'`` and ``'timestamp_problem'`` (plain sentences).
        """
        rows = self._read_rows(source, learn)
        keys, positions = self._key_rows(rows, learn)
        if not rows.raw:
            logger.warning("empty input: no lines to parse")
        df, ts_problem = self._frame(rows, keys, positions, first_line, fields)
        session_problem = self._sessions(df) if sessions and len(df) else None
        out = df[_COLUMNS + [c for c in df.columns if c not in _COLUMNS]]
        if ts_problem:
            out.attrs["timestamp_problem"] = ts_problem
        if session_problem:
            out.attrs["session_problem"] = session_problem
        return out

    def _read_rows(self, source: Any, learn: bool) -> _Rows:
        """Read, split, mask and match every line of ``source`` to a Drain cluster.

        Kept whole: this loop runs once per input line, and calls to named steps would cost
        a good part of its time.
        """
        split = self.format.split
        match = None if self.format.trusted_regex is None else self.format.trusted_regex.match
        mask = self._masker.mask
        cluster_of = self._cluster_of
        cache = self._cache
        rows = _Rows()
        raw, contents, clusters = rows.raw.append, rows.content.append, rows.cluster.append
        errors, fields_of, masked_of = rows.error.append, rows.fields.append, rows.masked.append
        for item in read_texts(source, self.max_line_bytes):
            if item.__class__ is str:
                text, note = item, None
            elif item.error is not None:  # type: ignore[union-attr]
                rows.unparsed(item.text, item.error)  # type: ignore[union-attr]
                continue
            else:
                text, note = item.text, item.note  # type: ignore[union-attr]
            if not text or text.isspace():  # type: ignore[union-attr]
                rows.unparsed(text, "empty line")
                continue
            if match is None:
                fields = split(text)  # type: ignore[arg-type]
            else:  # a built-in pattern, matched here without a call of split
                found = match(text)  # type: ignore[arg-type]
                fields = None if found is None else found.groupdict()
            if fields is None or fields["Content"] is None:
                rows.unparsed(text, "does not fit the format")
                continue
            content = fields["Content"].strip()
            masked = mask(content)
            cid = cache.get(masked)
            raw(text)
            contents(content)
            clusters(cluster_of(masked, learn) if cid is None else cid)
            errors(note)
            fields_of(fields)
            masked_of(masked)
        return rows

    def _key_rows(self, rows: _Rows, learn: bool) -> tuple[list[int], dict[str, tuple[int, ...]]]:
        """The key of every row and the parameter positions of every distinct masked message."""
        # distinct messages per cluster in order of first appearance (dicts keep order, so key
        # ids do not depend on hashing and a log gets the same ids in every process)
        by_cid: dict[int, dict[str, None]] = {}
        for cid, m in dict.fromkeys(zip(rows.cluster, rows.masked, strict=True)):  # distinct
            if cid >= 0:
                by_cid.setdefault(cid, {})[m] = None  # type: ignore[index]
        refined, positions = self._refine(by_cid, learn)
        # an unparsed row has no masked message (None) and keeps its key (UNPARSED)
        keys = list(map({**refined, None: keyids.UNPARSED}.__getitem__, rows.masked))
        if learn:
            self.counts_.update(k for k in keys if k > 0)
        return keys, positions

    def _frame(
        self,
        rows: _Rows,
        keys: list[int],
        positions: dict[str, tuple[int, ...]],
        first_line: int,
        keep: Iterable[str] | None = None,
    ) -> tuple[pd.DataFrame, str | None]:
        """The rows as a frame (sessions and elapsed times left empty; of the header fields those
        in ``keep``, all when None), and the timestamp problem."""
        fmt = self.format
        n = len(rows.raw)
        df = pd.DataFrame(
            {
                "line": np.arange(first_line, first_line + n, dtype=np.int64),
                "raw": pd.Series(rows.raw, dtype=object),
                "key": np.asarray(keys, dtype=np.int64),
            }
        )
        templates = {k: self.template_of(k) for k in set(keys) if k != keyids.UNPARSED}
        templates[keyids.UNPARSED] = ""
        df["template"] = pd.Series(list(map(templates.__getitem__, keys)), dtype=object)
        params = row_params(rows.content, rows.masked, positions, self.named_numbers)
        df["params"] = pd.Series(params, dtype=object)
        df["timestamp"], ts_problem = read_timestamps(fmt, rows.fields, first_line, self.year)
        names = [f for f in fmt.fields if f != "Content" and (keep is None or f in keep)]
        columns = field_columns(rows.fields, names)
        label = None
        if fmt.label_field:
            label = columns.get(fmt.label_field) or field_columns(rows.fields, [fmt.label_field])
            label = label if isinstance(label, list) else label[fmt.label_field]
        df["label"] = pd.Series([None] * n if label is None else label, dtype=object)
        df["parsed"] = df["key"].to_numpy() != keyids.UNPARSED
        df["error"] = pd.Series(rows.error, dtype=object)
        df["content"] = pd.Series(rows.content, dtype=object)
        for name, values in columns.items():
            if name not in df.columns:
                df[name] = pd.Series(values, dtype=object)
        df["session"] = pd.Series([None] * n, dtype=object)
        df["dt_session"] = np.nan
        df["dt_global"] = np.nan
        return df, ts_problem

    def _sessions(self, df: pd.DataFrame) -> str | None:
        """Assign sessions and elapsed times in place; a plain sentence when the rule failed."""
        from workbench.logs.formats import RegexTimeoutError
        from workbench.logs.sessions import add_elapsed_times, assign_sessions

        problem = None
        try:
            assign_sessions(df, self.format, self.session_rule)
        except RegexTimeoutError:  # a user pattern that never ends is an input error
            raise
        except ValueError as exc:  # a window rule on a log without readable timestamps
            problem = f"session rule {self.effective_session_rule}: {exc}"
            logger.warning("%s", problem)
        add_elapsed_times(df)
        return problem

    # ------------------------------------------------------------------ reports and state
    def summary(self, df: pd.DataFrame) -> ParseSummary:
        """Counts of a parsed frame: lines, parsed, unparsed by reason, keys, unknowns, sessions,
        with the format, the session rule in force and the problems noted while parsing."""
        return summarize(df, self.format.name, self.session_rule, self.effective_session_rule)

    def to_state(self) -> dict[str, Any]:
        """Plain-JSON state (strings, numbers, lists, dicts only; nothing that names a class);
        the schema is in :mod:`workbench.logs.parser_state`."""
        return parser_state.parser_to_state(self)

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> LogParser:
        """Rebuild a parser saved by :meth:`to_state` through drain3's own classes.

        Only the schema is read, and every value is checked for its type, so a crafted state can
        fail to load but never makes anything run. Raises ValueError naming the field.
        """
        return parser_state.parser_from_state(cls, state)

    def refine_state(self) -> dict[str, Any]:
        """The refinement's learned state as plain data
        (:func:`workbench.logs.parser_state.refine_state`)."""
        return parser_state.refine_state(self)
