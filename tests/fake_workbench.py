"""A tiny stand-in for ``workbench.Workbench``: the contract the widgets rely on, on hand-made data.

It implements exactly what the views call (see the README of ``widgets``) and records the calls, so
widget tests can check both what is shown and what was asked of the core. Data: 40 entries of five
VM sessions, six anomalies of every kind, two parameter keys, two workflows.

The six anomalies: ids 0 and 1 share key 4 (so flagging one as a false positive changes the verdict
of the other), 2 is an unknown key, 3 and 5 are parameter anomalies (keys 3 and 5), 4 a session end.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import networkx as nx
import numpy as np
import pandas as pd

from workbench.parsing import ParseSummary

LEVELS = (0.98, 0.99, 0.999)
TEMPLATES = {
    0: "<unknown>",
    1: "POST /v2/servers",
    2: "Claim successful on node <*>",
    3: "Creating image",
    4: "Took <*> seconds to spawn the instance on the hypervisor",
    5: "Instance spawned successfully",
    6: "Terminating instance",
    7: "Deleting instance files <*>",
    8: "Deletion of <*> complete",
}


@dataclass
class Report:
    anomalies: pd.DataFrame
    entries: pd.DataFrame


@dataclass
class UpdateResult:
    changed: list[int]
    val_loss_before: float
    val_loss_after: float


@dataclass
class Diagnosis:
    sentence: str
    path_nodes: list[int]
    slow_edge: tuple[int, int] | None


@dataclass
class FakeWorkbench:
    entries: pd.DataFrame
    parser: Any = None
    fmt: str = "openstack"
    session_rule: str | None = None
    calls: list[tuple[str, Any]] = field(default_factory=list)
    fit_epochs: int = 3
    batch_delay: float = 0.0  # seconds per batch, to exercise the background runner

    def __post_init__(self) -> None:
        self._listeners: dict[str, list[Callable[..., None]]] = defaultdict(list)
        self._status: dict[int, str] = {}
        self._learned_keys: set[int] = set()
        self._stop = False
        self.key_model = SimpleNamespace(g_=None)
        self.param_model = SimpleNamespace(thresholds={})
        self.parser = self.parser or SimpleNamespace(fmt=self.fmt)

    # ---------------------------------------------------------------------------- construction

    @classmethod
    def from_logs(
        cls, path_or_lines: Any, fmt: str = "openstack", session: str | None = None
    ) -> FakeWorkbench:
        if isinstance(path_or_lines, str | Path):
            lines = Path(path_or_lines).read_text().splitlines()
        else:
            lines = [x.decode() if isinstance(x, bytes) else x for x in path_or_lines]
        frame = cls.preview(lines, fmt)
        frame["session"] = [f"s{i % 3}" for i in range(len(frame))]
        frame["timestamp"] = pd.NaT
        frame["key"] = np.where(frame["parsed"], frame.index % 4 + 1, -1)
        frame["template"] = [TEMPLATES[k] if k > 0 else "" for k in frame["key"]]
        wb = cls(entries=frame, fmt=fmt, session_rule=session)
        wb.calls.append(("from_logs", fmt))
        return wb

    @classmethod
    def from_simulation(
        cls, n_instances: int = 5, anomalies: dict[str, float] | None = None, seed: int = 0
    ) -> FakeWorkbench:
        rows = []
        for line in range(1, 41):
            key = (line - 1) % 8 + 1
            rows.append(
                {
                    "line": line,
                    "raw": f"2017-05-16 00:00:{line:02d} nova <vm-{(line - 1) // 8}> {TEMPLATES[key]}",
                    "timestamp": pd.Timestamp("2017-05-16") + pd.Timedelta(seconds=line),
                    "session": f"vm-{(line - 1) // 8}",
                    "key": key,
                    "template": TEMPLATES[key],
                    "params": (float(line),),
                    "parsed": True,
                    "error": None,
                }
            )
        wb = cls(entries=pd.DataFrame(rows))
        wb.calls.append(
            ("from_simulation", {"n": n_instances, "anomalies": anomalies, "seed": seed})
        )
        return wb

    @staticmethod
    def preview(lines: Iterable[str], fmt: str) -> pd.DataFrame:
        if (
            "<Content>" not in fmt
            and "(?P<Content>" not in fmt
            and fmt not in ("openstack", "auto")
        ):
            raise ValueError(f"unknown log format {fmt!r}")
        lines = list(lines)
        parsed = [bool(x.strip()) and not x.startswith("#") for x in lines]
        return pd.DataFrame(
            {
                "line": range(1, len(lines) + 1),
                "raw": lines,
                "parsed": parsed,
                "error": [None if p else "does not match the format" for p in parsed],
                "content": [
                    x.split(" ", 1)[-1] if p else "" for x, p in zip(lines, parsed, strict=False)
                ],
            }
        )

    def summary(self) -> ParseSummary:
        e = self.entries
        unparsed = e[~e["parsed"]]
        return ParseSummary(
            lines=len(e),
            parsed=int(e["parsed"].sum()),
            unparsed=len(unparsed),
            unparsed_reasons=unparsed["error"].value_counts().to_dict(),
            keys=int(e.loc[e["parsed"], "key"].nunique()),
            unknown=int((e["key"] == 0).sum()),
            sessions=int(e["session"].nunique()),
        )

    # ------------------------------------------------------------------------------- events

    def on(self, event: str, callback: Callable[..., None]) -> None:
        assert event in ("fit", "detect", "update"), event
        self._listeners[event].append(callback)

    def _emit(self, event: str, payload: Any) -> None:
        for cb in list(self._listeners[event]):
            cb(payload)

    # ------------------------------------------------------------------------------ training

    def fit(self, key_config=None, param_config=None, callbacks=()) -> FakeWorkbench:
        self.calls.append(("fit", {"key": key_config, "param": param_config}))
        self._stop = False
        epochs = (key_config or {}).get("max_epochs", self.fit_epochs)
        for stage in ("key", "param"):
            for epoch in range(1, epochs + 1):
                for batch in (1, 2):
                    for cb in callbacks:
                        cb(
                            {
                                "stage": stage,
                                "event": "batch",
                                "epoch": epoch,
                                "epochs": epochs,
                                "batch": batch,
                                "batches": 2,
                                "train_loss": 1.0 / epoch,
                            }
                        )
                    time.sleep(self.batch_delay)
                    if self._stop:
                        break
                for cb in callbacks:
                    cb(
                        {
                            "stage": stage,
                            "event": "epoch",
                            "epoch": epoch,
                            "epochs": epochs,
                            "train_loss": 2.0 / epoch,
                            "val_loss": 2.5 / epoch,
                        }
                    )
                if self._stop:
                    break
            for cb in callbacks:
                cb(
                    {
                        "stage": stage,
                        "event": "done",
                        "epoch": epoch,
                        "epochs": epochs,
                        "stopped": self._stop,
                    }
                )
            if self._stop:
                break
        self.key_model.g_ = (key_config or {}).get("top_g", 9)
        self.param_model.thresholds = {
            k: {lv: 1.0 + i for i, lv in enumerate(LEVELS)} for k in (3, 5)
        }
        self._emit("fit", self)
        return self

    def stop(self) -> None:
        self.calls.append(("stop", None))
        self._stop = True

    # ----------------------------------------------------------------------------- detection

    def _all_anomalies(self) -> pd.DataFrame:
        def cands(*keys_probs):
            return [(k, TEMPLATES[k], p) for k, p in keys_probs]

        rows = [
            (0, 7, "vm-0", "key", 4, 12, None, cands((3, 0.6), (5, 0.3))),
            (1, 15, "vm-1", "key", 4, 11, None, cands((3, 0.5), (5, 0.4))),
            (2, 18, "vm-2", "unknown key", 0, None, None, cands((3, 0.7))),
            (3, 22, "vm-2", "parameter", 3, None, 5.2, []),
            (4, 30, "vm-3", "session end", 5, 10, None, cands((6, 0.9))),
            (5, 34, "vm-4", "parameter", 5, None, 3.3, []),
        ]
        out = []
        for aid, line, sess, kind, key, rank, mse, candidates in rows:
            raw = self.entries.loc[self.entries["line"] == line, "raw"]
            out.append(
                {
                    "id": aid,
                    "line": line,
                    "timestamp": pd.Timestamp("2017-05-16") + pd.Timedelta(seconds=line),
                    "session": sess,
                    "raw": raw.iloc[0] if len(raw) else f"line {line}",
                    "kind": kind,
                    "key": key,
                    "template": TEMPLATES[key],
                    "rank": rank,
                    "g": 9 if rank is not None else None,
                    "candidates": candidates,
                    "mse": mse,
                    "threshold": 1.8 if mse is not None else None,
                    "level": 0.99 if mse is not None else None,
                    "status": self._status.get(aid, "open"),
                }
            )
        return pd.DataFrame(out)

    def detect(self, source: Any = None) -> Report:
        self.calls.append(("detect", source))
        frame = self._all_anomalies()
        learned = frame["key"].isin(self._learned_keys) & (frame["kind"] == "key")
        keep = ~learned | frame["id"].map(lambda i: self._status.get(i) is not None)
        report = Report(anomalies=frame[keep].reset_index(drop=True), entries=self.entries)
        self._emit("detect", report)
        return report

    def similar(self, anomaly_id: int) -> list[int]:
        self.calls.append(("similar", anomaly_id))
        frame = self._all_anomalies()
        row = frame.set_index("id").loc[anomaly_id]
        same = (frame["kind"] == row["kind"]) & (frame["template"] == row["template"])
        others = [
            int(i) for i in frame.loc[same, "id"] if i != anomaly_id and i not in self._status
        ]
        return [anomaly_id, *others]

    def flag_false_positive(self, anomaly_id: int | list[int]) -> UpdateResult:
        self.calls.append(("flag_false_positive", anomaly_id))
        ids = [anomaly_id] if np.ndim(anomaly_id) == 0 else list(anomaly_id)
        frame = self._all_anomalies().set_index("id")
        changed: list[int] = []
        for aid in ids:
            self._status[aid] = "false positive"
            row = frame.loc[aid]
            if row["kind"] == "key" and row["key"] not in self._learned_keys:
                self._learned_keys.add(int(row["key"]))
                changed += [
                    int(i)
                    for i, r in frame.iterrows()
                    if i not in ids
                    and r["kind"] == "key"
                    and r["key"] == row["key"]
                    and i not in self._status
                ]
        result = UpdateResult(changed=changed, val_loss_before=0.5, val_loss_after=0.45)
        self._emit("update", result)
        return result

    def confirm_anomaly(self, anomaly_id: int) -> UpdateResult:
        self.calls.append(("confirm_anomaly", anomaly_id))
        self._status[anomaly_id] = "confirmed"
        result = UpdateResult(changed=[], val_loss_before=0.5, val_loss_after=0.5)
        self._emit("update", result)
        return result

    # --------------------------------------------------------------------- parameters, MSE

    def param_keys(self) -> list[int]:
        return [3, 5]

    def mse_series(self, key: int) -> pd.DataFrame:
        self.calls.append(("mse_series", key))
        lines = [line for line in range(1, 41) if (line - 1) % 8 + 1 == key]
        bad = {3: 22, 5: 34}[key]
        if bad not in lines:
            lines = sorted([*lines, bad])
        mse = [5.2 if line == 22 else 3.3 if line == 34 else 0.2 + 0.01 * line for line in lines]
        frame = pd.DataFrame(
            {
                "line": lines,
                "session": [f"vm-{(line - 1) // 8}" for line in lines],
                "timestamp": [pd.Timestamp("2017-05-16") + pd.Timedelta(seconds=x) for x in lines],
                "mse": mse,
                "anomalous": [line == bad for line in lines],
                "raw": [f"raw line {line} <of key {key}>" for line in lines],
                "observed_dt": [m * 2 for m in mse],
                "predicted_dt": [0.5] * len(lines),
            }
        )
        for i, level in enumerate(LEVELS):
            frame[f"threshold_{level:g}"] = 1.5 + i
        return frame

    # --------------------------------------------------------------------- workflows, diagnosis

    def workflows(self, method: int = 2) -> list[nx.DiGraph]:
        self.calls.append(("workflows", method))
        create = nx.DiGraph(name="VM creation")
        for k in (1, 2, 3, 4, 5):
            create.add_node(k, key=k, template=TEMPLATES[k], count=5)
        for u, v, med in ((1, 2, 0.3), (2, 3, 1.0), (3, 4, 20.0), (4, 5, 0.1), (2, 4, 2.0)):
            create.add_edge(u, v, count=5, probability=0.5, median=med, p95=med * 2)
        if method == 1:
            return [create]
        delete = nx.DiGraph(name="VM deletion")
        for k in (6, 7, 8):
            delete.add_node(k, key=k, template=TEMPLATES[k], count=4)
        delete.add_edge(6, 7, count=4, probability=1.0, median=0.5, p95=0.8)
        delete.add_edge(7, 8, count=4, probability=1.0, median=0.2, p95=0.3)
        return [create, delete]

    def diagnose(self, anomaly_id: int) -> Diagnosis:
        self.calls.append(("diagnose", anomaly_id))
        if anomaly_id == 3:
            return Diagnosis(
                "instance took too long to build because the transition 3 -> 4 was slow",
                [1, 2, 3, 4],
                (3, 4),
            )
        if anomaly_id == 4:
            return Diagnosis("the session ended after 'Terminating instance'", [6, 7], None)
        return Diagnosis(
            f"key {anomaly_id} came where 'Creating image' was expected", [1, 2, 4], None
        )
