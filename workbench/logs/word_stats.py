"""Which wildcard positions of Drain's clusters hold words that name message kinds (rule 2 of
:mod:`workbench.logs.template_refine`).

A wildcard position whose values are a handful of plain words (``VM Paused`` / ``VM Started``) is
over-merged by Drain: each word is a message kind of its own. :class:`WordStats` records the values
seen at every wildcard while mining and decides which positions split keys; a position that ever
holds a value rather than a word becomes :data:`VARIABLE` for good.

>>> stats = WordStats(max_values=8)
>>> stats.observe(1, [1], [["VM", "Paused"], ["VM", "Started"], ["VM", "Resumed"]])
>>> stats.observe(2, [1], [["took", "<NUM>"], ["took", "3.5"]])
>>> stats.split_positions(1, [1]), stats.split_positions(2, [1])
([1], [])
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

from workbench.logs.template_refine import (
    PUNCT,
    common_start,
    is_plain_word,
    is_variable_token,
    signature,
    word_shape,
)

__all__ = ["VARIABLE", "WordStats"]

VARIABLE: frozenset[str] = frozenset()  #: marks a wildcard position known to hold a variable

_AFFIX_MAX = 64  # characters of common prefix / suffix remembered per wildcard
_DIGITS = re.compile(r"\d")


def _flows(word: str, owners: dict[str, list[int]]) -> bool:
    """A lower-case word seen at the wildcards of two clusters is a value passed between messages
    (a user or host name); words with capitals follow the convention of enumerated constants
    (states, event names) and keep naming message kinds."""
    return len(owners.get(word, ())) > 1 and word.strip(PUNCT).islower()


def _siblings(a: Sequence[str] | None, b: Sequence[str] | None) -> bool:
    """Two cluster templates alike but for one constant that holds a digit in both (``"api-0"``,
    ``"api-1"``): Drain split one set of messages on a numbered name (a pod, host or shard).

    >>> _siblings(["auth", "<*>", "pod=api-0"], ["auth", "<*>", "pod=api-1"])
    True
    >>> _siblings(["session", "opened", "<*>"], ["session", "closed", "<*>"])
    False
    """
    if a is None or b is None or len(a) != len(b):
        return False
    differ = [(x, y) for x, y in zip(a, b, strict=True) if x != y]
    return len(differ) == 1 and all(_DIGITS.search(t) and "<*>" not in t for t in differ[0])


def _numbered_family(values: set[str]) -> bool:
    """Several words that differ only in their digits (``IRQ0``, ``IRQ9``): one numbered value."""
    if len(values) < 2 or not any(c.isdigit() for v in values for c in v):
        return False
    return len({_DIGITS.sub("", v) for v in values}) == 1


class WordStats:
    """Which wildcard positions of which clusters hold a few plain words that name message kinds (rule 2).

    ``positions[cid][pos]`` is the set of word shapes seen there, or :data:`VARIABLE` once the
    position is known to be variable (a value that is no word, too many words, words that differ
    only in digits, or a lower-case word that also fills a wildcard of another cluster).
    ``owners[word]`` lists the clusters whose wildcards held ``word``; ``affixes[cid][pos]`` the
    common prefix, common suffix and shortest length of the values seen; ``mixed[cid]`` the
    positions of a misaligned cluster. A position never goes back from variable to split. All of
    it is plain data, saved by :meth:`workbench.logs.parser.LogParser.refine_state`.
    """

    def __init__(self, max_values: int) -> None:
        self.max_values = max_values
        self.positions: dict[int, dict[int, set[str] | frozenset[str]]] = {}
        self.owners: dict[str, list[int]] = {}
        # cluster -> position -> [common prefix, common suffix, shortest length] of its values
        self.affixes: dict[int, dict[int, list]] = {}
        self.mixed: dict[int, list[int]] = {}  # cluster -> positions holding values and words

    def observe_alignment(
        self, cid: int, wild: Sequence[int], messages: Sequence[Sequence[str]]
    ) -> list[int]:
        """Wildcard positions of ``cid`` that hold values in some messages and words in others.

        Two or more such positions mean Drain aligned messages of different shapes token by token
        (a multi-token variable shifted the words), so the cluster's template says nothing; its
        members are then keyed by their own skeleton (:meth:`member_signature`).
        """
        found = set(self.mixed.get(cid, ()))
        for pos in wild:
            if pos in found:
                continue
            kinds = {is_variable_token(toks[pos]) for toks in messages if pos < len(toks)}
            if len(kinds) == 2:
                found.add(pos)
        if len(found) >= 2:
            self.mixed[cid] = sorted(found)
        return self.mixed.get(cid, [])

    @staticmethod
    def member_signature(tokens: Sequence[str], wild: Sequence[int], mixed: Sequence[int]) -> str:
        """Skeleton of one message of a misaligned cluster (the shift may reach any wildcard)."""
        return " ".join(signature(tokens))

    def observe(self, cid: int, wild: Sequence[int], messages: Sequence[Sequence[str]]) -> None:
        """Record the values the wildcard positions ``wild`` of cluster ``cid`` take in ``messages``."""
        stats = self.positions.setdefault(cid, {})
        affixes = self.affixes.setdefault(cid, {})
        for pos in wild:
            seen = stats.get(pos, set())
            values: set[str] | None = None if seen is VARIABLE else set(seen)
            words = set()
            raw = set()
            for toks in messages:
                v = toks[pos] if pos < len(toks) else ""
                raw.add(v)
                shape = word_shape(v)
                if shape is None:
                    values = None
                    continue
                if shape == v and is_plain_word(v):
                    words.add(v)
                if values is not None:
                    values.add(shape)
            if values is not None and (
                len(values) > self._limit(values) or _numbered_family(values)
            ):
                values = None
            stats[pos] = VARIABLE if values is None else values
            seen_affix = affixes.get(pos)
            first = [seen_affix[0], *raw] if seen_affix else list(raw)
            last = (
                [seen_affix[1][::-1], *(v[::-1] for v in raw)]
                if seen_affix
                else [v[::-1] for v in raw]
            )
            shortest = min(len(v) for v in raw)
            if seen_affix:
                shortest = min(shortest, seen_affix[2])
            affixes[pos] = [
                common_start(first)[:_AFFIX_MAX],
                common_start(last)[:_AFFIX_MAX][::-1],
                shortest,
            ]
            for v in sorted(words):
                owners = self.owners.setdefault(v, [])
                if cid not in owners:
                    owners.append(cid)

    def _limit(self, values: set[str]) -> int:
        """How many words a position may hold and still name message kinds: ``max_values`` for
        words with capitals (enumerated constants: states, event names), about half as many for
        lower-case words, which are more often names (users, hosts) of an open-ended set."""
        if any(not v.islower() for v in values):
            return self.max_values
        return self.max_values // 2 + 1 if self.max_values else 0

    def settle(
        self, cids: Iterable[int], templates: Mapping[int, Sequence[str]] | None = None
    ) -> None:
        """Mark variable the positions of ``cids`` whose words also fill another cluster's
        wildcard, except a sibling's at the same position (:func:`_siblings`: the same message
        kinds that Drain split on a numbered name, given the clusters' ``templates``)."""
        for cid in cids:
            stats = self.positions.get(cid, {})
            for pos, values in stats.items():
                if values is not VARIABLE and any(
                    self._flows_from(cid, pos, v, templates or {}) for v in values
                ):
                    stats[pos] = VARIABLE

    def _flows_from(
        self, cid: int, pos: int, word: str, templates: Mapping[int, Sequence[str]]
    ) -> bool:
        if not _flows(word, self.owners):
            return False
        for other in self.owners[word]:
            if other == cid:
                continue
            sibling = _siblings(templates.get(cid), templates.get(other))
            if not (sibling and word in self.positions.get(other, {}).get(pos, ())):
                return True
        return False

    def split_positions(self, cid: int, wild: Sequence[int]) -> list[int]:
        """The wildcard positions of ``cid`` whose word fixes the key."""
        stats = self.positions.get(cid, {})
        return [p for p in wild if stats.get(p, VARIABLE) is not VARIABLE]
