"""The log keys of a parser: Drain's clusters refined into keys, their templates and the
positions of their parameters.

Drain's clusters are not log keys as they are: it merges messages that differ in one word and
splits messages whose variables span a varying number of tokens. :class:`TemplateKeys` applies the
rules of :mod:`workbench.logs.template_refine` on top of the clusters and keeps the result as
plain data: ``keys_`` (key id -> its first cluster and the words that fix it), ``key_aliases_``
(clusters merged into a key), ``key_signatures_`` (constant skeleton -> key) and ``word_stats_``.
Key ids (1, 2, ...) are given in order of first appearance and never change once given.
:class:`~workbench.logs.parser.LogParser` derives from it and adds reading, matching and state.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from math import isfinite

import pandas as pd
from drain3.drain import Drain

from workbench import keyids
from workbench.logs.template_refine import (
    PARAM_STR,
    display_template,
    gap_param_positions,
    gapped_template,
    signature,
    wildcard_token,
    word_shape,
)
from workbench.logs.word_stats import WordStats

__all__ = ["Fixed", "TemplateKeys", "numeric_params", "row_params"]

Fixed = tuple[tuple[int, str], ...]  #: (position, word) pairs that fix a key within a cluster

_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")
_STRIP = ",;:()[]{}\"'"
_is_number = _NUMBER.fullmatch
_UNSEEN = object()


class TemplateKeys:
    """The key vocabulary refined from Drain's clusters (see the module docstring).

    ``max_word_values`` and ``merge`` are :class:`~workbench.logs.parser.LogParser`'s parameters
    of the same names; the subclass sets ``drain_`` (the template miner) and ``counts_``.
    """

    drain_: Drain
    counts_: Counter[int]

    def __init__(self, max_word_values: int, merge: bool) -> None:
        self.max_word_values = max_word_values
        self.merge = merge
        self.keys_: dict[int, tuple[int, Fixed]] = {}  # key -> its first cluster and words
        self._keymap: dict[tuple[int, Fixed], int] = {}  # every (cluster, words) -> key
        self.word_stats_ = WordStats(max_word_values)  # which wildcard positions split keys
        self.key_aliases_: dict[int, list[tuple[int, Fixed]]] = {}  # key -> merged-in members
        self.key_signatures_: dict[tuple[str, ...], int] = {}  # constant skeleton -> key

    @property
    def n_keys(self) -> int:
        """How many keys (templates) the parser knows."""
        return len(self.keys_)

    @property
    def templates_(self) -> pd.DataFrame:
        """The key vocabulary: ``key``, ``template``, ``count`` (entries seen while mining)."""
        rows = [(k, self.template_of(k), self.counts_.get(k, 0)) for k in sorted(self.keys_)]
        return pd.DataFrame(rows, columns=["key", "template", "count"])

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

    def _tokens_of(self, cid: int, fixed: Fixed, display: bool = False) -> list[str] | None:
        """Drain's template tokens of cluster ``cid`` with the key's words filled in."""
        cluster = self.drain_.id_to_cluster.get(cid)
        if cluster is None:
            return None
        tokens = list(cluster.log_template_tokens)
        for pos, (prefix, suffix, shortest) in self.word_stats_.affixes.get(cid, {}).items():
            if pos < len(tokens) and tokens[pos] == PARAM_STR:
                tokens[pos] = wildcard_token(prefix, suffix, shortest, display)
        for pos, value in fixed:
            if 0 <= pos < len(tokens):
                tokens[pos] = value
        return tokens

    # ------------------------------------------------------------------ refinement into keys
    def _refine(
        self, masked_by_cid: dict[int, dict[str, None]], learn: bool
    ) -> tuple[dict[str, int], dict[str, tuple[int, ...]]]:
        """Key and parameter positions of every distinct masked message, given Drain's clusters.

        Drain merges messages that differ in one word ("VM Paused" / "VM Started", "Took 3 s to
        spawn" / "... to destroy"). A wildcard position whose values are all plain words, at most
        :attr:`max_word_values` of them, none of them also filling a wildcard of another template,
        is treated as constant: each value gets a key of its own. Keys whose templates share their
        constant skeleton are merged (:func:`~workbench.logs.template_refine.signature`). A message
        that matches no cluster (inference mode, cluster id 0) gets the key of its skeleton, if
        known.
        """
        keys: dict[str, int] = {}
        positions: dict[str, tuple[int, ...]] = {}
        todo = []
        for cid, members in masked_by_cid.items():
            split = [m.split() for m in members]
            if cid == 0:
                self._key_unmatched(members, split, keys, positions)
            else:
                todo.append(self._observe_cluster(cid, list(members), split, learn))
        if learn:
            clusters = self.drain_.id_to_cluster
            templates = {c: clusters[c].log_template_tokens for c in clusters}
            self.word_stats_.settle(list(self.word_stats_.positions), templates)
        for cid, members, split, template, wild in todo:
            self._key_cluster(cid, members, split, template, wild, learn, keys, positions)
        return keys, positions

    def _key_unmatched(
        self,
        members: Iterable[str],
        split: list[list[str]],
        keys: dict[str, int],
        positions: dict[str, tuple[int, ...]],
    ) -> None:
        """Messages no cluster matched: the key of their skeleton, else the unknown key."""
        for m, toks in zip(members, split, strict=True):
            key = self.key_signatures_.get(signature(toks), keyids.UNKNOWN)
            keys[m] = key
            if key != keyids.UNKNOWN:
                positions[m] = gap_param_positions(self._tokens_of(*self.keys_[key]), toks)

    def _observe_cluster(
        self, cid: int, members: list[str], split: list[list[str]], learn: bool
    ) -> tuple[int, list[str], list[list[str]], list[str], list[int]]:
        """Record (when learning) the words at the wildcards of cluster ``cid``; its work item."""
        template = list(self.drain_.id_to_cluster[cid].log_template_tokens)
        wild = [i for i, t in enumerate(template) if t == PARAM_STR]
        if learn and wild:
            self.word_stats_.observe(cid, wild, split)
            self.word_stats_.observe_alignment(cid, wild, split)
        return cid, members, split, template, wild

    def _key_cluster(
        self,
        cid: int,
        members: list[str],
        split: list[list[str]],
        template: list[str],
        wild: list[int],
        learn: bool,
        keys: dict[str, int],
        positions: dict[str, tuple[int, ...]],
    ) -> None:
        """Key and parameter positions of the messages of one cluster (new keys when learning)."""
        stats = self.word_stats_
        mixed = stats.mixed.get(cid)
        fixed_pos = [] if mixed else stats.split_positions(cid, wild)
        known: dict[Fixed, tuple[int, ...]] = {}  # parameter positions per key of the cluster
        for m, toks in zip(members, split, strict=True):
            if mixed:  # keyed by its own skeleton, at the pseudo-position -1
                fixed: Fixed = ((-1, stats.member_signature(toks, wild, mixed)),)
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
                continue
            pos = known.get(fixed)
            if pos is None:
                own = self._tokens_of(cid, fixed) or template
                first = self._tokens_of(*self.keys_[key]) if merged else None
                pos = known[fixed] = gap_param_positions(first, own)
            positions[m] = pos

    def _new_key(self, cid: int, fixed: Fixed) -> int:
        """A key for a new (cluster, words) pair: the key of its skeleton when merging, else a
        new one."""
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


def numeric_params(
    content: str, positions: tuple[int, ...], named: bool = False
) -> tuple[float, ...]:
    """The numbers among the raw tokens at a template's variable positions (masks hold no space, so raw
    and masked tokens align); with ``named``, also the number of a ``name=value`` token.

    >>> numeric_params("took 12 ms, 3.5e2 s, x7, [9].", (1, 3, 5, 6))
    (12.0, 350.0)
    >>> numeric_params("render done ms=943, ratio=0.54 user=bob", (2, 3, 4), named=True)
    (943.0, 0.54)
    """
    if not positions:
        return ()
    raw_tokens = content.split()
    n = len(raw_tokens)
    out = []
    for p in positions:
        if p >= n:
            break
        value = _token_value(raw_tokens[p], named)
        if value is not None:
            out.append(value)
    return tuple(out)


def _token_value(token: str, named: bool) -> float | None:
    """The number a raw token holds (see :func:`numeric_params`), None when it holds none."""
    tok = token.strip(_STRIP).rstrip(".")
    if named and "=" in tok:
        tok = tok.rpartition("=")[2].strip(_STRIP)
    # decimal digits only (what \d matches) are a number without the regular expression
    if tok.isdecimal() or _is_number(tok):
        value = float(tok)
        if isfinite(value):
            return value
    return None


def row_params(
    contents: list[str],
    masked: list[str | None],
    positions: dict[str, tuple[int, ...]],
    named: bool = False,
) -> list[tuple[float, ...]]:
    """Every row's :func:`numeric_params` given its content, its masked message (None: not
    parsed) and the parameter positions of each masked message. A message without parameter
    positions (most) costs one look-up, a repeated content a second.

    >>> row_params(["took 3 s", "took 3 s", "ok", ""], ["took <NUM> s"] * 2 + ["ok", None],
    ...            {"took <NUM> s": (1,), "ok": ()})
    [(3.0,), (3.0,), (), ()]
    """
    empty: tuple[float, ...] = ()
    seen: dict[str, tuple[float, ...]] = {}  # content -> its numbers (messages repeat)
    values: dict[str, float | None] = {}  # raw token -> its number (values repeat)
    out = []
    for c, m in zip(contents, masked, strict=True):
        pos = positions.get(m) if m is not None else None
        if not pos:
            out.append(empty)
            continue
        found = seen.get(c)
        if found is None:
            tokens = c.split()
            n, got = len(tokens), []
            for p in pos:
                if p >= n:
                    break
                tok = tokens[p]
                value = values.get(tok, _UNSEEN)
                if value is _UNSEEN:
                    value = values[tok] = _token_value(tok, named)
                if value is not None:
                    got.append(value)
            found = seen[c] = tuple(got)
        out.append(found)
    return out
