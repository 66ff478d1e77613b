"""Built-in format patterns are matched without a time limit, so they must never backtrack
for long, on lines that fit and on lines that do not."""

import time

import pytest

from workbench.logs.formats import BUILTIN_FORMATS, LogFormat

HOSTILE = [
    "a " * 3000,
    "x" * 20000,
    "2024-01-01 10:00:00 " + "- " * 3000,
    "[" * 5000 + "]" * 5000,
    ": " * 4000,
    "\t".join(["field"] * 3000),
]


@pytest.mark.parametrize("name", sorted(BUILTIN_FORMATS))
def test_builtin_patterns_stay_fast_on_hostile_lines(name):
    fmt = BUILTIN_FORMATS[name]
    for line in HOSTILE:
        t = time.perf_counter()
        fmt.split(line)
        assert time.perf_counter() - t < 0.5, f"{name} took long on {line[:30]!r}"


def test_a_user_pattern_keeps_its_time_limit():
    fmt = LogFormat.from_regex(r"(?P<Content>(a|aa)+$)")
    assert not fmt.__dict__.get("_trusted")
    with pytest.raises(ValueError, match="ran over"):
        fmt.split("a" * 40 + "!")
