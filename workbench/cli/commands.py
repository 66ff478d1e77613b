"""The sub-commands of ``deeplog-workbench``, each defined beside the code it drives."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def _lazy(module: str, name: str) -> Callable[[Any], None]:
    def add(subparsers: Any) -> None:
        getattr(importlib.import_module(module), name)(subparsers)

    return add


COMMANDS = [
    _lazy("workbench.logs.parse_command", "add_parse_command"),
    _lazy("workbench.cli.parse_cluster", "add_parse_cluster_options"),
    _lazy("workbench.simulate.command", "add_simulate_command"),
    _lazy("workbench.eval.command", "add_evaluate_command"),
    _lazy("workbench.cli.pipeline", "add_pipeline_commands"),
]
