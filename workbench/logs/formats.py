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
from collections.abc import Mapping
from dataclasses import dataclass, replace
from operator import itemgetter
from typing import Any

import regex

from workbench.config import Config, require
from workbench.logs.masks import DEFAULT_MASKS, Mask

__all__ = [
    "BUILTIN_FORMATS",
    "REGEX_TIMEOUT",
    "LogFormat",
    "RegexTimeoutError",
    "field_columns",
    "get_format",
    "header_to_regex",
    "unmatched_hint",
]

_FIELD = re.compile(r"<(\w+)>")

#: Seconds one user pattern may spend on one line before the parse stops with an error (a
#: catastrophically backtracking pattern would otherwise hang).
REGEX_TIMEOUT = 1.0


class RegexTimeoutError(ValueError):
    """A user regular expression ran past :data:`REGEX_TIMEOUT` on one line."""


def field_columns(
    fields: list[dict[str, str] | None], names: list[str]
) -> dict[str, list[str | None]]:
    """Each named header field (of :meth:`LogFormat.split`'s dicts) as a column of values, None
    on rows that did not fit.

    >>> field_columns([{"A": "1", "B": "x"}, None], ["A", "B"])
    {'A': ['1', None], 'B': ['x', None]}
    """
    if not names:
        return {}
    if None in fields:
        empty = dict.fromkeys(names)
        fields = [f or empty for f in fields]
    return {name: list(map(itemgetter(name), fields)) for name in names}  # type: ignore[arg-type]


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


def unmatched_hint(fmt: Any) -> str:
    """Why a user's header may fit no line: its literal text is a regular expression, so an
    unescaped bracket, brace, dot or parenthesis is not the character itself ("" when none).

    >>> print(unmatched_hint(LogFormat.from_header("<Date> [<Level>] <Content>")))
    ; header text is a regular expression: write '\\[' '\\]' to match those characters
    """
    header = getattr(fmt, "header", None)
    if not header:
        return ""
    literal = _FIELD.sub(" ", re.sub(r"\\.", "", header))
    special = [c for c in "[]{}().*+?|^$" if c in literal]
    if not special:
        return ""
    written = " ".join(f"'\\{c}'" for c in special)
    return f"; header text is a regular expression: write {written} to match those characters"


@dataclass(frozen=True)
class LogFormat(Config):
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

    def validate(self) -> None:
        """Check the pattern and the fields it must name; keep its compiled forms."""
        try:
            compiled = re.compile(self.pattern)
        except re.error as exc:
            raise ValueError(f"format {self.name!r}: invalid regular expression: {exc}") from exc
        names = tuple(compiled.groupindex)
        require(
            "Content" in names, f"format {self.name!r}: the pattern needs a named group 'Content'"
        )
        for f in (*self.timestamp_fields, self.session_field, self.label_field):
            require(
                f is None or f in names,
                f"format {self.name!r}: field {f!r} is not in the pattern {names}",
            )
        require(0.0 < self.sim_th <= 1.0, f"sim_th must be in (0, 1], got {self.sim_th}")
        require(self.depth >= 3, f"depth must be at least 3, got {self.depth}")
        if self.session_regex is not None:
            re.compile(self.session_regex)
        object.__setattr__(self, "_fields", names)
        try:
            object.__setattr__(self, "_regex", regex.compile(self.pattern))
        except regex.error as exc:
            raise ValueError(
                f"format {self.name!r}: unsupported regular expression: {exc}"
            ) from exc

    @property
    def fields(self) -> tuple[str, ...]:
        """The pattern's named groups, in order (one is ``Content``)."""
        return self.__dict__["_fields"]

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

    @property
    def trusted_regex(self) -> re.Pattern[str] | None:
        """The compiled pattern of a built-in format (matched by ``re`` without a time limit, as
        :meth:`split` does), None for a user's pattern."""
        fast = self.__dict__.get("_trusted")
        if fast is None:  # a built-in pattern is matched by ``re``, faster; a user's has a limit
            trusted = self.pattern in _TRUSTED_PATTERNS
            fast = re.compile(self.pattern) if trusted else False
            object.__setattr__(self, "_trusted", fast)
        return fast or None

    def split(self, line: str) -> dict[str, str] | None:
        """Return the named fields of ``line``, or None when it does not fit the format."""
        fast = self.trusted_regex
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

    def to_dict(self) -> dict[str, Any]:
        """JSON-able description, the inverse of :meth:`from_dict` (masks as ``[name, pattern]``
        pairs, as parser states store them)."""
        data = super().to_dict()
        data["masks"] = [[m.name, m.pattern] for m in self.masks]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LogFormat:
        """Rebuild a format saved by :meth:`to_dict`; unknown keys are rejected."""
        if isinstance(data, Mapping) and "masks" in data:
            data = {**data, "masks": tuple(Mask(n, p) for n, p in data["masks"])}
        return super().from_dict(data)


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
#: The built-in formats' session patterns: matched by ``re``, without a time limit.
TRUSTED_SESSION_PATTERNS: frozenset[str] = frozenset(
    f.session_regex for f in BUILTIN_FORMATS.values() if f.session_regex
)


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
