"""The training loss curve: train and validation loss per epoch, one pair of curves per stage."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from widgets.figures.labels import with_message
from widgets.theme import PALETTE, styled

__all__ = ["loss_curve_figure"]


def loss_curve_figure(
    history: Sequence[Mapping[str, Any]], *, title: str = "Training loss"
) -> go.Figure:
    """Training and validation loss per epoch.

    ``history`` holds one dict per epoch with ``epoch``, ``train_loss`` and ``val_loss`` (None or NaN
    when there is no validation set). An optional ``stage`` ('key' or 'param', default 'key') draws
    one pair of curves per stage; several rows with the same stage and epoch (the per-key parameter
    models) are averaged, so the curve reads as "the parameter models, on average".

    >>> fig = loss_curve_figure([{"epoch": 1, "train_loss": 2.0, "val_loss": None}])
    >>> [t.name for t in fig.data], fig.data[1].y
    (['key train', 'key validation'], (None,))
    """
    fig = go.Figure()
    styled(fig, title=title, height=360)
    if not history:
        return with_message(fig, "no epoch yet: press Train")
    frame = pd.DataFrame(list(history))
    if "stage" not in frame:
        frame["stage"] = "key"
    frame["stage"] = frame["stage"].fillna("key")
    for col in ("train_loss", "val_loss"):
        if col not in frame:
            frame[col] = np.nan
        frame[col] = pd.to_numeric(frame[col], errors="coerce")
    dashes = {"key": "solid", "param": "dot"}
    for stage, part in frame.groupby("stage", sort=False):
        per_epoch = part.groupby("epoch", sort=True)[["train_loss", "val_loss"]].mean()
        epochs = per_epoch.index.tolist()
        for col, label, colour in (
            ("train_loss", "train", PALETTE["normal"]),
            ("val_loss", "validation", PALETTE["validation"]),
        ):
            values = [None if pd.isna(v) else float(v) for v in per_epoch[col]]
            fig.add_trace(
                go.Scatter(
                    x=epochs,
                    y=values,
                    mode="lines+markers",
                    name=f"{stage} {label}",
                    line={"color": colour, "width": 3, "dash": dashes.get(str(stage), "dash")},
                    marker={"size": 7},
                    hovertemplate=f"{stage} {label}<br>epoch %{{x}}<br>loss %{{y:.4g}}<extra></extra>",
                )
            )
    last = int(frame["epoch"].max()) if len(frame) else 1
    fig.update_xaxes(title_text="epoch", visible=True, tick0=1, dtick=max(1, math.ceil(last / 10)))
    fig.update_yaxes(title_text="loss", rangemode="tozero", visible=True)
    return fig
