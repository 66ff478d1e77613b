"""What a detection run actually checked, and a plain warning when it checked too little.

A report that says "no anomalies" is only worth something when entries were checked. Every
:class:`~workbench.workbench.DetectionReport` carries a :class:`Coverage`: lines read, parsed,
unparsed by reason, sessions and entries scored by the key model, entries scored by a parameter
model, entries judged by the unknown-key rule only, and readable timestamps. Its :attr:`warnings`
are single sentences naming the likely cause when fewer than half the lines parse, when no session
is scored, or when timestamps are missing where the session rule or a parameter model needs them.

>>> c = Coverage(lines=200, parsed=0, unparsed_reasons={"does not fit the format": 200},
...              format="hdfs")
>>> c.warnings[0]
'only 0 of 200 lines fit the format hdfs (0%): wrong format? This log may be in another layout than the training log (train with --format auto or a header that fits).'
>>> c.verdict(0)
'nothing was checked (0 of 200 lines parsed)'
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["Coverage"]


@dataclass
class Coverage:
    """Counts of what one detection run read and checked (see the module docstring)."""

    lines: int = 0
    parsed: int = 0
    unparsed_reasons: dict[str, int] = field(default_factory=dict)
    sessions: int = 0  # sessions scored by the key model
    sessions_reopened: int = 0  # of those, parts of a session that came back after it was closed
    key_entries: int = 0  # parsed entries inside a scored session
    param_entries: int = 0  # entries whose parameter vector a model scored
    loose_entries: int = 0  # parsed entries outside every session
    unknown_rule_entries: int = 0  # of those, judged by the unknown-key rule only (no param model)
    unknown_keys: int | None = 0  # entries whose template was never seen (None: not counted)
    timestamps: int | None = 0  # parsed entries with a readable timestamp (None: not counted)
    format: str | None = None
    session_rule: str | None = None
    rule_needs_timestamps: bool = False
    params_need_timestamps: bool = False
    problems: list[str] = field(default_factory=list)  # noted while parsing (timestamps, rule)

    @property
    def unparsed(self) -> int:
        return self.lines - self.parsed

    @property
    def checked(self) -> int:
        """Entries some detector looked at."""
        return self.key_entries + self.loose_entries

    @property
    def warnings(self) -> list[str]:
        """One plain sentence per problem, naming the likely cause."""
        out: list[str] = []
        fmt = self.format or "given"
        if self.lines == 0:
            return ["the input is empty: nothing was checked."]
        if self.parsed < 0.5 * self.lines:
            out.append(
                f"only {self.parsed} of {self.lines} lines fit the format {fmt} "
                f"({self.parsed / self.lines:.0%}): wrong format? This log may be in another "
                "layout than the training log (train with --format auto or a header that fits)."
            )
        ts_problem = next((p for p in self.problems if "timestamp" in p and "could not" in p), None)
        rule_problem = next((p for p in self.problems if p.startswith("session rule")), None)
        if self.parsed and self.sessions == 0:
            if rule_problem:
                out.append(
                    f"no session was scored by the key model: {rule_problem} (no year or no "
                    "timestamp in these lines?)."
                )
            elif self.session_rule is None:
                out.append(
                    f"no session was scored by the key model: the format {fmt} has no session "
                    "rule; give one with --session (window:SECONDS, regex:PATTERN, field:NAME)."
                )
            else:
                out.append(
                    f"no session was scored by the key model: the session rule "
                    f"{self.session_rule} matched none of the {self.parsed} parsed entries "
                    "(wrong session rule?)."
                )
        missing = 0 if self.timestamps is None else self.parsed - self.timestamps
        needs = self.rule_needs_timestamps or self.params_need_timestamps
        if self.parsed and needs and missing > 0.5 * self.parsed:
            who = (
                f"the session rule {self.session_rule}"
                if self.rule_needs_timestamps
                else "the parameter model's elapsed times"
            )
            cause = f" ({ts_problem})" if ts_problem else ""
            out.append(
                f"{missing} of {self.parsed} parsed entries have no readable timestamp{cause}, "
                f"and {who} need them: no year or an unexpected timestamp layout?"
            )
        elif ts_problem and self.parsed:
            out.append(f"{ts_problem}; those entries have no elapsed time.")
        return out

    def verdict(self, anomalies: int) -> str:
        """'N anomalies in M checked entries', or 'nothing was checked' when nothing was."""
        if self.checked == 0:
            return f"nothing was checked ({self.parsed} of {self.lines} lines parsed)"
        noun = "anomaly" if anomalies == 1 else "anomalies"
        text = f"{anomalies} {noun} in {self.checked} checked entries"
        if self.sessions == 0:
            text += " (the key model scored no session: only unknown keys and parameters checked)"
        return text

    def lines_summary(self) -> list[str]:
        """The coverage as a few short lines for a terminal or a report."""
        reasons = ", ".join(f"{n} {r}" for r, n in self.unparsed_reasons.items()) or "none"
        rule = self.session_rule or "none"
        stamps = "" if self.timestamps is None else f", {self.timestamps} entries with a timestamp"
        loose = (
            ""  # a chunked or distributed run does not count these
            if self.unknown_keys is None
            else f"; unknown-key rule only: {self.unknown_rule_entries} entries; "
            f"{self.unknown_keys} unknown-key entries"
        )
        reopened = (
            f" ({self.sessions_reopened} of them the rest of a session that came back after it "
            "was closed)"
            if self.sessions_reopened
            else ""
        )
        return [
            f"lines read {self.lines}, parsed {self.parsed}, unparsed {self.unparsed} ({reasons})",
            f"format {self.format}, session rule {rule}{stamps}",
            f"key model: {self.sessions} sessions{reopened}, {self.key_entries} entries scored; "
            f"parameter models: {self.param_entries} entries scored{loose}",
        ]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able counts, with the derived ones and the warnings."""
        d = asdict(self)
        d.update(unparsed=self.unparsed, checked=self.checked, warnings=self.warnings)
        return d
