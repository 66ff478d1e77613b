"""One palette and one plotly template for every view, readable on a projector.

Colours are the Okabe-Ito set (distinguishable with the common colour-vision deficiencies); fonts are
large enough for the back row of a classroom. Figure builders take their colours from :data:`PALETTE`
and finish with :func:`styled`, so a change here restyles the whole workbench.

>>> fig = styled(go.Figure(), title="MSE")
>>> fig.layout.template.layout.font.size
16
"""

from __future__ import annotations

import plotly.graph_objects as go

__all__ = ["FONT_FAMILY", "LEVEL_COLOURS", "PALETTE", "TEMPLATE", "level_colour", "styled"]

FONT_FAMILY = "Inter, 'Segoe UI', 'Helvetica Neue', Arial, sans-serif"

PALETTE: dict[str, str] = {
    "ink": "#1f2933",  # text and axes
    "grid": "#e4e7eb",
    "paper": "#ffffff",
    "normal": "#0072B2",  # blue: normal entries, nodes, the training loss
    "validation": "#E69F00",  # orange: the validation loss, predictions
    "anomaly": "#D55E00",  # vermillion: anomalies
    "highlight": "#CC79A7",  # purple-pink: the selected entry / the anomaly's path
    "slow": "#D55E00",  # the slow transition
    "muted": "#9aa5b1",  # edges, inactive elements
    "ok": "#009E73",  # green: confirmed normal / false positive
}

#: colours of the confidence-interval threshold lines, from the loosest to the strictest level
LEVEL_COLOURS: tuple[str, ...] = ("#009E73", "#E69F00", "#56B4E9", "#999999")


def level_colour(index: int) -> str:
    """Colour of the ``index``-th threshold level (levels sorted ascending)."""
    return LEVEL_COLOURS[index % len(LEVEL_COLOURS)]


TEMPLATE = go.layout.Template(
    layout=go.Layout(
        font={"family": FONT_FAMILY, "size": 16, "color": PALETTE["ink"]},
        title={"font": {"size": 20}, "x": 0.01, "xanchor": "left", "yref": "container", "y": 0.97},
        paper_bgcolor=PALETTE["paper"],
        plot_bgcolor=PALETTE["paper"],
        colorway=[PALETTE["normal"], PALETTE["validation"], "#009E73", "#56B4E9", "#CC79A7"],
        xaxis={"gridcolor": PALETTE["grid"], "zeroline": False, "linecolor": PALETTE["ink"]},
        yaxis={"gridcolor": PALETTE["grid"], "zeroline": False, "linecolor": PALETTE["ink"]},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.01, "x": 0, "xanchor": "left"},
        hoverlabel={"font": {"family": FONT_FAMILY, "size": 14}, "align": "left"},
        margin={"l": 64, "r": 24, "t": 92, "b": 56},
    )
)


def styled(fig: go.Figure, *, title: str | None = None, height: int = 420) -> go.Figure:
    """Apply the workbench template, a title and a height; returns ``fig`` for chaining."""
    fig.update_layout(template=TEMPLATE, height=height)
    if title is not None:
        fig.update_layout(title_text=title)
    return fig
