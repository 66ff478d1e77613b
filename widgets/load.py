"""Load logs: a file (path or upload) or the built-in simulator, a format, a session rule.

The format is a built-in name or a header/regex typed in; while typing, the first lines of the chosen
file are parsed with it (``Workbench.preview``) so a wrong header shows at once. After loading, the
counts (lines, parsed, unparsed with reasons, keys, sessions) and the first rows are shown, and
``on_loaded`` callbacks receive the new workbench object (the app rebinds every view to it).
"""

from __future__ import annotations

import gzip
import html
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ipywidgets as W
import pandas as pd

from widgets.base import TaskRunner, View

__all__ = ["CoverageError", "LoadView", "builtin_formats", "check_coverage", "table_html"]

CUSTOM = "custom header / regex…"
PREVIEW_LINES = 12
PREVIEW_ROWS = 15
SIM_KINDS = ("performance", "execution", "parameter")  # the simulator's anomaly kinds


def builtin_formats() -> list[str]:
    """Names of the built-in line formats of the core parser."""
    from workbench.logs.formats import BUILTIN_FORMATS

    return sorted(BUILTIN_FORMATS)


def table_html(frame: pd.DataFrame, columns: list[str] | None = None, limit: int = 15) -> str:
    """A small escaped HTML table of the first ``limit`` rows (columns missing from frame skipped).

    >>> table_html(pd.DataFrame({"raw": ["a <b>"], "key": [3]}))[:40]
    '<table class="dl-table"><tr><th>raw</th>'
    """
    cols = [c for c in (columns or list(frame.columns)) if c in frame.columns]
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in cols)
    body = []
    for _, row in frame.head(limit).iterrows():
        cells = []
        for c in cols:
            value = row[c]
            text = (
                "" if value is None or (isinstance(value, float) and pd.isna(value)) else str(value)
            )
            if len(text) > 120:
                text = text[:119] + "…"
            cells.append(f"<td>{html.escape(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f'<table class="dl-table"><tr>{head}</tr>{"".join(body)}</table>'


MIN_COVERAGE = 0.5  # a load where fewer lines parse is refused: the format is surely wrong


class CoverageError(ValueError):
    """Too few lines parsed with the chosen format; the current workbench is kept."""


def check_coverage(wb: Any, fmt: str, minimum: float = MIN_COVERAGE) -> None:
    """Raise :class:`CoverageError` when fewer than ``minimum`` of the lines parsed."""
    s = wb.summary()
    if s.lines and s.parsed / s.lines < minimum:
        reasons = ", ".join(f"{n} {r}" for r, n in list(s.unparsed_reasons.items())[:3])
        raise CoverageError(
            f"only {s.parsed:,} of {s.lines:,} lines parsed with format {fmt!r}"
            f"{f' ({reasons})' if reasons else ''}: choose another format or type its header; "
            "nothing was replaced"
        )


class LoadView(View):
    """Choose the logs and how to read them; builds a new workbench object.

    Parameters
    ----------
    wb:
        The current workbench object, if any (its class builds the next one).
    workbench_cls:
        The class with ``from_logs``, ``from_simulation`` and ``preview``; defaults to ``type(wb)``,
        else ``workbench.Workbench``.
    """

    def __init__(
        self,
        wb: Any = None,
        *,
        workbench_cls: type | None = None,
        runner: TaskRunner | None = None,
    ) -> None:
        super().__init__(wb, runner=runner)
        self.workbench_cls = workbench_cls
        self._loaded: list[Callable[[Any], None]] = []
        self._build_file_controls()
        self._build_simulator_controls()
        self.preview = W.HTML()
        self.counts = W.HTML()
        self.table = W.HTML()
        self.load_box = W.VBox([self.file_box, self.load_button])
        self.children = [self.source, self.sim_box, self.preview, self.status, self.counts,
                         self.table]  # fmt: skip
        self.source.observe(self._on_source, names="value")
        self.fmt.observe(self._on_format, names="value")
        self.custom.observe(lambda _: self.update_preview(), names="value")
        self.path.observe(lambda _: self.update_preview(), names="value")
        self.upload.observe(lambda _: self.update_preview(), names="value")
        self.load_button.on_click(lambda _: self.load())
        self.simulate_button.on_click(lambda _: self.simulate())
        self.bind(wb)

    def _build_file_controls(self) -> None:
        """Source choice; path or upload, format (a built-in, auto or a typed header), session rule."""
        self.source = W.ToggleButtons(
            options=["simulator", "file path", "upload"], value="simulator", description="Source"
        )
        self.path = W.Text(placeholder="path/to/file.log (or .gz)", description="Path")
        self.upload = W.FileUpload(accept="", multiple=False, description="Upload log")
        self.fmt = W.Dropdown(
            options=["auto", *builtin_formats(), CUSTOM], value="auto", description="Format"
        )
        self.custom = W.Text(
            placeholder="<Date> <Time> <Level> <Content>   or a regex with (?P<Content>...)",
            description="Header",
            layout=W.Layout(width="70%"),
        )
        self.session = W.Text(
            placeholder="format default, or regex:PATTERN, field:NAME, window:SECONDS, sliding:S,STEP",
            description="Sessions",
            layout=W.Layout(width="70%"),
        )
        self.load_button = W.Button(description="Load", button_style="primary", icon="upload")
        self.file_box = W.VBox([W.HBox([self.path, self.upload]), self.fmt, self.session])

    def _build_simulator_controls(self) -> None:
        """The simulator's size, seed and anomaly rates."""
        self.n_instances = W.BoundedIntText(
            value=200, min=10, max=100_000, step=50, description="Instances"
        )
        self.seed = W.IntText(value=7, description="Seed")
        self.rates = {
            kind: W.FloatSlider(value=0.05, min=0.0, max=0.3, step=0.01, description=kind,
                                readout_format=".0%", style={"description_width": "110px"})
            for kind in SIM_KINDS
        }  # fmt: skip
        self.simulate_button = W.Button(description="Simulate", button_style="primary", icon="play")
        self.sim_box = W.VBox([
            W.HTML("<b>Built-in simulator</b>: OpenStack VM lifecycles with injected anomalies"),
            W.HBox([self.n_instances, self.seed]),
            W.HBox(list(self.rates.values())),
            self.simulate_button,
        ])  # fmt: skip

    # ------------------------------------------------------------------------------- state

    def on_loaded(self, callback: Callable[[Any], None]) -> None:
        """Call ``callback(new_wb)`` after each successful load or simulation."""
        self._loaded.append(callback)

    @property
    def format_spec(self) -> str:
        """The format string passed to the core: a built-in name or the typed header/regex."""
        return self.custom.value.strip() if self.fmt.value == CUSTOM else self.fmt.value

    @property
    def session_rule(self) -> str | None:
        return self.session.value.strip() or None

    def _cls(self) -> Any:
        if self.workbench_cls is not None:
            return self.workbench_cls
        if self.wb is not None:
            return type(self.wb)
        from workbench import Workbench  # the core's front object

        return Workbench

    def _on_source(self, change: dict) -> None:
        box = self.sim_box if change["new"] == "simulator" else self.load_box
        self.children = [self.source, box, self.preview, self.status, self.counts, self.table]
        self.update_preview()

    def _on_format(self, change: dict) -> None:
        box = list(self.file_box.children)
        if change["new"] == CUSTOM and self.custom not in box:
            box.insert(2, self.custom)
        elif change["new"] != CUSTOM and self.custom in box:
            box.remove(self.custom)
        self.file_box.children = box
        self.update_preview()

    def first_lines(self, n: int = PREVIEW_LINES) -> list[str]:
        """The first ``n`` lines of the chosen file or upload (empty when none is chosen)."""
        if self.source.value == "upload" and self.upload.value:
            content = bytes(self.upload.value[0]["content"])
            text = io.TextIOWrapper(io.BytesIO(content), encoding="utf-8", errors="replace")
            return [line.rstrip("\n") for line, _ in zip(text, range(n), strict=False)]
        if self.source.value == "file path" and self.path.value.strip():
            p = Path(self.path.value.strip()).expanduser()
            if not p.is_file():
                return []
            opener = gzip.open if p.suffix == ".gz" else open
            with opener(p, "rt", encoding="utf-8", errors="replace") as fh:
                return [line.rstrip("\n") for line, _ in zip(fh, range(n), strict=False)]
        return []

    def update_preview(self) -> None:
        """Parse the first lines with the current format (live, while a header is typed)."""
        lines = self.first_lines()
        if not lines or (self.fmt.value == CUSTOM and not self.format_spec):
            self.preview.value = ""
            return
        try:
            frame = self._cls().preview(lines, self.format_spec)
        except Exception as exc:  # a half-typed header is normal while typing
            self.preview.value = (
                f'<div class="dl-card"><span class="dl-error">format does not work yet: '
                f"{html.escape(str(exc))}</span></div>"
            )
            return
        ok = int(frame["parsed"].sum()) if "parsed" in frame else len(frame)
        self.preview.value = (
            f'<div class="dl-card"><b>Preview</b>: {ok} of {len(frame)} first lines parsed'
            f"{table_html(frame, limit=PREVIEW_LINES)}</div>"
        )

    # ----------------------------------------------------------------------------- actions

    def load(self) -> bool:
        """Parse the chosen file or upload into a new workbench object (in the background)."""
        if self.source.value == "upload":
            if not self.upload.value:
                self.say("choose a file to upload first", "error")
                return False
            content = bytes(self.upload.value[0]["content"])
            source: Any = content.decode("utf-8", errors="replace").splitlines()
            name = self.upload.value[0]["name"]
        else:
            path = self.path.value.strip()
            if not path:
                self.say("type the path of a log file first", "error")
                return False
            source, name = path, path
        fmt, rule, cls = self.format_spec, self.session_rule, self._cls()

        def work() -> Any:
            wb = cls.from_logs(source, fmt=fmt, session=rule)
            check_coverage(wb, fmt)
            return wb

        return self.run_task(f"parsing {name}", work, self._loaded_wb)

    def simulate(self) -> bool:
        """Simulate OpenStack logs with the chosen anomaly rates (in the background)."""
        anomalies = {kind: float(s.value) for kind, s in self.rates.items()}
        n, seed, cls = int(self.n_instances.value), int(self.seed.value), self._cls()
        return self.run_task(
            f"simulating {n} instances",
            lambda: cls.from_simulation(n_instances=n, anomalies=anomalies, seed=seed),
            self._loaded_wb,
        )

    def _loaded_wb(self, wb: Any) -> None:
        self.counts.value = ""
        self.table.value = ""
        self.bind(wb)
        for cb in self._loaded:
            cb(wb)

    def refresh(self) -> None:
        """Show the counts and the first parsed rows of the current workbench."""
        if self.wb is None:
            return
        s = self.wb.summary()
        reasons = ", ".join(f"{n} {html.escape(str(r))}" for r, n in s.unparsed_reasons.items())
        self.counts.value = (
            '<div class="dl-card">'
            f"<b>{s.lines:,}</b> lines · <b>{s.parsed:,}</b> parsed · "
            f"<b>{s.unparsed:,}</b> unparsed{f' ({reasons})' if reasons else ''} · "
            f"<b>{s.keys:,}</b> keys · <b>{s.unknown:,}</b> unknown-key entries · "
            f"<b>{s.sessions:,}</b> sessions<br>format <b>{html.escape(str(s.format))}</b>"
            f"{_chosen(self.wb)} · session rule <b>{html.escape(str(s.session_rule))}</b>"
            + "".join(f'<br><span class="dl-error">{html.escape(p)}</span>' for p in s.problems)
            + (
                '<br><span class="dl-error">no sessions: the key model will have nothing to '
                "learn; give a session rule (window:SECONDS, regex:PATTERN, field:NAME)</span>"
                if s.parsed and not s.sessions
                else ""
            )
            + "</div>"
        )
        cols = ["line", "timestamp", "session", "key", "template", "params", "raw", "error"]
        self.table.value = table_html(self.wb.entries, cols, limit=PREVIEW_ROWS)
        self.say(f"loaded: {s.parsed:,} entries in {s.sessions:,} sessions")


def _chosen(wb: Any) -> str:
    """', chosen automatically (share parsed)' when --format auto picked the format."""
    choice = getattr(wb, "format_choice", None)
    if choice is None:
        return ""
    return f" (chosen automatically, {choice.share:.0%} of the first lines parsed)"
