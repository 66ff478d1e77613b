"""Reading the timestamps of parsed rows from their header fields.

A format names the fields that make the timestamp and their ``strptime`` layout (``%s`` for seconds
since 1970; None lets pandas infer it). Timestamps come out timezone-naive (UTC when the text has a
zone); a layout without a year (syslog's ``Jan 14 15:16:01``) gets the given year, by default the
current one. Text that cannot be read leaves NaT and one plain sentence saying how many and which.

>>> from workbench.logs.formats import get_format
>>> fmt = get_format("hdfs")
>>> ts, problem = read_timestamps(fmt, [{"Date": "081109", "Time": "203615"}, None])
>>> ts.tolist()[0], problem
(Timestamp('2008-11-09 20:36:15'), None)
"""

from __future__ import annotations

from operator import itemgetter

import numpy as np
import pandas as pd

from workbench.logs.formats import LogFormat

__all__ = ["read_timestamps"]


def read_timestamps(
    fmt: LogFormat,
    rows_fields: list[dict[str, str] | None],
    first_line: int = 1,
    year: int | None = None,
) -> tuple[pd.Series, str | None]:
    """Timestamps of the rows (their header fields; None for a row that did not fit), and a
    plain sentence about those that could not be read (None when all could)."""
    if not fmt.timestamp_fields:
        return pd.Series(pd.NaT, index=range(len(rows_fields)), dtype="datetime64[ns]"), None
    get = itemgetter(*fmt.timestamp_fields)
    if len(fmt.timestamp_fields) == 1:
        values = [(get(f) or "") if f else None for f in rows_fields]
    else:
        try:  # every field present (the rule): one join per row
            values = [" ".join(get(f)) if f else None for f in rows_fields]
        except TypeError:  # a field that took no part (None) reads as ""
            values = [" ".join([v or "" for v in get(f)]) if f else None for f in rows_fields]
    text = pd.Series(values, dtype=object)
    spec = fmt.timestamp_format
    if spec == "%s":  # seconds since 1970
        num = pd.to_numeric(text, errors="coerce")
        ts = pd.to_datetime(num, unit="s", errors="coerce")
    else:
        if spec and "%Y" not in spec and "%y" not in spec:  # syslog-style: no year
            year = year or pd.Timestamp.now().year
            text = text.map(lambda t: None if t is None else f"{year} {t}")
            spec = "%Y " + spec
        ts = pd.to_datetime(text, format=spec or "mixed", errors="coerce")
    if getattr(ts.dt, "tz", None) is not None:
        ts = ts.dt.tz_convert("UTC").dt.tz_localize(None)
    ts = ts.astype("datetime64[ns]")
    bad = np.flatnonzero(text.notna().to_numpy() & ts.isna().to_numpy())
    problem = None
    if len(bad):
        shown = " ".join(str(text.iloc[bad[0]]).split())
        expected = f" as {fmt.timestamp_format}" if fmt.timestamp_format else ""
        problem = (
            f"{len(bad)} of {int(text.notna().sum())} timestamps could not be read{expected} "
            f"(the first, on line {first_line + int(bad[0])}: {shown!r})"
        )
    return ts, problem
