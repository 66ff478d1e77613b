"""The codebase stays walkable: no module over about 400 lines, no long function without a reason."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("code_shape", ROOT / "bench" / "code_shape.py")
shape = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(shape)


def test_no_module_over_the_limit() -> None:
    over = [m for m in shape.measure()["modules"] if m["lines"] > shape.MODULE_LIMIT]
    assert not over, f"modules over {shape.MODULE_LIMIT} lines: {over}"


def test_long_functions_say_why() -> None:
    over = [
        f["function"]
        for f in shape.measure()["functions"]
        if f["lines"] > shape.FUNCTION_LIMIT and not f["reason"]
    ]
    assert not over, (
        f"functions over {shape.FUNCTION_LIMIT} lines without '{shape.REASON}' in the docstring: {over}"
    )
