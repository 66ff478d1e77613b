"""Refinement of Drain's clusters into log keys: what Drain splits that belongs together, and back.

Drain groups messages by token count and by how many tokens two messages share, which fails in two
known ways (Zhu et al., ICSE-SEIP 2019; Yu et al., Brain, 2023):

* **over-splitting**: a variable that spans a varying number of tokens (``1190 bytes sent`` /
  ``1190 bytes (1.16 KB) sent``, ``lifetime 00:01`` / ``lifetime <1 sec``) puts messages of one kind
  into clusters of different lengths, which Drain never compares;
* **over-merging**: two message kinds that differ in one word (``VM Paused`` / ``VM Started``) are
  merged into one template with a wildcard in place of the word.

The refinement works on top of Drain's clusters with generic rules, none naming any system's text:

1. *Merge over-split* (:func:`signature`): the constant skeleton of a template is its tokens without
   the variable-like ones (masked values, numbers, hex, qualified names, punctuation, units of
   measure after a number, the words of a quoted value; ``key=value`` reads ``key=``). Keys whose
   templates share a skeleton are one message kind whatever number of tokens their variables
   take, and are merged; a message of a new shape finds its key by its skeleton at ``transform``.
2. *Split over-merged* (:class:`~workbench.logs.word_stats.WordStats`, :func:`word_shape`): a
   wildcard position whose values are a handful of words (or ``key=word`` shapes) names message kinds, and each word gets a key,
   unless the words are values: they flow between templates (a user name at a wildcard of two
   templates), lower-case names go past about half of ``max_values``, they differ only in digits
   (``IRQ0``, ``IRQ9``) or sit in square brackets (Brain: a token constant across a group is
   constant). A wildcard keeps the ``key=`` and punctuation its values share.
3. *Misaligned clusters* (:meth:`~workbench.logs.word_stats.WordStats.observe_alignment`): when
   two or more wildcard positions hold values in some messages and words in others, Drain lined up messages of different shapes
   token by token; each message is then keyed by its own skeleton.
4. *Multi-word variables* (:func:`gapped_template`, :func:`gap_param_positions`): the template of a
   merged key keeps the tokens constant across its members and writes one ``<*>`` per variable run;
   its numbers are read one per run, so every message of the key has the same parameter vector.
5. *Shown text* (:func:`display_template`): ids, paths and values glued to other characters read
   ``<*>``; keys and parameters do not depend on it.

All state is plain data (str, int, lists, dicts) so a fitted parser round-trips through JSON.

>>> signature("<HOST> close, <NUM> bytes (<NUM> KB) sent, lifetime <*>".split())
('close,', 'sent,', 'lifetime')
>>> signature("<HOST> close, <NUM> bytes sent, lifetime <<NUM> sec".split())
('close,', 'sent,', 'lifetime')
>>> gapped_template([t.split() for t in ["a <NUM> B, b", "a <NUM> KB, b"]])
'a <NUM> <*>, b'
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

__all__ = [
    "PARAM_STR",
    "PUNCT",
    "UNITS",
    "common_start",
    "display_template",
    "gap_param_positions",
    "gapped_template",
    "is_plain_word",
    "is_variable_token",
    "param_positions",
    "signature",
    "wildcard_token",
    "word_shape",
]

PARAM_STR = "<*>"

#: Units of measure (sizes, durations, rates): a variable when they follow a number or a masked value.
UNITS = frozenset((
    "b", "kb", "mb", "gb", "tb", "pb", "kib", "mib", "gib", "tib", "byte", "bytes", "k", "m", "g",
    "ms", "us", "ns", "µs", "s", "sec", "secs", "second", "seconds", "min", "mins", "minute",
    "minutes", "h", "hr", "hrs", "hour", "hours", "d", "day", "days", "%", "kb/s", "mb/s", "b/s",
    "bps", "kbps", "mbps", "hz", "khz", "mhz", "ghz",
))  # fmt: skip

_MASK_TOKEN = re.compile(r"<[A-Za-z_*][A-Za-z0-9_*]*>")
#: Punctuation stripped around a token to see the word or value inside.
PUNCT = "()[]{}<>,;:.!?\"'=#@/\\|-+*&^%$~`"
_HEXISH = re.compile(r"(?=[0-9a-fA-F]*\d)[0-9a-fA-F]+|0[xX][0-9a-fA-F]+")
_NUMERIC = re.compile(r"[-+]?\d+(?:[.,:]\d+)*(?:[eE][-+]?\d+)?")
_DOTTED = re.compile(r"[A-Za-z_$][\w$\-]*(?:\.[\w$\-]+){2,}")
_AFFIX_HEAD = re.compile(r"[(\[{\"'#@]*(?:[A-Za-z_][\w.\-]*[=:(][(\[{\"'#@]*)?")
_AFFIX_STEM = re.compile(
    r"[(\[{\"'#@]*(?:[A-Za-z_][\w.\-]*[=:(][(\[{\"'#@]*|[A-Za-z_][\w\-]*(?:\.[\w\-]+)*\.+)?"
)
_AFFIX_TAIL = re.compile(r"[)\]}\"',;:.!?]*$")
_PATH = re.compile(r"(?:~|\.{1,2})?(?:/[\w.\-@+~%<>*]+){2,}/?|/[\w.\-@+~%<>*]+/")
_MASK_INSIDE = re.compile(r"(?=.*<[A-Za-z_*][A-Za-z0-9_*]*>)(?=.*?[\w/](?![^<]*>)).+")
_KEY_HEAD = re.compile(r"[A-Za-z_][A-Za-z_.\-]*(?:[=:(]|\.(?=<))")
_SLASHED_MASK = re.compile(r"/<[A-Za-z_*][A-Za-z0-9_*]*>")
_DIGITS = re.compile(r"\d")
_ID_TOKEN = re.compile(r"([(\[{\"']*)(.*?)([)\]}\"',;:.!?]*)")
_STEM_MASK = re.compile(
    r"[(\[{\"']*[A-Za-z_][\w\-]*(?:\.[\w\-]+)*\.<[A-Za-z_*][A-Za-z0-9_*]*>[)\]}\"',;:.!?]*"
)
_KV = re.compile(r"([\"'(\[{]*[A-Za-z_][\w.\-]*=)(.+)")
_QUALIFIED_CONSTANT = re.compile(
    r"(?:[A-Za-z_]+[=:])?[A-Za-z_][\w$]*(?:\.[\w$]+)*\.[A-Z][A-Z0-9_]+"
)
_ENCLOSED = re.compile(r"\[\w+\][,.;:!?]*")
_SHAPE = re.compile(r"[\"'(\[]*[A-Za-z][A-Za-z_\-]*[=:(\[][A-Za-z_\-=:()\[\]]*[\"')\],.;:!?]*")
_PLAIN_WORD = re.compile(
    r"[\"'(\[]?(?:[A-Za-z][A-Za-z_\-]*|[A-Z][A-Z_\-]*\d{1,2}|[A-Za-z]{2,}\d{1,2})[\"')\],.;:!?]*"
)


def is_plain_word(token: str) -> bool:
    """A word of letters (dashes, underscores) with optional quotes or punctuation around it; an
    upper-case word, or one of two letters or more, may end in up to two digits (``SOCKS5``,
    ``eth0``: names of protocols and interfaces).

    >>> is_plain_word("Paused"), is_plain_word("'spawn',"), is_plain_word("eth0"), is_plain_word("a1")
    (True, True, True, False)
    """
    return _PLAIN_WORD.fullmatch(token) is not None


def word_shape(token: str) -> str | None:
    """The token as a candidate constant of a message kind, or None when it looks like a value.

    Plain words qualify, and so do ``key=value`` and ``key(...)`` tokens made of letters and
    punctuation around masked values (``user=root``, ``(uid=<NUM>)``); masked values all read
    ``<*>`` in the shape. Tokens with digits, dots or slashes (names of hosts, files, classes) do not.

    A qualified upper-case constant (``android.intent.action.SCREEN_ON``) qualifies as well. A
    word in square brackets (``[LNKA]``) is a value printed for reference.

    >>> [word_shape(t) for t in ["user=root", "rhost=<IP>", "LOGIN(uid=<NUM>)", "a1", "a.b", "<NUM>"]]
    ['user=root', 'rhost=<*>', 'LOGIN(uid=<*>)', None, None, None]
    >>> word_shape("[LNKA]"), word_shape("'spawn',"), word_shape("(Lifecycle")
    (None, "'spawn',", '(Lifecycle')
    """
    if _ENCLOSED.fullmatch(token):
        return None
    if _PLAIN_WORD.fullmatch(token) or _QUALIFIED_CONSTANT.fullmatch(token):
        return token
    shape = _MASK_TOKEN.sub(PARAM_STR, token) if "<" in token else token
    core = shape.replace(PARAM_STR, "")
    if _SHAPE.fullmatch(core):
        return shape
    return None


def wildcard_token(
    common_prefix: str, common_suffix: str, shortest: int, display: bool = False
) -> str:
    """The wildcard for a position, keeping what all its values share around the value: a
    ``key=`` (``key:``, ``call(``) and punctuation in front, punctuation behind.

    ``common_prefix`` and ``common_suffix`` are those of all values seen, ``shortest`` the length
    of the shortest value. For display, a shared dotted stem (``core.``, ``com.apple.``) is kept
    too; keys are told apart without it.

    >>> wildcard_token("user=r", "", 8), wildcard_token("[a", "],", 5), wildcard_token("ab", "", 3)
    ('user=<*>', '[<*>],', '<*>')
    >>> wildcard_token("core.22", "", 9), wildcard_token("core.22", "", 9, display=True)
    ('<*>', 'core.<*>')
    """
    head = (_AFFIX_STEM if display else _AFFIX_HEAD).match(common_prefix)
    prefix = head.group(0) if head else ""
    tail = _AFFIX_TAIL.search(common_suffix)
    suffix = tail.group(0) if tail else ""
    room = shortest - len(prefix) - len(suffix)  # characters left for the shortest value
    pair = prefix[-1:] + suffix[:1] in ("()", "[]", "{}", '""', "''")  # an empty value in brackets
    if room < 0 or (room == 0 and not prefix.endswith(("=", ":")) and not pair):
        suffix = ""
        if len(prefix) > shortest or (len(prefix) == shortest and not prefix.endswith(("=", ":"))):
            prefix = ""
    return f"{prefix}{PARAM_STR}{suffix}"


def _core(token: str) -> str:
    """The token with masked values removed and surrounding punctuation stripped."""
    if "<" in token:
        token = _MASK_TOKEN.sub("", token)
    return token.strip(PUNCT)


def is_variable_token(token: str) -> bool:
    """True for tokens that hold a value rather than a word of the message.

    Masked values and wildcards (alone or with punctuation around them), numbers, hexadecimal
    strings with a digit, and pure punctuation. A token that keeps letters once its masked parts are
    removed (``uid=<NUM>``) is a *key* and stays constant.

    >>> [is_variable_token(t) for t in ["<NUM>", "(<NUM>", "0000000e", "12:30", "uid=<NUM>", "-"]]
    [True, True, True, True, False, True]
    """
    core = _core(token)
    if not core or (_STEM_MASK.fullmatch(token) is not None):
        return True
    return (
        _NUMERIC.fullmatch(core) is not None
        or _HEXISH.fullmatch(core) is not None
        or _DOTTED.fullmatch(core) is not None
    )


def _classify(tokens: Sequence[str]) -> list[bool]:
    """Per token: is it variable? Units of measure count as variable right after a variable token,
    and so do the words of a quoted value that spans several tokens (``tag="View Lock",``)."""
    out = [is_variable_token(t) for t in tokens]
    n = len(tokens)
    i = 0
    while i < n:
        quote = _opening_quote(tokens[i])
        if quote:
            end = next((j for j in range(i + 1, min(n, i + 9)) if quote in tokens[j]), None)
            if end is not None:
                for j in range(i + 1, end + 1):
                    out[j] = True
                i = end
        i += 1
    for i in range(1, n):
        if out[i - 1] and not out[i] and _core(tokens[i]).lower() in UNITS:
            out[i] = True
    return out


def _opening_quote(token: str) -> str:
    """The quote character a token opens and does not close (``"View``, ``tag='a``), else ''."""
    m = _KV.fullmatch(token)
    value = m.group(2) if m else token
    for q in "\"'":
        if value.startswith(q) and value.count(q) == 1:
            return q
    return ""


def signature(tokens: Sequence[str], keep: Iterable[int] = ()) -> tuple[str, ...]:
    """The constant skeleton of a template: its tokens without the variable-like ones (rule 1).

    A ``key=value`` token reads ``key=`` (the value is a variable) unless its position is in
    ``keep`` (a word that names the message kind).

    >>> signature(["Took", "<NUM>", "seconds", "to", "spawn"])
    ('Took', 'to', 'spawn')
    >>> signature(['tag="View', 'Lock",', "ws=null,"]), signature(["user=root"], keep=[0])
    (('tag=', 'ws='), ('user=root',))
    """
    kept = set(keep)
    out = []
    for i, (t, var) in enumerate(zip(tokens, _classify(tokens), strict=True)):
        if var:
            continue
        m = None if i in kept else _KV.fullmatch(t)
        out.append(m.group(1) if m else t)
    return tuple(out)


def _segments(tokens: Sequence[str]) -> tuple[list[str], list[list[str]]]:
    """Constants, and the variable runs around them (one more run than constants)."""
    consts: list[str] = []
    gaps: list[list[str]] = [[]]
    for t, var in zip(tokens, _classify(tokens), strict=True):
        if var:
            gaps[-1].append(t)
        else:
            consts.append(t)
            gaps.append([])
    return consts, gaps


def _render_gap(runs: list[list[str]]) -> list[str]:
    first = runs[0]
    if all(r == first for r in runs):
        return list(first)
    # the common leading and trailing tokens stay; the differing middle becomes one wildcard that
    # keeps the punctuation all members share around it
    n = 0
    while all(len(r) > n and r[n] == first[n] for r in runs):
        n += 1
    m = 0
    while all(len(r) - n > m and r[len(r) - 1 - m] == first[len(first) - 1 - m] for r in runs):
        m += 1
    middles = [" ".join(r[n : len(r) - m]) for r in runs]
    prefix = common_start(middles)
    suffix = common_start([x[::-1] for x in middles])[::-1]
    wildcard = wildcard_token(prefix, suffix, min(len(x) for x in middles), display=True)
    return [*first[:n], wildcard, *first[len(first) - m :]]


def gapped_template(members: Iterable[Sequence[str]]) -> str:
    """One template for templates that share a skeleton (rule 3).

    Constant tokens are kept; each variable run between two constants is kept when all members
    agree on it and written as one ``<*>`` otherwise (however many tokens it spans).

    >>> gapped_template([["lifetime", "<NUM>:<NUM>"], ["lifetime", "<<NUM>", "sec"]])
    'lifetime <*>'
    """
    members = [list(m) for m in members]
    parts = [_segments(m) for m in members]
    consts = parts[0][0]
    if any(len(c) != len(consts) for c, _ in parts):
        return " ".join(members[0])
    out: list[str] = []
    for i in range(len(consts) + 1):
        out.extend(_render_gap([g[i] for _, g in parts]))
        if i < len(consts):
            out.append(consts[i])
    return " ".join(out)


def display_template(tokens: Sequence[str]) -> str:
    """The template as shown: a token that kept one value in every message but carries an id
    (three digits or more: a host's port, a client or application id) or is a file path reads
    ``<*>``, keeping the brackets and punctuation around it; so does a token that joins a masked
    value to other characters (``/<HOST>``, ``rdd_<NUM>``, ``HTTP/<NUM>``) unless it is a
    ``key=`` form. Only the text changes; keys and parameters do not.

    >>> display_template(["renew", "[DFSClient_NONMAPREDUCE_1537864556_1]", "via", "ssh2"])
    'renew [<*>] via ssh2'
    >>> display_template(["ok", "/etc/httpd/workers2.properties", "from", "/<HOST>", "HTTP/1.1"])
    'ok <*> from <*> HTTP/1.1'
    """
    out = []
    for t in tokens:
        m = _ID_TOKEN.fullmatch(t)
        core = m.group(2) if m else t
        if (
            ("<" not in t and len(_DIGITS.findall(t)) >= 3)
            or _PATH.fullmatch(core)
            or _SLASHED_MASK.fullmatch(core)
            or (_MASK_INSIDE.fullmatch(core) and not _KEY_HEAD.match(core))
        ):
            out.append(f"{m.group(1)}{PARAM_STR}{m.group(3)}" if m else PARAM_STR)
        else:
            out.append(t)
    return " ".join(out)


def param_positions(tokens: Sequence[str]) -> tuple[int, ...]:
    """Token positions of a template whose raw values are parameters (a wildcard or a mask in them).

    >>> param_positions(["Took", "<NUM>", "seconds", "<*>"])
    (1, 3)
    """
    return tuple(i for i, t in enumerate(tokens) if "<" in t)


def gap_param_positions(key_tokens: Sequence[str] | None, tokens: Sequence[str]) -> tuple[int, ...]:
    """Parameter positions of a message whose key merges templates of several shapes.

    One position per variable run of the key's first template that starts with a masked value: the
    first token of the same run in ``tokens``. Every message of the key then gives its numbers in
    the same order and, as long as the runs hold numbers, the same count, whatever number of tokens
    each run takes. Without a key template (``None``) or when the skeletons differ, every masked
    position of ``tokens`` (:func:`param_positions`).

    >>> first = "close, <NUM> bytes sent, lifetime <TIME>".split()
    >>> gap_param_positions(first, "close, <NUM> bytes (<NUM> KB) sent, lifetime <<NUM> sec".split())
    (1, 7)
    """
    if key_tokens is None:
        return param_positions(tokens)
    key_consts, key_gaps = _segment_positions(key_tokens)
    consts, gaps = _segment_positions(tokens)
    if len(key_consts) != len(consts):
        return param_positions(tokens)
    out = []
    for key_gap, gap in zip(key_gaps, gaps, strict=True):
        if key_gap and gap and "<" in key_tokens[key_gap[0]] and "<" in tokens[gap[0]]:
            out.append(gap[0])
    return tuple(out)


def common_start(texts: Sequence[str]) -> str:
    """The longest start all ``texts`` share."""
    if not texts:
        return ""
    lo, hi = min(texts), max(texts)
    n = 0
    while n < len(lo) and lo[n] == hi[n]:
        n += 1
    return lo[:n]


def _segment_positions(tokens: Sequence[str]) -> tuple[list[int], list[list[int]]]:
    consts: list[int] = []
    gaps: list[list[int]] = [[]]
    for i, var in enumerate(_classify(tokens)):
        if var:
            gaps[-1].append(i)
        else:
            consts.append(i)
            gaps.append([])
    return consts, gaps
