"""A log read in chunks is decoded as when it is read whole: the same raw text, errors and notes
on every line, odd bytes included (the fast paths of chunked reading must not change a row)."""

from __future__ import annotations

import gzip

import pandas as pd
import pytest

from workbench.detect.streaming import read_chunks
from workbench.logs.parser import LogParser
from workbench.logs.reading import TextLines, read_texts

ODD = (
    b"INFO took 3 s\r\n"
    b"INFO two carriage returns 4 s\r\r\n"
    b"\n"
    b"   \n"
    b"WARN bad \xff\xfe byte 5 s\n"
    b"INFO a nul \x00 byte\n"
    b"INFO " + b"x" * 300 + b"\n"
    b"\xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8 binary\n"
    b"INFO caf\xc3\xa9 7 s\n"
    b"nospace\n"
    b"INFO last line without newline 8 s"
)


@pytest.fixture(scope="module")
def parser():
    p = LogParser("<Level> <Content>", max_line_bytes=200)
    p.fit(["INFO took 1 s", "WARN bad byte 2 s", "INFO x y"])
    return p


@pytest.mark.parametrize("chunk", [1, 3, 100])
@pytest.mark.parametrize("gz", [False, True])
def test_chunks_parse_as_the_whole_log(parser, tmp_path, chunk, gz):
    path = tmp_path / ("odd.log.gz" if gz else "odd.log")
    path.write_bytes(gzip.compress(ODD) if gz else ODD)
    whole = parser.transform(str(path), sessions=False)
    parts, first = [], 1
    for lines in read_chunks(str(path), chunk, parser.max_line_bytes):
        assert isinstance(lines, TextLines)
        parts.append(parser.transform(lines, first_line=first, sessions=False))
        first += len(lines)
    chunked = pd.concat(parts, ignore_index=True)
    cols = ["line", "raw", "key", "params", "parsed", "error"]
    assert (
        chunked[cols].astype(object).values.tolist() == whole[cols].astype(object).values.tolist()
    )
    assert whole["error"].notna().sum() >= 4  # the odd lines are there


def test_lines_given_as_a_list_pass_as_they_are():
    assert [len(c) for c in read_chunks(iter([b"a", b"b", b"c"]), 2)] == [2, 1]
    assert list(read_texts(TextLines(["a\r", "b"]))) == ["a\r", "b"]  # already decoded


@pytest.mark.parametrize("rule", [None, "field:Node", "regex:core\\.(\\d+)"])
def test_detection_parses_without_unused_header_fields(rule):
    from workbench.detect.chunked import parse_lines
    from workbench.logs.sessions import SessionRule

    lines = [
        "- 1117838570 2005.06.03 R02-M1-N0 2005-06-03-15.42.50.675872 R02-M1-N0 RAS KERNEL INFO "
        f"instruction cache parity error corrected core.{i % 3}"
        for i in range(5)
    ]
    p = LogParser("bgl")
    p.fit(lines)
    r = SessionRule.parse(rule) if rule else None
    full = parse_lines(p, r, lines)
    lean = parse_lines(p, r, lines, fields=())
    assert "Component" in full.columns and "Component" not in lean.columns
    cols = ["line", "key", "params", "session", "label", "timestamp", "parsed"]
    assert lean[cols].astype(object).values.tolist() == full[cols].astype(object).values.tolist()
    assert lean["session"].notna().all()


def test_a_list_of_byte_lines_parses_as_the_file(parser, tmp_path):
    path = tmp_path / "odd.log"
    path.write_bytes(ODD)
    whole = parser.transform(str(path), sessions=False)
    cols = ["line", "raw", "key", "params", "parsed", "error"]
    for lines in (ODD.split(b"\n"), [*ODD.split(b"\n"), b""], [b"INFO took 3 s\n", b"x"]):
        got = parser.transform(lines, sessions=False)  # decoded as one block, or line by line
        one = pd.concat([parser.transform([x], sessions=False) for x in lines])
        assert got[cols[1:]].astype(object).values.tolist() == (
            one[cols[1:]].astype(object).values.tolist()
        )
    got = parser.transform(ODD.split(b"\n"), sessions=False)
    assert got[cols].astype(object).values.tolist() == whole[cols].astype(object).values.tolist()
