"""Choosing a line format for a log nobody described: ``--format auto``.

Every built-in format and a few *inferred* generic layouts (a timestamp in one of the common
shapes, optionally a host, a level and a component, then the message) are tried on the first few
hundred lines. The winner parses the most lines (within 2 %); among those, one whose timestamps read
(a header cut in the wrong place seldom lands a timestamp), a built-in before an inferred layout, the
one that parses more lines, then the one
that needs the fewest templates (a header that leaves variable fields in the message multiplies
them), then the more specific one (more literal words in its header, then more fields). The choice is an ordinary :class:`~workbench.logs.formats.LogFormat`,
stored with the parser like any other.

>>> lines = [f"2024-03-0{d} 10:00:0{d} INFO disk: wrote {d} blocks" for d in range(1, 8)]
>>> choice = choose_format(lines)
>>> choice.format.name, choice.parsed, choice.lines
('inferred', 7, 7)
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from workbench.logs.formats import BUILTIN_FORMATS, LogFormat

__all__ = ["FormatChoice", "choose_format", "inferred_formats"]

SAMPLE_LINES = 300  #: lines tried per candidate

_LEVEL = (
    r"(?:TRACE|DEBUG|INFO|NOTICE|WARN|WARNING|ERROR|ERR|CRIT|CRITICAL|FATAL|SEVERE|ALERT|EMERG"
    r"|trace|debug|info|notice|warn|warning|error|err|crit|critical|fatal|severe)"
)

# (name, regex, strptime format or None for pandas' own inference, "%s" for epoch seconds)
_TIMESTAMPS: tuple[tuple[str, str, str | None], ...] = (
    ("iso", r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?", None),
    ("slash-date", r"\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2}(?:[.,]\d+)?", None),
    ("short-slash-date", r"\d{2}/\d{2}/\d{2} \d{2}:\d{2}:\d{2}", "%y/%m/%d %H:%M:%S"),
    ("syslog", r"[A-Z][a-z]{2} +\d{1,2} \d{2}:\d{2}:\d{2}", "%b %d %H:%M:%S"),
    ("ctime", r"[A-Z][a-z]{2} [A-Z][a-z]{2} +\d{1,2} \d{2}:\d{2}:\d{2} \d{4}", None),
    ("clf", r"\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4}", "%d/%b/%Y:%H:%M:%S %z"),
    ("epoch", r"\d{10}(?:\.\d+)?", "%s"),
)


@dataclass(frozen=True)
class FormatChoice:
    """The chosen format and what it did on the sample, with every candidate's score."""

    format: LogFormat
    description: str  # the built-in name, or the inferred layout as a header
    lines: int  # sample lines (non-empty)
    parsed: int
    templates: int
    timestamps: int
    candidates: list[dict[str, Any]] = field(default_factory=list)

    @property
    def share(self) -> float:
        """Parsed share of the sample."""
        return self.parsed / self.lines if self.lines else 0.0

    def __str__(self) -> str:
        return (
            f"format {self.description} ({self.parsed} of {self.lines} sample lines parsed, "
            f"{self.share:.1%}, {self.templates} templates)"
        )


def inferred_formats() -> list[tuple[str, LogFormat]]:
    """The generic layouts tried besides the built-ins: (header-like description, format)."""
    out = []
    for (name, ts, spec), host in itertools.product(_TIMESTAMPS, (False, True)):
        head = rf"^\[?(?P<Timestamp>{ts})\]?[\s,]+"
        desc = "<Timestamp>"
        if host:
            head += rf"(?P<Host>(?!{_LEVEL}\b)[\w.\-]+)\s+"
            desc += " <Host>"
        pattern = (
            head
            + rf"(?:[\[<]?(?P<Level>{_LEVEL})[\]>]?:?\s+)?"
            + r"(?:(?P<Component>[\w.$\-/()]+(?:\[\d+\])?):\s+)?"
            + r"(?P<Content>.*)$"
        )
        fmt = LogFormat.from_regex(
            pattern, name="inferred", timestamp_fields=("Timestamp",), timestamp_format=spec
        )
        out.append((f"inferred ({name} timestamp{', host' if host else ''}) {desc} "
                    "[<Level>] [<Component>:] <Content>", fmt))  # fmt: skip
    return out


def choose_format(lines: Iterable[str], *, n: int = SAMPLE_LINES) -> FormatChoice:
    """Try every candidate on the first ``n`` non-empty lines and return the best (see above).

    Raises ValueError when no candidate parses a single line.
    """
    from workbench.logs.parser import LogParser

    sample = [ln for ln in itertools.islice((str(x) for x in lines), 4 * n) if ln.strip()][:n]
    if not sample:
        raise ValueError("cannot choose a format: the log has no non-empty line")
    candidates: list[tuple[str, LogFormat]] = [(k, f) for k, f in BUILTIN_FORMATS.items()]
    candidates += inferred_formats()
    # cheap first pass: how many lines each candidate's pattern splits
    fits = [sum(f.split(ln) is not None for ln in sample) for _, f in candidates]
    best_fit = max(fits)
    if best_fit == 0:
        raise ValueError(
            "no built-in or inferred format fits this log; pass --format with a header such as "
            "'<Date> <Time> <Level>: <Content>'"
        )
    # "most lines" with a little slack: a loose layout (any seven words) must not beat the right
    # one because a handful of multi-line messages fit only the loose one
    floor = best_fit - max(1, int(0.02 * len(sample)))
    scored = []
    for i, ((desc, fmt), fit) in enumerate(zip(candidates, fits, strict=True)):
        row: dict[str, Any] = {"format": desc, "parsed": fit}
        if fit >= floor:
            df = LogParser(fmt).parse(sample, sessions=False)
            ok = df["parsed"].to_numpy(dtype=bool)
            row["templates"] = int(df.loc[ok, "key"].nunique())
            row["timestamps"] = int(df.loc[ok, "timestamp"].notna().sum())
            stamped = row["timestamps"] >= 0.9 * fit  # the header's timestamp reads
            key = (stamped, desc in BUILTIN_FORMATS, fit, -row["templates"], _specific(fmt), -i)
            scored.append((key, desc, fmt, row))
    rows = [
        {"format": d, "parsed": fit}
        for (d, _), fit in zip(candidates, fits, strict=True)
        if fit < floor
    ]
    scored.sort(key=lambda t: t[0], reverse=True)
    key, desc, fmt, row = scored[0]
    return FormatChoice(
        format=fmt,
        description=desc,
        lines=len(sample),
        parsed=row["parsed"],
        templates=row["templates"],
        timestamps=row["timestamps"],
        candidates=[r for *_, r in scored] + rows,
    )


def _specific(fmt: LogFormat) -> tuple[int, int]:
    """Literal letters and digits outside the fields ('sshd' in OpenSSH's header), then fields."""
    literal = re.sub(r"\(\?P<\w+>.*?\)|\\[sSdDwW][+*?]?|\W", "", fmt.pattern)
    return len(literal), len(fmt.fields)
