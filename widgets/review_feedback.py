"""Feedback on the review table: false positive (one, or all like it), confirm, undo.

Each runs in the background through the view's task runner; the core updates the models online and
re-scores the same log; the table then shows the new report with the rows whose verdict changed
marked both ways ("normal now", "new") and a status line that says how many went which way.
"""

from __future__ import annotations

import time
from typing import Any

import pandas as pd

from widgets.anomaly_table import anomalous_ids

__all__ = ["FeedbackActions", "implied_text"]


def implied_text(lines: Any, shown: int = 12) -> str:
    """'; 3 later entries confirmed with it (lines 12, 13, 15)': what a flag taught beyond the
    flagged entries (``UpdateResult.implied``), so the user sees the lines they confirmed."""
    lines = sorted({int(x) for x in lines})
    if not lines:
        return ""
    listed = ", ".join(map(str, lines[:shown])) + (" ..." if len(lines) > shown else "")
    word = "entry" if len(lines) == 1 else "entries"
    return f"; {len(lines)} later {word} confirmed with it (line{'s' * (len(lines) > 1)} {listed})"


class FeedbackActions:
    """The feedback half of :class:`widgets.review.ReviewView` (which holds the table, the rows,
    the status line and the runner this uses)."""

    wb: Any
    table: pd.DataFrame
    source: Any
    became_normal: set[int]
    newly_anomalous: set[int]
    last_feedback_seconds: float | None
    follow_check: Any
    _detecting: bool

    def flag(self, anomaly_id: int) -> bool:
        """Mark a row as a false positive: online update, re-scoring, changed rows marked."""
        return self._feedback(
            anomaly_id, "flag_false_positive", "false positive", "learning it as normal"
        )

    def flag_like(self, anomaly_id: int) -> bool:
        """Mark a row and every open one like it (``wb.similar``) as false positives: one update."""
        return self._feedback(
            anomaly_id,
            "flag_false_positive",
            "false positive",
            "learning them as normal",
            like=True,
        )

    def confirm(self, anomaly_id: int) -> bool:
        """Confirm a row as a real anomaly (never learned from)."""
        return self._feedback(anomaly_id, "confirm_anomaly", "confirmed", "confirming")

    def undo(self) -> bool:
        """Restore the model version before the last update, and show the re-scored table."""
        if self.wb is None:
            return False
        wb = self.wb
        before = self.table.copy()

        def work() -> Any:
            self._detecting = True
            try:
                version = wb.undo()
                return version, getattr(wb, "report", None)
            finally:
                self._detecting = False

        def done(out: tuple[Any, Any]) -> None:
            version, report = out
            if version is None:
                self.say("nothing to undo")
                return
            self._show_change(before, report)
            self.undo_button.disabled = True
            self.say(f"undone: model version {version} is current again; "
                     f"{self._change_text()}")  # fmt: skip
            self.draw_timeline()

        return self.run_task("undoing the last update", work, done)

    def _feedback(
        self, anomaly_id: int, method: str, status: str, label: str, *, like: bool = False
    ) -> bool:
        if self.wb is None:
            return False
        if self.runner.running is not None:
            self.say(f"busy with {self.runner.running}: try again when it ends", "error")
            return False
        wb, source = self.wb, self.source
        before = self.table.copy()
        self.rows.disable_feedback(anomaly_id)
        acted = [anomaly_id]
        t0 = time.perf_counter()

        def work() -> tuple[Any, Any]:
            self._detecting = True
            try:
                if like:
                    acted[:] = [int(i) for i in wb.similar(anomaly_id)]
                target = acted if like else anomaly_id
                if method == "flag_false_positive":  # the steps after it only when asked for
                    result = wb.flag_false_positive(target, follow=bool(self.follow_check.value))
                else:
                    result = getattr(wb, method)(target)
                report = getattr(result, "report", None)
                if report is None:
                    report = getattr(wb, "report", None) or wb.detect(source, stream=False)
                return result, report
            finally:
                self._detecting = False

        def done(out: tuple[Any, Any]) -> None:
            result, report = out
            self._show_change(before, report)
            if method == "flag_false_positive":
                self.undo_button.disabled = False
            self.last_feedback_seconds = time.perf_counter() - t0
            self.say(self._feedback_text(anomaly_id, label, len(acted) - 1 if like else None,
                                         result if method == "flag_false_positive" else None))  # fmt: skip
            self.draw_timeline()  # after the table: the table is what the user waits for

        return self.run_task(f"{label} (anomaly {anomaly_id})", work, done)

    def _feedback_text(
        self, anomaly_id: int, label: str, others: int | None, update: Any = None
    ) -> str:
        """'anomaly 7: learning it as normal done; 2 became normal, 0 newly anomalous · validation
        loss ...' (``others``: how many like it were in the batch; ``update``: the update's result)."""
        msg = f"anomaly {anomaly_id}: {label} done"
        if others is not None:
            msg = f"anomaly {anomaly_id} and {others} like it: {label} done (one update)"
        if update is not None:
            msg += implied_text(getattr(update, "implied", None) or ())
            msg += f"; {self._change_text()}"
            lb = getattr(update, "loss_before", getattr(update, "val_loss_before", None))
            la = getattr(update, "loss_after", getattr(update, "val_loss_after", None))
            if lb is not None and la is not None:
                msg += f" · validation loss {lb:.4g} before, {la:.4g} after the update"
        return msg

    def _show_change(self, before: pd.DataFrame, report: Any) -> None:
        """Show the new report; rows marked both ways against the table ``before``. Rows an
        update made normal stay (greyed) until the next detection, so the rows on screen do not
        shift at each flag and only the rows that changed are redrawn."""
        was = anomalous_ids(before)
        self.set_report(report, keep=before, draw=False)
        now = anomalous_ids(self.table)
        self.became_normal, self.newly_anomalous = was - now, now - was
        self.redraw()

    def _change_text(self) -> str:
        n, m = len(self.became_normal), len(self.newly_anomalous)
        return f"{n} became normal, {m} newly anomalous"
