"""The code's shape: module and function sizes of the packages, as JSON.

    python bench/code_shape.py [--top N]

A module counts its lines; a function counts the lines from its ``def`` to its last line (nested
functions count inside their parent too, and on their own). ``tests/test_code_shape.py`` holds the
limits: no module over ``MODULE_LIMIT`` lines, and no function over ``FUNCTION_LIMIT`` lines unless
its docstring says why, in a sentence that starts with ``Kept whole:``.
"""

from __future__ import annotations

import argparse
import ast
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("workbench", "widgets")
MODULE_LIMIT = 450
FUNCTION_LIMIT = 60
REASON = "Kept whole:"


def measure(root: Path = ROOT) -> dict:
    modules, functions = [], []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            text = path.read_text()
            rel = path.relative_to(root).as_posix()
            modules.append({"module": rel, "lines": len(text.splitlines())})
            for node in ast.walk(ast.parse(text)):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    doc = ast.get_docstring(node) or ""
                    functions.append(
                        {
                            "function": f"{rel}:{node.lineno} {node.name}",
                            "lines": node.end_lineno - node.lineno + 1,
                            "reason": REASON in doc,
                        }
                    )
    modules.sort(key=lambda m: -m["lines"])
    functions.sort(key=lambda f: -f["lines"])
    return {"modules": modules, "functions": functions}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--top", type=int, default=10)
    args = p.parse_args()
    m = measure()
    over_m = [x for x in m["modules"] if x["lines"] > MODULE_LIMIT]
    over_f = [x for x in m["functions"] if x["lines"] > FUNCTION_LIMIT]
    print(
        json.dumps(
            {
                "modules": len(m["modules"]),
                "module_limit": MODULE_LIMIT,
                "function_limit": FUNCTION_LIMIT,
                "largest_modules": m["modules"][: args.top],
                "largest_functions": m["functions"][: args.top],
                "modules_over_limit": len(over_m),
                "functions_over_limit": len(over_f),
                "functions_over_limit_without_reason": [
                    x["function"] for x in over_f if not x["reason"]
                ],
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
