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

import gzip
import io
import logging
import math
import re
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from drain3.drain import Drain

from workbench import keyids
from workbench.logs.formats import LogFormat, Masker, get_format
from workbench.logs.template_refine import (
    VARIABLE,
    WordStats,
    display_template,
    gap_param_positions,
    gapped_template,
    signature,
    wildcard_token,
    word_shape,
)

__all__ = [
    "MAX_LINE_BYTES",
    "LogParser",
    "ParseSummary",
    "add_parse_command",
    "read_lines",
]

logger = logging.getLogger(__name__)

MAX_LINE_BYTES = 64 * 1024  #: longer lines are kept as unparsed rows, not mined

_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")
_STRIP = ",;:()[]{}\"'"
_PARAM_STR = "<*>"
_VARIABLE: Any = VARIABLE  # marks a position seen with too many or non-word values
_Fixed = tuple[tuple[int, str], ...]  # (position, word) pairs that fix a key within a cluster


@dataclass(frozen=True)
class _Line:
    text: str
    error: str | None = None  # set when the line cannot be parsed at all
    note: str | None = None  # set when it was repaired (invalid UTF-8 replaced)


def _decode(raw: bytes, max_bytes: int) -> _Line:
    if raw.endswith(b"\r"):
        raw = raw[:-1]
    if len(raw) > max_bytes:
        return _Line(raw[:200].decode("utf-8", "replace"), f"line too long ({len(raw)} bytes)")
    if b"\x00" in raw:
        return _Line(raw[:200].decode("utf-8", "replace"), "binary data (NUL byte)")
    try:
        return _Line(raw.decode("utf-8"))
    except UnicodeDecodeError:
        text = raw.decode("utf-8", "replace")
        bad = sum(1 for ch in text if ch == "\ufffd")
        if bad > max(4, len(text) // 4):
            return _Line(text[:200], "binary data (not UTF-8 text)")
        return _Line(text, note="invalid UTF-8 replaced")


def read_lines(source: str | Path | bytes | Iterable[str | bytes], max_bytes: int = MAX_LINE_BYTES):
    """Yield the lines of a file (plain or ``.gz``), a bytes buffer, or an iterable of lines.

    Lines are split on ``\\n`` only (a trailing ``\\r`` is dropped), so line numbers match ``wc -l``.
    Each item is a private record with the decoded text and, when the line cannot be parsed, why.

    >>> [x.text for x in read_lines(b"a\\r\\nb\\n")]
    ['a', 'b']
    """
    if isinstance(source, bytes | str | Path):
        yield from (_decode(r, max_bytes) for r in raw_lines(source))
        return
    for item in source:
        if isinstance(item, bytes):
            yield _decode(item.rstrip(b"\n"), max_bytes)
        else:
            text = item.rstrip("\n").removesuffix("\r")
            if len(text) > max_bytes:
                yield _Line(text[:200], f"line too long ({len(text)} characters)")
            elif "\x00" in text:
                yield _Line(text[:200], "binary data (NUL byte)")
            else:
                yield _Line(text)


def raw_lines(source: Any) -> Iterator[Any]:
    """The lines of a path (plain or gzip) or a bytes buffer as bytes without their newline,
    lazily; any other iterable of lines is passed through as it is."""
    if isinstance(source, bytes):
        yield from _split_bytes(io.BytesIO(source))
        return
    if isinstance(source, str | Path):
        path = Path(source)
        if not path.exists():
            raise FileNotFoundError(f"log file not found: {path}")
        if path.is_dir():
            raise IsADirectoryError(f"expected a log file, got a directory: {path}")
        with path.open("rb") as fh:
            magic = fh.read(2)
        opener = gzip.open if magic == b"\x1f\x8b" else open
        with opener(path, "rb") as fh:  # type: ignore[operator]
            yield from _split_bytes(fh)
        return
    yield from source


def _split_bytes(fh: Any) -> Iterator[bytes]:
    for raw in fh:
        yield raw[:-1] if raw.endswith(b"\n") else raw


@dataclass(frozen=True)
class ParseSummary:
    """Counts reported after a parse: what came in, what was understood, and why the rest was not."""

    lines: int
    parsed: int
    unparsed: int
    unparsed_reasons: dict[str, int]
    keys: int
    unknown: int
    sessions: int
    format: str | None = None  # the line format's name
    session_rule: str | None = None  # the rule sessions were grouped by (None: no rule)
    timestamps: int | None = None  # entries with a readable timestamp
    problems: tuple[str, ...] = ()  # plain sentences: unreadable timestamps, a rule that failed

    def __str__(self) -> str:
        reasons = ", ".join(f"{n} {r}" for r, n in self.unparsed_reasons.items()) or "none"
        text = (
            f"{self.lines} lines, {self.parsed} parsed, {self.unparsed} unparsed ({reasons}), "
            f"{self.keys} keys, {self.unknown} unknown-key entries, {self.sessions} sessions"
        )
        if self.format is not None:
            rule = self.session_rule or "none (no session rule)"
            text += f"; format {self.format}, session rule {rule}"
        if self.timestamps is not None:
            text += f", {self.timestamps} with a timestamp"
        return text + "".join(f"; {p}" for p in self.problems)

    def __getitem__(self, name: str) -> Any:
        return getattr(self, name)


class LogParser:
    """Template mining and matching over one line format, with a persistent key vocabulary.

    Parameters
    ----------
    fmt
        A built-in format name (``"hdfs"``, ``"openstack"``, ``"bgl"``, ...), a loghub-style header
        containing ``<Content>``, a regular expression with ``(?P<Content>...)``, or a
        :class:`~workbench.logs.formats.LogFormat`.
    masks
        Override the format's masking rules (a sequence of :class:`~workbench.logs.formats.Mask`).
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

    Key ids (1, 2, ...) are given in order of first appearance and never change once given, so they
    persist with :meth:`to_state`. After :meth:`fit`, :meth:`transform` maps unseen templates to :data:`~workbench.keyids.UNKNOWN`.
    """

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
        self.drain_ = self._new_drain()
        self._masker = Masker(self.format.masks)
        self._cache: dict[str, int] = {}  # masked content -> cluster id
        self.counts_: Counter[int] = Counter()  # entries per key seen while mining
        self.max_word_values = max_word_values
        self.merge = merge
        self.keys_: dict[int, tuple[int, _Fixed]] = {}  # key -> its first cluster and words
        self._keymap: dict[tuple[int, _Fixed], int] = {}  # every (cluster, words) -> key
        self.word_stats_ = WordStats(max_word_values)  # which wildcard positions split keys
        self.key_aliases_: dict[int, list[tuple[int, _Fixed]]] = {}  # key -> merged-in members
        self.key_signatures_: dict[tuple[str, ...], int] = {}  # constant skeleton -> key
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

    @property
    def _words(self) -> dict[int, dict[int, Any]]:
        """Cluster -> wildcard position -> plain words seen there, or the variable marker."""
        return self.word_stats_.positions

    def _new_drain(self) -> Drain:
        return Drain(
            sim_th=self.format.sim_th,
            depth=self.format.depth,
            max_children=100,
            param_str=_PARAM_STR,
        )

    # ------------------------------------------------------------------ mining and matching
    @property
    def n_keys(self) -> int:
        """How many keys (templates) the parser knows."""
        return len(self.keys_)

    @property
    def templates_(self) -> pd.DataFrame:
        """The key vocabulary: ``key``, ``template``, ``count`` (entries seen while mining)."""
        rows = [(k, self.template_of(k), self.counts_.get(k, 0)) for k in sorted(self.keys_)]
        return pd.DataFrame(rows, columns=["key", "template", "count"])

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

    def template_of(self, key: int) -> str:
        """The template text of ``key``: Drain's template with the key's word values filled in."""
        if key == keyids.UNKNOWN:
            return "<unknown template>"
        if key not in self.keys_:
            return "<unparsed>"
        tokens = self._tokens_of(*self.keys_[key], display=True)
        if tokens is None:
            return "<unknown template>"
        aliases = self.key_aliases_.get(key)
        if aliases:
            members = [tokens] + [
                t for t in (self._tokens_of(*a, display=True) for a in aliases) if t is not None
            ]
            return display_template(gapped_template(members).split())
        return display_template(tokens)

    def _tokens_of(self, cid: int, fixed: _Fixed, display: bool = False) -> list[str] | None:
        """Drain's template tokens of cluster ``cid`` with the key's words filled in."""
        cluster = self.drain_.id_to_cluster.get(cid)
        if cluster is None:
            return None
        tokens = list(cluster.log_template_tokens)
        for pos, (prefix, suffix, shortest) in self.word_stats_.affixes.get(cid, {}).items():
            if pos < len(tokens) and tokens[pos] == _PARAM_STR:
                tokens[pos] = wildcard_token(prefix, suffix, shortest, display)
        for pos, value in fixed:
            if 0 <= pos < len(tokens):
                tokens[pos] = value
        return tokens

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

    def _refine(
        self, masked_by_cid: dict[int, dict[str, None]], learn: bool
    ) -> tuple[dict[str, int], dict[str, tuple[int, ...]]]:
        """Key and parameter positions of every distinct masked message, given Drain's clusters.

        Drain merges messages that differ in one word ("VM Paused" / "VM Started", "Took 3 s to
        spawn" / "... to destroy"). A wildcard position whose values are all plain words, at most
        :attr:`max_word_values` of them, none of them also filling a wildcard of another template,
        is treated as constant: each value gets a key of its own. Keys whose templates share their
        constant skeleton are merged (:func:`~workbench.logs.template_refine.signature`). A message that
        matches no cluster (inference mode, cluster id 0) gets the key of its skeleton, if known.
        """
        keys: dict[str, int] = {}
        positions: dict[str, tuple[int, ...]] = {}
        stats = self.word_stats_
        todo = []
        for cid, members in masked_by_cid.items():
            split = [m.split() for m in members]
            if cid == 0:
                for m, toks in zip(members, split, strict=True):
                    key = self.key_signatures_.get(signature(toks), keyids.UNKNOWN)
                    keys[m] = key
                    if key != keyids.UNKNOWN:
                        positions[m] = gap_param_positions(self._tokens_of(*self.keys_[key]), toks)
                continue
            template = list(self.drain_.id_to_cluster[cid].log_template_tokens)
            wild = [i for i, t in enumerate(template) if t == _PARAM_STR]
            if learn and wild:
                stats.observe(cid, wild, split)
                stats.observe_alignment(cid, wild, split)
            todo.append((cid, list(members), split, template, wild))
        if learn:
            stats.settle(list(stats.positions))
        for cid, members, split, template, wild in todo:
            mixed = stats.mixed.get(cid)
            fixed_pos = [] if mixed else stats.split_positions(cid, wild)
            known: dict[_Fixed, tuple[int, ...]] = {}  # parameter positions per key of the cluster
            for m, toks in zip(members, split, strict=True):
                if mixed:  # keyed by its own skeleton, at the pseudo-position -1
                    fixed: _Fixed = ((-1, stats.member_signature(toks, wild, mixed)),)
                else:
                    fixed = tuple(
                        (p, word_shape(toks[p]) or toks[p]) for p in fixed_pos if p < len(toks)
                    )
                key = self._keymap.get((cid, fixed))
                if key is None:
                    if not learn:
                        keys[m] = keyids.UNKNOWN
                        continue
                    key = self._new_key(cid, fixed)
                keys[m] = key
                merged = key in self.key_aliases_
                if mixed:
                    first = self._tokens_of(*self.keys_[key]) if merged else None
                    positions[m] = gap_param_positions(first, toks)
                else:
                    pos = known.get(fixed)
                    if pos is None:
                        own = self._tokens_of(cid, fixed) or template
                        first = self._tokens_of(*self.keys_[key]) if merged else None
                        pos = known[fixed] = gap_param_positions(first, own)
                    positions[m] = pos
        return keys, positions

    def _new_key(self, cid: int, fixed: _Fixed) -> int:
        """A key for a new (cluster, words) pair: the key of its skeleton when merging, else a new one."""
        if fixed and fixed[0][0] == -1:
            sig = tuple(fixed[0][1].split())
        else:
            sig = signature(self._tokens_of(cid, fixed) or (), keep=[p for p, _ in fixed])
        key = self.key_signatures_.get(sig) if self.merge else None
        if key is not None:
            self.key_aliases_.setdefault(key, []).append((cid, fixed))
        else:
            key = len(self.keys_) + 1
            self.keys_[key] = (cid, fixed)
            self.key_signatures_.setdefault(sig, key)
        self._keymap[(cid, fixed)] = key
        return key

    def refine_state(self) -> dict[str, Any]:
        """The refinement's learned state as plain JSON-able data (see :meth:`load_refine_state`).

        ``aliases``: [key, cluster, [[pos, word], ...]] for every cluster merged into a key;
        ``signatures``: [[token, ...], key] skeletons; ``word_owners``: word -> clusters;
        ``affixes``: [cluster, position, common prefix, common suffix, shortest length] of the
        values at a wildcard (its ``key=`` and punctuation are kept around the ``<*>``); ``mixed``:
        [cluster, [position, ...]] of clusters whose members are keyed by their own skeleton.
        """
        return {
            "merge": self.merge,
            "aliases": [
                [k, cid, [list(f) for f in fixed]]
                for k, members in sorted(self.key_aliases_.items())
                for cid, fixed in members
            ],
            "signatures": [[list(sig), k] for sig, k in self.key_signatures_.items()],
            "word_owners": {w: list(c) for w, c in self.word_stats_.owners.items()},
            "affixes": [
                [cid, pos, *affix]
                for cid, d in self.word_stats_.affixes.items()
                for pos, affix in d.items()
            ],
            "mixed": [[cid, list(pos)] for cid, pos in self.word_stats_.mixed.items()],
        }

    def load_refine_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`refine_state` returned (after ``keys_`` and the word positions)."""
        self.merge = bool(state.get("merge", True))
        for k, cid, fixed in state.get("aliases", []):
            member = (int(cid), tuple((int(p), str(v)) for p, v in fixed))
            self.key_aliases_.setdefault(int(k), []).append(member)
            self._keymap[member] = int(k)
        for sig, k in state.get("signatures", []):
            self.key_signatures_[tuple(str(t) for t in sig)] = int(k)
        self.word_stats_.owners = {
            str(w): [int(c) for c in cids] for w, cids in state.get("word_owners", {}).items()
        }
        for cid, pos, prefix, suffix, shortest in state.get("affixes", []):
            affix = [str(prefix), str(suffix), int(shortest)]
            self.word_stats_.affixes.setdefault(int(cid), {})[int(pos)] = affix
        for cid, pos in state.get("mixed", []):
            self.word_stats_.mixed[int(cid)] = [int(p) for p in pos]

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

    def transform(self, source: Any, *, first_line: int = 1, sessions: bool = True) -> pd.DataFrame:
        """Parse without learning: templates never seen get :data:`~workbench.keyids.UNKNOWN`. Read-only."""
        return self.parse(source, learn=False, first_line=first_line, sessions=sessions)

    def parse(
        self,
        source: Any,
        *,
        learn: bool = True,
        first_line: int = 1,
        sessions: bool = True,
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

        Problems that leave rows without a session or a timestamp are noted in ``df.attrs``:
        ``'session_problem'`` and ``'timestamp_problem'`` (plain sentences).
        """
        fmt = self.format
        split = fmt.split
        mask = self._masker.mask
        cluster_of = self._cluster_of
        rows_raw: list[str] = []
        rows_content: list[str] = []
        rows_key: list[int] = []
        rows_err: list[str | None] = []
        rows_fields: list[dict[str, str] | None] = []
        masked_per_row: list[str | None] = []
        for item in read_lines(source, self.max_line_bytes):
            text = item.text
            rows_raw.append(text)
            if item.error is not None:
                rows_content.append("")
                rows_key.append(keyids.UNPARSED)
                rows_err.append(item.error)
                rows_fields.append(None)
                masked_per_row.append(None)
                continue
            fields = split(text) if text.strip() else None
            if fields is None:
                rows_content.append("")
                rows_key.append(keyids.UNPARSED)
                rows_err.append("empty line" if not text.strip() else "does not fit the format")
                rows_fields.append(None)
                masked_per_row.append(None)
                continue
            content = fields["Content"].strip()
            masked = mask(content)
            rows_content.append(content)
            rows_key.append(cluster_of(masked, learn))
            rows_err.append(item.note)
            rows_fields.append(fields)
            masked_per_row.append(masked)
        n = len(rows_raw)
        # distinct messages per cluster in order of first appearance (dicts keep order, so key
        # ids do not depend on hashing and a log gets the same ids in every process)
        by_cid: dict[int, dict[str, None]] = {}
        for cid, m in zip(rows_key, masked_per_row, strict=True):
            if cid >= 0:
                by_cid.setdefault(cid, {})[m] = None  # type: ignore[index]
        refined, positions = self._refine(by_cid, learn)
        rows_key = [
            refined[m] if cid >= 0 else cid  # type: ignore[index]
            for cid, m in zip(rows_key, masked_per_row, strict=True)
        ]
        if learn:
            self.counts_.update(k for k in rows_key if k > 0)
        if n == 0:
            logger.warning("empty input: no lines to parse")
        df = pd.DataFrame(
            {
                "line": np.arange(first_line, first_line + n, dtype=np.int64),
                "raw": pd.Series(rows_raw, dtype=object),
                "key": np.asarray(rows_key, dtype=np.int64),
            }
        )
        templates = {k: self.template_of(k) for k in set(rows_key) if k != keyids.UNPARSED}
        templates[keyids.UNPARSED] = ""
        df["template"] = pd.Series([templates[k] for k in rows_key], dtype=object)
        params: dict[str, tuple[float, ...]] = {}  # content -> its numbers (messages repeat)
        for c, m in zip(rows_content, masked_per_row, strict=True):
            if c not in params:
                params[c] = _numeric_params(c, positions[m]) if m in positions else ()
        df["params"] = pd.Series([params[c] for c in rows_content], dtype=object)
        df["timestamp"], ts_problem = self._timestamps(rows_fields, first_line)
        df["label"] = pd.Series(
            [f.get(fmt.label_field) if f and fmt.label_field else None for f in rows_fields],
            dtype=object,
        )
        df["parsed"] = df["key"].to_numpy() != keyids.UNPARSED
        df["error"] = pd.Series(rows_err, dtype=object)
        df["content"] = pd.Series(rows_content, dtype=object)
        for name in fmt.fields:
            if name != "Content" and name not in df.columns:
                df[name] = pd.Series(
                    [f.get(name) if f else None for f in rows_fields], dtype=object
                )
        df["session"] = pd.Series([None] * n, dtype=object)
        df["dt_session"] = np.nan
        df["dt_global"] = np.nan
        session_problem = None
        if sessions and n:
            from workbench.logs.formats import RegexTimeoutError
            from workbench.logs.sessions import add_elapsed_times, assign_sessions

            try:
                assign_sessions(df, fmt, self.session_rule)
            except RegexTimeoutError:  # a user pattern that never ends is an input error
                raise
            except ValueError as exc:  # a window rule on a log without readable timestamps
                session_problem = f"session rule {self.effective_session_rule}: {exc}"
                logger.warning("%s", session_problem)
            add_elapsed_times(df)
        cols = ["line", "raw", "timestamp", "session", "key", "template", "params"]
        cols += ["dt_session", "dt_global", "label", "parsed", "error", "content"]
        out = df[cols + [c for c in df.columns if c not in cols]]
        if ts_problem:
            out.attrs["timestamp_problem"] = ts_problem
        if session_problem:
            out.attrs["session_problem"] = session_problem
        return out

    def _timestamps(
        self, rows_fields: list[dict[str, str] | None], first_line: int = 1
    ) -> tuple[pd.Series, str | None]:
        """Timestamps of the rows, and a plain sentence about those that could not be read."""
        fmt = self.format
        if not fmt.timestamp_fields:
            return pd.Series(pd.NaT, index=range(len(rows_fields)), dtype="datetime64[ns]"), None
        text = pd.Series(
            [
                " ".join(f[t] or "" for t in fmt.timestamp_fields) if f else None
                for f in rows_fields
            ],
            dtype=object,
        )
        spec = fmt.timestamp_format
        if spec == "%s":  # seconds since 1970
            num = pd.to_numeric(text, errors="coerce")
            ts = pd.to_datetime(num, unit="s", errors="coerce")
        else:
            if spec and "%Y" not in spec and "%y" not in spec:  # syslog-style: no year
                year = self.year or pd.Timestamp.now().year
                text = text.map(lambda t: None if t is None else f"{year} {t}")
                spec = "%Y " + spec
            ts = pd.to_datetime(text, format=spec or "mixed", errors="coerce")
        if getattr(ts.dt, "tz", None) is not None:
            ts = ts.dt.tz_convert("UTC").dt.tz_localize(None)
        ts = ts.astype("datetime64[ns]")
        bad = np.flatnonzero(text.notna().to_numpy() & ts.isna().to_numpy())
        problem = None
        if len(bad):
            shown = " ".join(str(text.iloc[bad[0]]).split())
            expected = f" as {fmt.timestamp_format}" if fmt.timestamp_format else ""
            problem = (
                f"{len(bad)} of {int(text.notna().sum())} timestamps could not be read{expected} "
                f"(the first, on line {first_line + int(bad[0])}: {shown!r})"
            )
        return ts, problem

    # ------------------------------------------------------------------ reports
    def summary(self, df: pd.DataFrame) -> ParseSummary:
        """Counts of a parsed frame: lines, parsed, unparsed by reason, keys, unknowns, sessions,
        with the format, the session rule in force and the problems noted while parsing."""
        parsed = df["parsed"].to_numpy(dtype=bool) if len(df) else np.zeros(0, bool)
        reasons = Counter(str(e) for e, ok in zip(df["error"], parsed, strict=True) if not ok)
        keys = df.loc[parsed, "key"]
        return ParseSummary(
            lines=len(df),
            parsed=int(parsed.sum()),
            unparsed=int((~parsed).sum()),
            unparsed_reasons=dict(reasons.most_common()),
            keys=int(keys[keys > 0].nunique()),
            unknown=int((keys == keyids.UNKNOWN).sum()),
            sessions=self._count_sessions(df),
            format=self.format.name,
            session_rule=None if (r := self.effective_session_rule) is None else str(r),
            timestamps=int(df.loc[parsed, "timestamp"].notna().sum()) if len(df) else 0,
            problems=tuple(
                str(df.attrs[k]) for k in ("timestamp_problem", "session_problem") if k in df.attrs
            ),
        )

    def _count_sessions(self, df: pd.DataFrame) -> int:
        rule = self.session_rule
        if (
            rule is not None
            and rule.kind == "sliding"
            and len(df)
            and df["timestamp"].notna().any()
        ):
            from workbench.logs.sessions import session_groups

            return len(session_groups(df, rule)[0])  # overlapping windows, each counted
        return int(df["session"].dropna().nunique()) if len(df) else 0

    # ------------------------------------------------------------------ persistence
    #: Version of the plain-JSON parser state written by :meth:`to_state`.
    STATE_VERSION = 2

    def to_state(self) -> dict[str, Any]:
        """Plain-JSON state (strings, numbers, lists, dicts only; nothing that names a class).

        Schema (``state_version`` 2): ``format`` (the line format), ``max_line_bytes``,
        ``max_word_values``, ``drain`` (Drain's settings, every cluster as ``[id, size, tokens]``,
        the cluster counter, and the prefix tree as nested ``[cluster_ids, {token: child}]``),
        ``keys`` (``[key, cluster, [[position, word], ...]]``; a cluster below 0 marks a retired
        key id that is never given again), ``words``, ``counts``, ``feedback_clusters``, ``cache``
        (masked message -> cluster, so matching after a load is the same as before), and, when the
        parser carries one, ``session_rule`` (the text :meth:`SessionRule.parse` reads).
        """
        d = self.drain_

        def tree(node: Any) -> list[Any]:
            return [
                [int(c) for c in node.cluster_ids],
                {str(t): tree(child) for t, child in node.key_to_child_node.items()},
            ]

        clusters = [
            [int(c.cluster_id), int(c.size), [str(t) for t in c.log_template_tokens]]
            for c in sorted(d.id_to_cluster.values(), key=lambda c: c.cluster_id)
        ]
        state: dict[str, Any] = {
            "state_version": self.STATE_VERSION,
            "format": self.format.to_dict(),
            "max_line_bytes": self.max_line_bytes,
            "max_word_values": self.max_word_values,
            "drain": {
                "depth": int(d.log_cluster_depth),
                "sim_th": float(d.sim_th),
                "max_children": int(d.max_children),
                "param_str": str(d.param_str),
                "extra_delimiters": [str(x) for x in d.extra_delimiters],
                "parametrize_numeric_tokens": bool(d.parametrize_numeric_tokens),
                "clusters_counter": int(d.clusters_counter),
                "clusters": clusters,
                "tree": tree(d.root_node),
            },
            "counts": {str(k): int(v) for k, v in sorted(self.counts_.items())},
            "feedback_clusters": sorted(int(c) for c in self.feedback_clusters_),
            "keys": [
                [int(k), int(cid), [[int(p), str(v)] for p, v in fixed]]
                for k, (cid, fixed) in sorted(self.keys_.items())
            ],
            "words": [
                [int(cid), int(pos), None if vals is _VARIABLE else sorted(str(v) for v in vals)]
                for cid, d_ in self._words.items()
                for pos, vals in d_.items()
            ],
            "cache": [[str(m), int(c)] for m, c in self._cache.items()],
            "refine": self.refine_state(),
        }
        if self.year is not None:
            state["year"] = int(self.year)
        if self.session_rule is not None:
            state["session_rule"] = str(self.session_rule)
        return state

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> LogParser:
        """Rebuild a parser saved by :meth:`to_state` through drain3's own classes.

        Only the schema above is read, and every value is checked for its type, so a crafted
        state can fail to load but never makes anything run. Raises ValueError naming the field.
        """
        from drain3.drain import LogCluster, Node

        from workbench.logs.sessions import SessionRule

        def need(obj: Any, kind: type | tuple[type, ...], what: str) -> Any:
            if isinstance(obj, bool) and kind in (int, float, (int, float)):
                raise ValueError(f"malformed parser state: {what} must be a number, got {obj!r}")
            if not isinstance(obj, kind):
                raise ValueError(
                    f"malformed parser state: {what} has the wrong type ({type(obj).__name__})"
                )
            return obj

        need(state, dict, "the state")
        version = state.get("state_version")
        if version != cls.STATE_VERSION or isinstance(version, bool):
            raise ValueError(
                f"malformed parser state: state_version {version!r} is not "
                f"{cls.STATE_VERSION} (written by another version of the package)"
            )
        try:
            fmt = LogFormat.from_dict(need(state["format"], dict, "format"))
            parser = cls(
                fmt,
                max_line_bytes=need(state["max_line_bytes"], int, "max_line_bytes"),
                max_word_values=need(state["max_word_values"], int, "max_word_values"),
            )
            ds = need(state["drain"], dict, "drain")
            drain = parser._new_drain()
            drain.log_cluster_depth = need(ds["depth"], int, "drain.depth")
            drain.max_node_depth = drain.log_cluster_depth - 2
            drain.sim_th = float(need(ds["sim_th"], (int, float), "drain.sim_th"))
            drain.max_children = need(ds["max_children"], int, "drain.max_children")
            drain.param_str = need(ds["param_str"], str, "drain.param_str")
            drain.extra_delimiters = tuple(
                need(x, str, "drain.extra_delimiters") for x in ds["extra_delimiters"]
            )
            drain.parametrize_numeric_tokens = need(
                ds["parametrize_numeric_tokens"], bool, "drain.parametrize_numeric_tokens"
            )
            for item in need(ds["clusters"], list, "drain.clusters"):
                cid, size, tokens = need(item, list, "drain cluster")
                tokens = [need(t, str, "cluster token") for t in need(tokens, list, "tokens")]
                cluster = LogCluster(tokens, need(cid, int, "cluster id"))
                cluster.size = need(size, int, "cluster size")
                drain.id_to_cluster[cluster.cluster_id] = cluster
            drain.clusters_counter = max(
                need(ds["clusters_counter"], int, "drain.clusters_counter"),
                max(drain.id_to_cluster, default=0),
            )

            def node(item: Any, depth: int) -> Any:
                if depth > drain.log_cluster_depth + 2:
                    raise ValueError("malformed parser state: the prefix tree is too deep")
                ids, children = need(item, list, "tree node")
                n = Node()
                for c in need(ids, list, "tree cluster ids"):
                    if need(c, int, "tree cluster id") not in drain.id_to_cluster:
                        raise ValueError(f"malformed parser state: the tree names cluster {c}")
                    n.cluster_ids.append(c)
                for tok, child in need(children, dict, "tree children").items():
                    n.key_to_child_node[tok] = node(child, depth + 1)
                return n

            drain.root_node = node(ds["tree"], 0)
            for item in need(state["keys"], list, "keys"):
                k, cid, fixed = need(item, list, "key")
                fixed_t = tuple(
                    (need(p, int, "key position"), need(v, str, "key word"))
                    for p, v in need(fixed, list, "key words")
                )
                key = (need(cid, int, "key cluster"), fixed_t)
                parser.keys_[need(k, int, "key id")] = key
                if key[0] >= 0:  # a retired key id keeps its number and matches nothing
                    parser._keymap[key] = k
            parser.feedback_clusters_ = {
                need(c, int, "feedback cluster")
                for c in need(state.get("feedback_clusters", []), list, "feedback_clusters")
            }
            for item in need(state["words"], list, "words"):
                cid, pos, vals = need(item, list, "word stats")
                parser._words.setdefault(need(cid, int, "word cluster"), {})[
                    need(pos, int, "word position")
                ] = (
                    _VARIABLE
                    if vals is None
                    else {need(v, str, "word") for v in need(vals, list, "words")}
                )
            parser.counts_ = Counter(
                {
                    int(k): need(v, int, "count")
                    for k, v in need(state.get("counts", {}), dict, "counts").items()
                }
            )
            for item in need(state.get("cache", []), list, "cache"):
                m, c = need(item, list, "cache entry")
                parser._cache[need(m, str, "cached message")] = need(c, int, "cached cluster")
            parser.load_refine_state(need(state.get("refine", {}), dict, "refine"))
            rule = state.get("session_rule")
            if rule is not None:
                parser.session_rule = SessionRule.parse(need(rule, str, "session_rule"))
            year = state.get("year")
            if year is not None:
                parser.year = need(year, int, "year")
        except KeyError as exc:
            raise ValueError(f"malformed parser state: field {exc} is missing") from exc
        except (TypeError, ValueError) as exc:
            if str(exc).startswith("malformed parser state"):
                raise
            raise ValueError(f"malformed parser state: {exc}") from exc
        parser.drain_ = drain
        return parser


def _numeric_params(content: str, positions: tuple[int, ...]) -> tuple[float, ...]:
    """Numbers among the raw tokens at a template's variable positions (masks hold no space, so raw
    and masked tokens align)."""
    if not positions:
        return ()
    raw_tokens = content.split()
    out = []
    for p in positions:
        if p >= len(raw_tokens):
            break
        tok = raw_tokens[p].strip(_STRIP).rstrip(".")
        if _NUMBER.fullmatch(tok):
            value = float(tok)
            if math.isfinite(value):
                out.append(value)
    return tuple(out)


# ---------------------------------------------------------------------- command line
def add_parse_command(subparsers: Any) -> None:
    """Register ``deeplog-workbench parse``."""
    p = subparsers.add_parser(
        "parse",
        help="parse a raw log into log keys and parameter values",
        description="Parse LOG, write the parsed entries and the templates to DIR, print a summary.",
    )
    p.add_argument("log", help="log file (plain or .gz)")
    p.add_argument(
        "--format",
        default="auto",
        help="auto (default: chosen on the first lines), a built-in format name, a loghub-style "
        "header, or a regex with (?P<Content>...)",
    )
    p.add_argument(
        "--session",
        default=None,
        help="session rule: 'regex:PATTERN', 'field:NAME', 'window:SECONDS' or "
        "'sliding:SECONDS,STEP' (default: the format's own rule)",
    )
    p.add_argument("--year", type=int, default=None, help="year of timestamps that carry none")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--csv", action="store_true", help="write CSV instead of parquet")
    p.set_defaults(func=_run_parse)


def _run_parse(args: Any) -> int:
    import itertools
    import sys

    from workbench.store.files import check_output_file

    log = Path(args.log)
    if not log.exists():
        raise ValueError(f"log file not found: {log}")
    if not log.is_file():
        raise ValueError(f"{log}: not a regular file")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: exists and is not a directory")
    targets = [out / ("entries.csv" if args.csv else "entries.parquet"), out / "templates.csv"]
    for t in targets:
        check_output_file(t)
    fmt: Any = args.format
    try:
        if fmt.strip().lower() == "auto":
            from workbench.logs.autoformat import choose_format

            choice = choose_format(x.text for x in itertools.islice(read_lines(log), 1200))
            fmt = choice.format
            print(f"chose {choice}", file=sys.stderr)
        parser = LogParser(fmt, session=args.session, year=args.year)
        df = parser.parse(log)
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise ValueError(f"{log}: truncated or corrupt gzip file ({exc})") from None
    except UnicodeError as exc:
        raise ValueError(f"{log}: cannot be decoded ({exc})") from None
    summary = parser.summary(df)
    if summary.lines and not summary.parsed:
        why = ", ".join(f"{n} {r}" for r, n in summary.unparsed_reasons.items())
        raise ValueError(
            f"{log}: none of the {summary.lines} lines was parsed ({why}) with the format "
            f"{parser.format.name!r}; check --format (the Content group must match every line)"
        )
    out.mkdir(parents=True, exist_ok=True)
    table = df.copy()
    table["params"] = table["params"].map(lambda p: " ".join(repr(v) for v in p))
    if args.csv:
        table.to_csv(targets[0], index=False)
    else:
        for col in table.columns:  # mixed header fields are written as text
            if table[col].dtype == object and col != "params":
                table[col] = table[col].map(lambda v: None if v is None else str(v))
        table.to_parquet(targets[0], index=False)
    parser.templates_.to_csv(targets[1], index=False)
    print(f"{args.log}: {summary}")
    if summary.lines == 0:
        print("warning: the input is empty")
    return 0
