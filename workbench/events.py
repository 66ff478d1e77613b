"""The events the workbench sends to whoever watches it (the widgets, a notebook cell).

Everything a view shows comes from the workbench through returned data and these events:
``'fit'`` (the workbench, after training), ``'progress'`` (a dict per epoch or batch),
``'detect'`` (the :class:`~workbench.detect.report.DetectionReport`) and ``'update'`` (an
:class:`~workbench.flagging.UpdateResult`, or None after an undo).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

__all__ = ["EVENTS", "Events"]

logger = logging.getLogger(__name__)

EVENTS = ("fit", "progress", "detect", "update")


class Events:
    """Listeners by event, and a safe way to call them (a base class of the workbench).

    >>> e = Events(); got = []
    >>> e.on("detect", got.append); e._emit("detect", 1); got
    [1]
    """

    _listeners: dict[str, list[Callable[[Any], None]]]

    def __init__(self) -> None:
        self._listeners = {e: [] for e in EVENTS}

    def on(self, event: str, callback: Callable[[Any], None]) -> None:
        """Call ``callback(payload)`` on ``event``: 'fit' (the workbench), 'progress' (a dict per
        epoch or batch), 'detect' (the report), 'update' (an ``UpdateResult``, or None after an
        undo). Callbacks may run in a worker thread."""
        if event not in self._listeners:
            raise ValueError(f"unknown event {event!r}; expected one of {EVENTS}")
        self._listeners[event].append(callback)

    def _emit(self, name: str, payload: Any) -> None:
        for cb in list(self._listeners[name]):
            try:
                cb(payload)
            except Exception:  # a broken view must not break the analysis
                logger.exception("a %r listener failed", name)
