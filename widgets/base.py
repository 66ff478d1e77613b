"""What every view shares: a task runner that keeps the notebook live, a status line, figure refresh.

Long work (training, an online update, detection over a big log) runs in a worker thread so the
kernel keeps answering clicks: the Stop button can reach a training loop, and the notebook never looks
frozen. Each view shows a busy line while its task runs. For tests, ``TaskRunner(sync=True)`` runs the
same code inline, so a ``.click()`` has finished everything when it returns.

>>> r = TaskRunner(sync=True)
>>> out = []
>>> r.run(lambda: 41 + 1, on_done=out.append), out
(True, [42])
"""

from __future__ import annotations

import html
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import ipywidgets as W
import plotly.graph_objects as go

__all__ = ["CSS", "PlotSlot", "TaskRunner", "View", "refresh_figure"]

logger = logging.getLogger(__name__)


class TaskRunner:
    """Runs one long task at a time off the main thread (or inline when ``sync``).

    ``run`` returns False, and runs nothing, while another task is under way: the views say so
    instead of queueing clicks. ``on_done`` gets the task's result and ``on_error`` its exception;
    both run in the worker thread, after the runner is free again, so they may start a next task.
    """

    def __init__(self, sync: bool = False) -> None:
        self.sync = sync
        self._lock = threading.Lock()
        self._running: str | None = None
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> str | None:
        """Label of the task under way, or None."""
        return self._running

    def run(
        self,
        fn: Callable[[], Any],
        *,
        on_done: Callable[[Any], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
        label: str = "task",
    ) -> bool:
        with self._lock:
            if self._running is not None:
                return False
            self._running = label

        def body() -> None:
            # BaseException: a KeyboardInterrupt (how a training loop is stopped) or a SystemExit
            # from the task must end the task like any error, never leave the runner busy for good.
            try:
                try:
                    result = fn()
                finally:
                    self._running = None
            except BaseException as exc:
                logger.exception("%s failed", label)
                if on_error is not None:
                    try:
                        on_error(exc)
                    except BaseException:
                        logger.exception("reporting the failure of %s", label)
                return
            if on_done is not None:
                try:
                    on_done(result)
                except BaseException as exc:
                    logger.exception("after %s", label)
                    if on_error is not None:
                        try:
                            on_error(exc)
                        except BaseException:
                            logger.exception("reporting the failure after %s", label)

        if self.sync:
            body()
        else:
            self._thread = threading.Thread(target=body, name=f"workbench-{label}", daemon=True)
            self._thread.start()
        return True

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the current task, and any task its ``on_done`` started, has ended.

        Returns True when nothing runs any more, False on timeout.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            thread = self._thread
            if thread is None:
                return self._running is None
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            thread.join(left)
            if thread.is_alive():
                return False
            if self._thread is thread:  # no follow-up task was started
                return self._running is None


CSS = """
<style>
.dl-app { font-size: 15px; }
.dl-title { font-size: 22px; font-weight: 600; color: #1f2933; }
.dl-status { min-height: 1.6em; color: #323f4b; }
.dl-error { color: #b42318; font-weight: 600; }
.dl-busy { color: #0072B2; font-weight: 600; }
.dl-card { border: 1px solid #e4e7eb; border-radius: 6px; padding: 8px 12px; background: #f9fafb; }
.dl-row { border-bottom: 1px solid #e4e7eb; align-items: center; }
.dl-row-selected { background: #f6e6f0; }
.dl-row-changed { background: #fff4d6; }
.dl-row-cleared { opacity: 0.55; }
.dl-row-cleared .dl-state { color: #009E73; }
.dl-row-new { background: #fde8e1; box-shadow: inset 4px 0 0 #D55E00; }
.dl-row-confirmed { box-shadow: inset 4px 0 0 #b42318; }
.dl-row-confirmed .dl-state { color: #b42318; }
.dl-row-fp { box-shadow: inset 4px 0 0 #009E73; }
.dl-msg.jupyter-button, .dl-msg { background: transparent; box-shadow: none; text-align: left;
  justify-content: flex-start; font-size: 14px; font-weight: 500; color: #1f2933; padding: 0 6px;
  height: auto; min-height: 24px; white-space: nowrap; overflow: hidden; text-overflow: ellipsis;
  cursor: pointer; }
.dl-msg:hover { text-decoration: underline; background: #eef2f6; }
.dl-counts { font-size: 14px; padding: 2px 0; }
.dl-context-hit { background: #f6e6f0; font-weight: 600; }
.dl-context-msg { white-space: nowrap; overflow: hidden; text-overflow: ellipsis; max-width: 900px; }
.dl-line { display: flex; align-items: center; min-width: 0; }
.dl-cell { display: inline-block; vertical-align: middle; overflow: hidden; text-overflow: ellipsis;
           white-space: nowrap; padding: 0 6px; flex: none; }
.dl-raw { color: #323f4b; }
.dl-cands { color: #52606d; font-size: 13px; text-align: right; }
.dl-state { font-weight: 600; }
.dl-sort { padding: 0 6px; text-align: left; font-weight: 600; }
.dl-header { border-bottom: 2px solid #1f2933; }
.dl-raw { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 13px; }
.dl-badge { display: inline-block; border-radius: 10px; padding: 0 8px; font-size: 12px;
            color: #fff; background: #0072B2; }
.dl-badge-key { background: #0072B2; } .dl-badge-unknown { background: #7b2cbf; }
.dl-badge-session { background: #5f6b7a; } .dl-badge-parameter { background: #D55E00; }
.dl-table { border-collapse: collapse; font-size: 13px; }
.dl-table td, .dl-table th { border-bottom: 1px solid #e4e7eb; padding: 2px 8px; text-align: left; }
</style>
"""


class View(W.VBox):
    """Base of the views: holds the workbench object, a runner, a status line and a busy flag.

    Subclasses build their controls in ``__init__`` and implement :meth:`refresh`, which redraws from
    the workbench; :meth:`bind` points the view at another workbench (after loading new logs).
    """

    #: workbench events after which this view redraws itself
    refresh_on: tuple[str, ...] = ()

    def __init__(self, wb: Any = None, *, runner: TaskRunner | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_class("dl-app")
        self.wb: Any = None
        self.runner = runner if runner is not None else TaskRunner()
        self.status = W.HTML(value="")
        self.status.add_class("dl-status")

    # ------------------------------------------------------------------ binding and refreshing

    def bind(self, wb: Any) -> None:
        """Show ``wb`` from now on, and redraw whenever it reports one of :attr:`refresh_on`."""
        self.wb = wb
        if wb is not None:
            for event in self.refresh_on:
                wb.on(event, self._on_wb_event)
            self.refresh_safely()

    #: a view in a hidden tab redraws when it is shown (:meth:`fit_width`), not on every event
    hidden = False
    _dirty = False

    def _on_wb_event(self, *args: Any, **kwargs: Any) -> None:
        if self.hidden:
            self._dirty = True
            return
        self.refresh_safely()

    def refresh_safely(self) -> None:
        """:meth:`refresh`, with a failure shown in the status line instead of raised.

        A view must never break the app or the task that sent an event (say, a workbench that
        cannot build workflows before it is trained).
        """
        try:
            self.refresh()
        except Exception as exc:
            logger.exception("%s could not refresh", type(self).__name__)
            self.say(f"could not show this yet: {exc}", "error")

    def refresh(self) -> None:  # pragma: no cover - overridden
        """Redraw from the workbench."""

    def figures(self) -> list[go.FigureWidget]:
        """The plot widgets of this view (the app resizes them when the view's tab is shown)."""
        slots = [v for v in vars(self).values() if isinstance(v, PlotSlot)]
        return [s.widget for s in slots if s.widget is not None]

    def fit_width(self) -> None:
        """Let every plot take the width of its (now visible) container.

        A plot drawn inside a hidden tab falls back to plotly's default 700 px; switching
        ``autosize`` off and on makes the browser measure the container again.
        """
        self.hidden = False
        if self._dirty:
            self._dirty = False
            self.refresh_safely()
        for slot in [v for v in vars(self).values() if isinstance(v, PlotSlot)]:
            slot.reveal()
        for fw in self.figures():
            fw.layout.autosize = False
            fw.layout.autosize = True

    # ------------------------------------------------------------------------- status and tasks

    def say(self, text: str, kind: str = "info") -> None:
        """Show a status line (``kind``: 'info', 'busy' or 'error'); text is escaped."""
        icon = {"busy": "⏳ ", "error": "⚠ "}.get(kind, "")
        self.status.value = f'<span class="dl-{kind}">{icon}{html.escape(text)}</span>'

    def run_task(
        self,
        label: str,
        fn: Callable[[], Any],
        on_done: Callable[[Any], None] | None = None,
    ) -> bool:
        """Run ``fn`` through the runner with a busy line; errors end up in the status line."""
        if self.runner.running is not None:
            self.say(f"busy with {self.runner.running}: try again when it ends", "error")
            return False
        self.say(f"{label}…", "busy")

        def failed(exc: BaseException) -> None:
            if isinstance(exc, KeyboardInterrupt):
                self.say(f"{label}: stopped, model kept", "error")
            else:
                self.say(f"{label} failed: {exc or type(exc).__name__}", "error")

        return self.runner.run(fn, on_done=on_done, on_error=failed, label=label)


class PlotSlot:
    """A place for one plot: updated in place when it can be, replaced by a new widget when not.

    When the trace names are the same (a new epoch, a new selection, another key with the same
    levels) each trace is updated in place inside one ``batch_update``, which the browser redraws
    once without flicker. When they differ, a new ``FigureWidget`` is built from the complete figure
    and swapped into :attr:`box`: a new widget carries its whole figure in its initial state, while a
    burst of delete/add-trace messages can be lost if it reaches the browser before the widget's
    front end has finished loading. ``on_new(widget)`` attaches click handlers to each new widget.
    """

    RETIRED_KEPT = 3  # replaced widgets kept open a while before closing
    #: slots made while this is True wait for :meth:`reveal` before making a plot widget (the app
    #: sets it while it builds its tabs: a hidden tab's plots cost the browser nothing)
    defer_new = False

    def __init__(self, fig: go.Figure, on_new: Callable[[go.FigureWidget], None] | None = None):
        self.on_new = on_new
        self.widget: go.FigureWidget | None = None
        self.deferred = PlotSlot.defer_new
        self.pending: go.Figure | None = None
        self._retired: list[go.FigureWidget] = []
        self.box = W.VBox(layout=W.Layout(width="100%"))
        self.show(fig)

    def reveal(self) -> None:
        """Make the plot widget now (its tab is shown), from the last figure given."""
        self.deferred = False
        if self.pending is not None:
            fig, self.pending = self.pending, None
            self.show(fig)

    def show(self, fig: go.Figure) -> bool:
        """Display ``fig``; returns True when a new widget was made."""
        if self.deferred:
            self.pending = fig
            return False
        old = self.widget
        if old is not None and refresh_figure(old, fig):
            return False
        new = go.FigureWidget(fig)
        if self.on_new is not None:
            self.on_new(new)
        self.widget = new
        self.box.children = (new,)
        if old is not None:
            # Closed late: the browser may still send a last resize delta to the old widget, and a
            # message to a closed widget is reported as an error in JupyterLab's log.
            self._retired.append(old)
            while len(self._retired) > self.RETIRED_KEPT:
                self._retired.pop(0).close()
        return True


def refresh_figure(fw: go.FigureWidget, fig: go.Figure) -> bool:
    """Update ``fw`` in place to show ``fig`` when both have the same traces; False otherwise."""
    if [t.name for t in fw.data] != [t.name for t in fig.data]:
        return False
    with fw.batch_update():
        for old, new in zip(fw.data, fig.data, strict=True):
            props = new.to_plotly_json()
            props.pop("type", None)
            props.pop("uid", None)
            old.update(props, overwrite=True)
            old.visible = new.visible
        fw.layout.annotations = fig.layout.annotations
        fw.layout.update(fig.layout.to_plotly_json(), overwrite=True)
    return True
