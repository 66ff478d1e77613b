"""Masks: the values replaced by ``<NAME>`` in a message before its template is mined.

Every block id, address, number or time then looks the same to the template miner, so messages
that differ only in such values share a template. A mask never matches whitespace, so masked and
raw tokens stay aligned (the parser reads parameter values from the raw token at a masked
position).

>>> Masker(DEFAULT_MASKS).mask("Receiving block blk_-12 src: /10.0.0.1:50010 after 3 ms")
'Receiving block <BLK> src: /<HOST> after <NUM> ms'
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from workbench.config import Config, require

__all__ = ["DEFAULT_MASKS", "Mask", "Masker"]


@dataclass(frozen=True)
class Mask(Config):
    """One masking rule applied to the content before template mining.

    The matched text is replaced by ``<name>`` so that, for instance, every block id looks the same to the
    template miner. Patterns must not match whitespace, so that masked and raw tokens stay aligned.
    """

    name: str  # shown in templates as <name>
    pattern: str  # a Python regular expression

    def validate(self) -> None:
        require(
            re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", self.name) is not None,
            f"mask name must be an identifier, got {self.name!r}",
        )
        try:
            re.compile(self.pattern)
        except re.error as exc:
            raise ValueError(f"mask {self.name!r}: invalid regular expression: {exc}") from exc


#: Masks applied by default, in order: HDFS block ids, UUIDs, domain names (a dot and a lower-case
#: top-level label), ``localhost`` or IP addresses with a port,
#: (lists of) IP addresses, clock times and durations (``12:30:05``, ``00:01``), weekday and month
#: names, hex numbers, long hexadecimal ids (request/tenant ids), and free-standing numbers. The
#: values of ``key=value`` pairs are left to the template refinement, which keeps the key.
DEFAULT_MASKS: tuple[Mask, ...] = (
    Mask("BLK", r"blk_-?\d+"),
    Mask(
        "UUID", r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"
    ),
    Mask(
        "HOST",
        r"(?<![\w.\-])(?:(?:[A-Za-z0-9][\w\-]*\.)+[a-z]{2,6}|localhost|\d{1,3}(?:\.\d{1,3}){3}):\d+"
        r"(?![\w.:])",
    ),
    Mask("IP", r"(?<![\w.])\d{1,3}(?:\.\d{1,3}){3}(?:,\d{1,3}(?:\.\d{1,3}){3})*(?![\w.])"),
    Mask("TIME", r"(?<![\w:])\d{1,2}:\d{2}(?::\d{2})?(?:[.,]\d+)?(?![\w:])"),
    Mask("WEEKDAY", r"\b(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)\b"),
    Mask("MONTH", r"\b(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)\b"),
    Mask("HEX", r"\b0[xX][0-9a-fA-F]+\b"),
    Mask("ID", r"\b(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{8,}\b"),
    Mask("NUM", r"(?<![\w.\-])[-+]?\d+(?:\.\d+)?(?![\w.])"),
)


_MASK_CACHE = 200_000  # tokens remembered by a Masker
_TEXT_WINDOW = 4096  # whole-text look-ups between two checks that they pay off
_PLAIN_NUMBER = re.compile(r"[-+]?[0-9]+(?:\.[0-9]+)?")
_PLAIN_UUID = re.compile(r"[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}")


class Masker:
    """All masks of a format in one pass: one regular expression with one alternative per mask.

    At each position the first mask (in order) that matches wins, so the result is that of applying
    the masks one after another except where a later mask would match across an earlier mask's text.

    >>> Masker(DEFAULT_MASKS).mask("took 12 s on 10.0.0.1:80 at 12:30:05")
    'took <NUM> s on <HOST> at <TIME>'
    """

    def __init__(self, masks: tuple[Mask, ...] | list[Mask]) -> None:
        self.names = [m.name for m in masks]
        self._cache: dict[str, str] = {}  # token -> masked token
        self._texts: dict[str, str] = {}  # whole text -> masked text (logs repeat messages)
        self._texts_seen = self._texts_hits = 0  # look-ups in it and hits, this window
        self._texts_off = 0  # texts left to mask without looking it up
        self._sequential = [(re.compile(m.pattern), f"<{m.name}>") for m in masks]
        self._regex: re.Pattern[str] | None = None
        # with the default masks a plain number or UUID (the common new tokens) is always
        # exactly one <NUM> or <UUID>
        self._shortcut = tuple(masks) == DEFAULT_MASKS
        self._replacement: dict[int, str] = {}
        if masks:
            try:  # a mask with named groups of its own keeps the one-by-one substitution
                regex = re.compile("|".join(f"(?P<m{i}>{m.pattern})" for i, m in enumerate(masks)))
            except re.error:
                return
            self._regex = regex
            self._replacement = {
                regex.groupindex[f"m{i}"]: r for i, (_, r) in enumerate(self._sequential)
            }

    def _sub(self, match: re.Match[str]) -> str:
        # the mask's own group encloses any groups inside its pattern, so it closes last
        return self._replacement[match.lastindex]  # type: ignore[index]

    def mask_token(self, token: str) -> str:
        """One whitespace-free token with its masked values replaced by ``<NAME>``."""
        if self._regex is not None:
            return self._regex.sub(self._sub, token)
        for rx, replacement in self._sequential:
            token = rx.sub(replacement, token)
        return token

    def mask(self, text: str) -> str:
        """``text`` with every masked value replaced by ``<NAME>``, tokens joined by one space.

        Masks never match whitespace, so each token is masked on its own and remembered: logs
        repeat most tokens (and many whole messages), and a dictionary look-up is much cheaper
        than the regular expressions.
        """
        if self._texts_off:  # whole messages rarely repeated of late: token by token only
            self._texts_off -= 1
            return self._tokens(text)
        masked_text = self._texts.get(text)
        self._texts_seen += 1
        if masked_text is not None:
            self._texts_hits += 1
            return masked_text
        masked_text = self._tokens(text)
        if len(self._texts) >= _MASK_CACHE:
            self._texts.clear()
        self._texts[text] = masked_text
        # a hit saves about five times what a miss costs: under 1 in 8 repeated, look-ups and
        # insertions cost more than they save, so they stop for a while
        if self._texts_seen >= _TEXT_WINDOW:
            if self._texts_hits * 8 < self._texts_seen:
                self._texts_off = 16 * _TEXT_WINDOW
            self._texts_seen = self._texts_hits = 0
        return masked_text

    def _tokens(self, text: str) -> str:
        """:meth:`mask` token by token (each token's mask remembered)."""
        tokens = text.split()
        try:  # no Python-level loop when every token is known
            return " ".join(map(self._cache.get, tokens))  # type: ignore[arg-type]
        except TypeError:  # a token not seen yet (None)
            token = self._token
            return " ".join([token(t) for t in tokens])

    def _token(self, token: str) -> str:
        """:meth:`mask_token`, remembered."""
        cache = self._cache
        masked = cache.get(token)
        if masked is None:
            if self._shortcut and _PLAIN_NUMBER.fullmatch(token):
                masked = "<NUM>"
            elif self._shortcut and _PLAIN_UUID.fullmatch(token):
                masked = "<UUID>"
            else:
                masked = self.mask_token(token)
            if len(cache) >= _MASK_CACHE:
                cache.clear()
            cache[token] = masked
        return masked
