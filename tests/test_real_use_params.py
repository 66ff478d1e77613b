"""A log in a layout no built-in format was written for: ISO timestamps, a level, a component in
brackets, a ``name=value`` message and a JSON tail carrying the request id. The numbers of
``name=value`` tokens (``ms=943``) are parameters, so a slow render is caught by its parameter
model; a run saved before they were keeps its vectors' length."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from workbench.cli import main
from workbench.logs.parser import LogParser
from workbench.logs.parser_state import parser_from_state, parser_to_state

HEADER = (
    '<Timestamp> <Level> \\[<Component>\\] <Content> \\{"request_id": "<Req>", "pod": "<Pod>"\\}'
)


def _requests(first: int, n: int, seed: int, slow: set[int] = frozenset()) -> list[str]:
    rng = random.Random(seed)
    lines, t = [], first * 1000
    for req in range(first, first + n):
        steps = [
            ("INFO", f"auth ok user={rng.choice(['alice', 'bob', 'carol'])}"),
            ("INFO", f"fetch items count={rng.randint(1, 50)}"),
            ("DEBUG", f"cache hit ratio={rng.random():.2f}"),
            (
                "INFO",
                f"render done ms={rng.randint(900, 990) if req in slow else rng.randint(5, 80)}",
            ),
        ]
        for level, msg in steps:
            t += rng.randint(1, 400)
            s = t / 1000
            stamp = f"2024-03-05T{10 + int(s // 3600):02d}:{int(s // 60) % 60:02d}:{s % 60:06.3f}Z"
            tail = json.dumps({"request_id": f"req-{req:05d}", "pod": f"api-{req % 3}"})
            lines.append(f"{stamp} {level} [svc-api] {msg} {tail}")
    return lines


@pytest.fixture(scope="module")
def logs(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("kv")
    (d / "train.log").write_text("\n".join(_requests(0, 300, seed=1)) + "\n")
    slow = set(range(1005, 1100, 10))
    (d / "test.log").write_text("\n".join(_requests(1000, 100, seed=2, slow=slow)) + "\n")
    return d


def test_name_value_numbers_are_parameters(logs, tmp_path, capsys):
    run = tmp_path / "run"
    argv = ["train", str(logs / "train.log"), "--format", HEADER, "--session", "field:Req"]
    assert main([*argv, "--out", str(run), "--preset", "paper"]) == 0
    assert main(["show", str(run)]) == 0
    shown = capsys.readouterr().out
    assert "[elapsed,param1]" in shown and "render done ms=<NUM>" in shown, shown
    out = tmp_path / "r.json"
    assert main(["detect", str(run), str(logs / "test.log"), "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["anomalies"]
    slow = {
        r["session"] for r in rows if r["rule"] == "parameter threshold" and "render" in r["raw"]
    }
    assert len(slow) >= 8, rows  # of the 10 slow renders


def test_a_state_saved_before_keeps_its_vectors(logs):
    lines = (logs / "train.log").read_text().splitlines()
    parser = LogParser(HEADER, session="field:Req")
    new = parser.parse(lines[:40])
    assert max(len(p) for p in new["params"]) == 1  # the number of 'count=38' and of 'ms=52'
    state = parser_to_state(parser)
    assert state["named_numbers"] is True
    del state["named_numbers"]  # as written by an earlier version
    old = parser_from_state(LogParser, json.loads(json.dumps(state)))
    assert old.named_numbers is False
    assert max(len(p) for p in old.transform(lines[:40])["params"]) == 0


def test_message_kinds_stay_apart_behind_a_json_tail(logs):
    """Read with the inferred ISO layout (the JSON tail left in the message), Drain splits the
    log by pod and merges the four messages of each pod into one cluster; the words that tell them
    apart fill the same position of every pod's cluster, which is no value passing between
    messages: each message kind keeps keys of its own."""
    from workbench.logs.autoformat import choose_format

    lines = (logs / "train.log").read_text().splitlines()
    parser = LogParser(choose_format(lines[:300]).format)
    df = parser.parse(lines)
    kinds = df["raw"].str.extract(r"\] (auth|fetch|cache|render) ")[0]
    keys = {
        kind: set(df.loc[kinds == kind, "key"]) for kind in ("auth", "fetch", "cache", "render")
    }
    for a in keys:
        for b in keys:
            assert a == b or not keys[a] & keys[b], keys
