"""Line formats: how a raw log line splits into header fields and the message content.

A format is either a loghub-style *header* such as ``<Date> <Time> <Level> <Component>: <Content>``
(each ``<Name>`` becomes a named field, a space matches any run of whitespace, everything else is a
regular expression as in loghub's benchmark settings) or a regular expression with named groups. Either
way the message itself must be the group ``Content``.

Built-in formats cover the 16 loghub systems; ``hdfs``, ``openstack`` and ``bgl`` also carry their
default session rule and, for BGL, the per-line label.

>>> fmt = get_format("hdfs")
>>> fmt.split("081109 203615 148 INFO dfs.DataNode: Receiving block blk_1 src: /10.0.0.1:5")["Content"]
'Receiving block blk_1 src: /10.0.0.1:5'
>>> LogFormat.from_header("<Date> <Time> <Level>: <Content>").fields
('Date', 'Time', 'Level', 'Content')
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

import regex

__all__ = [
    "BUILTIN_FORMATS",
    "DEFAULT_MASKS",
    "LogFormat",
    "Mask",
    "Masker",
    "get_format",
    "header_to_regex",
]

_FIELD = re.compile(r"<(\w+)>")

#: Seconds one user pattern may spend on one line before the parse stops with an error (a
#: catastrophically backtracking pattern would otherwise hang).
REGEX_TIMEOUT = 1.0


class RegexTimeoutError(ValueError):
    """A user regular expression ran past :data:`REGEX_TIMEOUT` on one line."""


@dataclass(frozen=True)
class Mask:
    """One masking rule applied to the content before template mining.

    The matched text is replaced by ``<name>`` so that, for instance, every block id looks the same to the
    template miner. Patterns must not match whitespace, so that masked and raw tokens stay aligned.
    """

    name: str  # shown in templates as <name>
    pattern: str  # a Python regular expression

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", self.name):
            raise ValueError(f"mask name must be an identifier, got {self.name!r}")
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
        self._sequential = [(re.compile(m.pattern), f"<{m.name}>") for m in masks]
        self._regex: re.Pattern[str] | None = None
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
        masked_text = self._texts.get(text)
        if masked_text is not None:
            return masked_text
        cache = self._cache
        out = []
        for token in text.split():
            masked = cache.get(token)
            if masked is None:
                masked = self.mask_token(token)
                if len(cache) >= _MASK_CACHE:
                    cache.clear()
                cache[token] = masked
            out.append(masked)
        masked_text = " ".join(out)
        if len(self._texts) >= _MASK_CACHE:
            self._texts.clear()
        self._texts[text] = masked_text
        return masked_text


def header_to_regex(header: str) -> re.Pattern[str]:
    """Compile a loghub-style header into a regular expression with one named group per field.

    Literal text between fields is kept as regular-expression syntax (loghub headers use ``\\[`` and
    optional groups such as ``(\\[<PID>\\])?``); every space matches one or more whitespace characters.

    >>> header_to_regex("<Date> <Time> - <Content>").match("2024-01-01 10:00:00 - hello  world")["Content"]
    'hello  world'
    """
    names = _FIELD.findall(header)
    if "Content" not in names:
        raise ValueError(f"a header must contain <Content>: {header!r}")
    if len(set(names)) != len(names):
        raise ValueError(f"a header names a field twice: {header!r}")
    parts = re.split(r"(<\w+>)", header)
    out = []
    for i, part in enumerate(parts):
        m = _FIELD.fullmatch(part)
        if m:
            # A field may not run over the text that ends it: one followed by a space and then a field
            # is one or more non-space characters, one followed by a plain character (':', ']', '|'...)
            # does not contain it; the content runs to the end of the line.
            # Same matches as loghub's lazy '.*?', without its exponential backtracking on lines
            # that do not fit (a log in another layout).
            nxt = parts[i + 1] if i + 1 < len(parts) else ""
            body = ".*" if m.group(1) == "Content" and not nxt else ".*?"
            if m.group(1) != "Content" and nxt[:1] == " ":
                body = r"\S+" if not nxt.strip() else ".*?"
            elif m.group(1) != "Content" and nxt:
                escaped = nxt[0] == "\\" and len(nxt) > 1
                stop = nxt[1] if escaped else nxt[0]
                if not stop.isalnum() and (escaped or stop not in "()[]?*+.{}|^$\\"):
                    body = f"[^{re.escape(stop)}]*?"
            out.append(f"(?P<{m.group(1)}>{body})")
        else:
            # Spaces are flexible; a literal '-' is escaped, the rest is loghub regex syntax.
            literal = re.sub(r" +", r"\\s+", part).replace("-", r"\-")
            out.append(literal)
    try:
        return re.compile("^" + "".join(out) + "$")
    except re.error as exc:
        raise ValueError(f"header {header!r} is not a valid pattern: {exc}") from exc


@dataclass(frozen=True)
class LogFormat:
    """How to read one kind of log line.

    Attributes hold the compiled pattern plus the knowledge of which fields make the timestamp, the
    session and the label, and the template-mining settings that suit the system.
    """

    name: str  # a short name shown in reports
    pattern: str  # regular expression with named groups, including 'Content'
    timestamp_fields: tuple[str, ...] = ()  # fields joined by a space to form the timestamp
    # strptime format of that text (None lets pandas infer it, "%s" reads seconds since 1970); a
    # format without a year (syslog) gets the parser's year, by default the current one
    timestamp_format: str | None = None
    session_regex: str | None = (
        None  # default session rule: first match (group 1 if any) in Content
    )
    session_field: str | None = None  # or: a header field whose value names the session
    label_field: str | None = None  # a field holding a per-line label (BGL: '-' means normal)
    masks: tuple[Mask, ...] = DEFAULT_MASKS
    sim_th: float = 0.4  # Drain similarity threshold
    depth: int = 4  # Drain parse-tree depth
    header: str | None = None  # the loghub-style header this was built from, if any
    fields: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        try:
            compiled = re.compile(self.pattern)
        except re.error as exc:
            raise ValueError(f"format {self.name!r}: invalid regular expression: {exc}") from exc
        names = tuple(compiled.groupindex)
        if "Content" not in names:
            raise ValueError(f"format {self.name!r}: the pattern needs a named group 'Content'")
        for f in (*self.timestamp_fields, self.session_field, self.label_field):
            if f is not None and f not in names:
                raise ValueError(f"format {self.name!r}: field {f!r} is not in the pattern {names}")
        if not 0.0 < self.sim_th <= 1.0:
            raise ValueError(f"sim_th must be in (0, 1], got {self.sim_th}")
        if self.depth < 3:
            raise ValueError(f"depth must be at least 3, got {self.depth}")
        if self.session_regex is not None:
            re.compile(self.session_regex)
        object.__setattr__(self, "fields", names)
        try:
            object.__setattr__(self, "_regex", regex.compile(self.pattern))
        except regex.error as exc:
            raise ValueError(
                f"format {self.name!r}: unsupported regular expression: {exc}"
            ) from exc

    @classmethod
    def from_header(cls, header: str, name: str = "custom", **kwargs: object) -> LogFormat:
        """Build a format from a loghub-style header; Date/Time/Timestamp fields make the timestamp."""
        regex = header_to_regex(header)
        if "timestamp_fields" not in kwargs:
            kwargs["timestamp_fields"] = tuple(
                f
                for f in regex.groupindex
                if f.lower() in {"date", "time", "timestamp", "datetime"}
            )
        return cls(name=name, pattern=regex.pattern, header=header, **kwargs)  # type: ignore[arg-type]

    @classmethod
    def from_regex(cls, pattern: str, name: str = "custom", **kwargs: object) -> LogFormat:
        """Build a format from a regular expression with named groups (one must be ``Content``)."""
        return cls(name=name, pattern=pattern, **kwargs)  # type: ignore[arg-type]

    def split(self, line: str) -> dict[str, str] | None:
        """Return the named fields of ``line``, or None when it does not fit the format."""
        fast = self.__dict__.get("_trusted")
        if fast is None:  # a built-in pattern is matched by ``re``, faster; a user's has a limit
            trusted = self.pattern in _TRUSTED_PATTERNS
            fast = re.compile(self.pattern) if trusted else False
            object.__setattr__(self, "_trusted", fast)
        if fast:
            m = fast.match(line)
            if m is None or m.group("Content") is None:
                return None
            return m.groupdict()
        try:
            m = self._regex.match(line, timeout=REGEX_TIMEOUT)  # type: ignore[attr-defined]
        except TimeoutError:
            raise RegexTimeoutError(
                f"format {self.name!r}: the pattern ran over {REGEX_TIMEOUT:g} s on one line "
                f"(catastrophic backtracking?): {line[:80]!r}"
            ) from None
        if m is None or m.group("Content") is None:  # an optional Content group did not take part
            return None
        return m.groupdict()

    def with_options(self, **changes: object) -> LogFormat:
        """A copy with some attributes changed (masks, sim_th, session rule...)."""
        return replace(self, **changes)  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, object]:
        """JSON-able description, the inverse of :meth:`from_dict`."""
        return {
            "name": self.name,
            "pattern": self.pattern,
            "timestamp_fields": list(self.timestamp_fields),
            "timestamp_format": self.timestamp_format,
            "session_regex": self.session_regex,
            "session_field": self.session_field,
            "label_field": self.label_field,
            "masks": [[m.name, m.pattern] for m in self.masks],
            "sim_th": self.sim_th,
            "depth": self.depth,
            "header": self.header,
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> LogFormat:
        """Rebuild a format saved by :meth:`to_dict`; unknown keys are rejected."""
        allowed = set(cls.__dataclass_fields__) - {"fields"}
        unknown = set(data) - allowed
        if unknown:
            raise ValueError(f"unknown log-format keys: {sorted(unknown)}")
        kw = dict(data)
        kw["timestamp_fields"] = tuple(kw.get("timestamp_fields", ()))  # type: ignore[arg-type]
        if "masks" in kw:
            kw["masks"] = tuple(Mask(n, p) for n, p in kw["masks"])  # type: ignore[union-attr]
        return cls(**kw)  # type: ignore[arg-type]


def _h(name: str, header: str, **kw: object) -> LogFormat:
    return LogFormat.from_header(header, name=name, **kw)


_UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"

#: The built-in formats, by name. Headers follow the loghub benchmark settings.
BUILTIN_FORMATS: dict[str, LogFormat] = {
    f.name: f
    for f in (
        _h(
            "hdfs",
            "<Date> <Time> <Pid> <Level> <Component>: <Content>",
            timestamp_fields=("Date", "Time"),
            timestamp_format="%y%m%d %H%M%S",
            session_regex=r"(blk_-?\d+)",
        ),
        _h(
            "openstack",
            r"<Logrecord> <Date> <Time> <Pid> <Level> <Component> \[<ADDR>\] <Content>",
            timestamp_fields=("Date", "Time"),
            timestamp_format="%Y-%m-%d %H:%M:%S.%f",
            session_regex=rf"\[instance: ({_UUID})\]",
        ),
        _h(
            "bgl",
            "<Label> <Timestamp> <Date> <Node> <Time> <NodeRepeat> <Type> <Component> <Level> "
            "<Content>",
            timestamp_fields=("Time",),
            timestamp_format="%Y-%m-%d-%H.%M.%S.%f",
            session_field="Node",
            label_field="Label",
        ),
        _h(
            "hadoop",
            r"<Date> <Time> <Level> \[<Process>\] <Component>: <Content>",
            timestamp_format="%Y-%m-%d %H:%M:%S,%f",
        ),
        _h(
            "spark",
            "<Date> <Time> <Level> <Component>: <Content>",
            timestamp_format="%y/%m/%d %H:%M:%S",
        ),
        _h(
            "zookeeper",
            r"<Date> <Time> - <Level>  \[<Node>:<Component>@<Id>\] - <Content>",
            timestamp_format="%Y-%m-%d %H:%M:%S,%f",
        ),
        _h(
            "thunderbird",
            r"<Label> <Timestamp> <Date> <User> <Month> <Day> <Time> <Location> "
            r"<Component>(\[<PID>\])?: <Content>",
            timestamp_fields=("Date", "Time"),
            timestamp_format="%Y.%m.%d %H:%M:%S",
            session_field="User",
            label_field="Label",
        ),
        _h(
            "windows",
            "<Date> <Time>, <Level> <Component> <Content>",
            timestamp_format="%Y-%m-%d %H:%M:%S",
        ),
        _h(
            "linux",
            r"<Month> <Date> <Time> <Level> <Component>(\[<PID>\])?: <Content>",
            timestamp_fields=("Month", "Date", "Time"),
            timestamp_format="%b %d %H:%M:%S",
        ),
        _h(
            "android",
            "<Date> <Time> <Pid> <Tid> <Level> <Component>: <Content>",
            timestamp_format="%m-%d %H:%M:%S.%f",
        ),
        _h(
            "healthapp",
            r"<Time>\|<Component>\|<Pid>\|<Content>",
            timestamp_format="%Y%m%d-%H:%M:%S:%f",
        ),
        _h("apache", r"\[<Time>\] \[<Level>\] <Content>", timestamp_format="%a %b %d %H:%M:%S %Y"),
        _h("proxifier", r"\[<Time>\] <Program> - <Content>", timestamp_format="%m.%d %H:%M:%S"),
        _h(
            "openssh",
            r"<Date> <Day> <Time> <Component> sshd\[<Pid>\]: <Content>",
            timestamp_fields=("Date", "Day", "Time"),
            timestamp_format="%b %d %H:%M:%S",
        ),
        _h(
            "hpc",
            "<LogId> <Node> <Component> <State> <Time> <Flag> <Content>",
            timestamp_format="%s",
        ),
        _h(
            "mac",
            r"<Month>  <Date> <Time> <User> <Component>\[<PID>\]( \(<Address>\))?: <Content>",
            timestamp_fields=("Month", "Date", "Time"),
            timestamp_format="%b %d %H:%M:%S",
        ),
    )
}

#: Patterns of the built-in formats: written here, checked against runaway backtracking by the
#: tests, so they are matched without the time limit user patterns get.
_TRUSTED_PATTERNS: frozenset[str] = frozenset(f.pattern for f in BUILTIN_FORMATS.values())


def get_format(spec: str | LogFormat) -> LogFormat:
    """Resolve a built-in name (case-insensitive), a loghub-style header, or a format object.

    >>> get_format("BGL").label_field
    'Label'
    >>> get_format("<Level>: <Content>").fields
    ('Level', 'Content')
    """
    if isinstance(spec, LogFormat):
        return spec
    key = spec.strip().lower()
    if key in BUILTIN_FORMATS:
        return BUILTIN_FORMATS[key]
    if "(?P<" in spec:
        return LogFormat.from_regex(spec)
    if "<Content>" in spec:
        return LogFormat.from_header(spec)
    raise ValueError(
        f"unknown log format {spec!r}: use one of {sorted(BUILTIN_FORMATS)}, a loghub-style header "
        "containing <Content>, or a regular expression with a named group (?P<Content>...)"
    )
