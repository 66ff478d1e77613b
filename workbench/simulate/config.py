"""What shapes a simulated log: :class:`SimulatorConfig` and the kinds of anomaly it plants."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from workbench.config import Config, require
from workbench.simulate.vocabulary import transitions

__all__ = ["ANOMALY_KINDS", "DEFAULT_ANOMALIES", "EXECUTION_KINDS", "SimulatorConfig"]

ANOMALY_KINDS = ("performance", "execution", "parameter")
EXECUTION_KINDS = ("missing", "cleanup_error", "out_of_order")
DEFAULT_ANOMALIES = MappingProxyType({"performance": 0.05, "execution": 0.03, "parameter": 0.02})


@dataclass(frozen=True)
class SimulatorConfig(Config):
    """Everything that shapes a simulated log; validated on construction.

    ``anomalies`` maps a kind of :data:`ANOMALY_KINDS` to a rate in [0, 1] (a float: that fraction
    of the instances, rounded) or a count (an int). Anomalous instances are distinct; those among
    the first ``normal_head`` fraction (by creation time) stay normal, so one file can hold a clean
    training prefix.

    Examples
    --------
    >>> SimulatorConfig(n_instances=50, anomalies={"performance": 0.1}).anomaly_counts()
    {'performance': 5, 'execution': 0, 'parameter': 0}
    >>> SimulatorConfig(anomalies={"slow": 0.1})
    Traceback (most recent call last):
    ...
    ValueError: unknown anomaly kind 'slow'; expected one of performance, execution, parameter
    """

    n_instances: int = 1000  # VM lifecycles to simulate
    anomalies: Mapping[str, float | int] = field(default_factory=lambda: dict(DEFAULT_ANOMALIES))
    seed: int = 0
    noise: float = (
        1.0  # rate multiplier of background lines (API polling, periodic tasks); 0 = none
    )
    api_lines: bool = True  # API lines of each operation (POST /servers, DELETE, external events)
    arrival_interval: float = 5.0  # mean seconds between two boots (Poisson arrivals)
    think_time: float = 8.0  # median seconds between two tasks of one instance
    operation_probability: float = 0.6  # chance of one more operation before delete
    max_operations: int = 6  # operations between create and delete, at most
    throttled: tuple[str, str] = ("create.image", "create.vm_started")  # the performance transition
    slowdown: float = 4.0  # how many times slower the throttled transition is
    parameter_factor: tuple[float, float] = (8.0, 30.0)  # reported duration x uniform(lo, hi)
    execution_kinds: tuple[str, ...] = EXECUTION_KINDS  # drawn uniformly per execution anomaly
    normal_head: float = 0.0  # fraction of the first instances kept free of anomalies
    start: str = "2017-05-16 00:00:00"  # time of the first line's day, "YYYY-MM-DD HH:MM:SS"

    def __post_init__(self) -> None:
        if isinstance(self.anomalies, Mapping):  # read-only, so a frozen config stays frozen
            object.__setattr__(self, "anomalies", MappingProxyType(dict(self.anomalies)))
        for name in ("throttled", "execution_kinds"):
            if isinstance(getattr(self, name), list | tuple):
                object.__setattr__(self, name, tuple(getattr(self, name)))
        super().__post_init__()

    def validate(self) -> None:
        n = self.n_instances
        require(
            not isinstance(n, bool) and isinstance(n, int | np.integer),
            f"n_instances must be an int, got {n!r}",
        )
        require(n > 0, f"n_instances must be > 0, got {n}")
        self._validate_anomalies()
        for name in ("arrival_interval", "think_time", "slowdown"):
            require(getattr(self, name) > 0, f"{name} must be > 0, got {getattr(self, name)}")
        require(self.noise >= 0, f"noise must be >= 0, got {self.noise}")
        require(
            0.0 <= self.operation_probability < 1.0,
            f"operation_probability must be in [0, 1), got {self.operation_probability}",
        )
        require(self.max_operations >= 0, f"max_operations must be >= 0, got {self.max_operations}")
        require(
            0.0 <= self.normal_head < 1.0, f"normal_head must be in [0, 1), got {self.normal_head}"
        )
        self._validate_shape()
        total = sum(self.anomaly_counts().values())
        eligible = self.n_instances - self._head()
        require(
            total <= eligible,
            f"{total} anomalous instances requested but only {eligible} can be anomalous "
            f"(n_instances={self.n_instances}, normal_head={self.normal_head})",
        )

    def _validate_anomalies(self) -> None:
        require(
            isinstance(self.anomalies, Mapping),
            f"anomalies must be a mapping kind -> rate, got {self.anomalies!r}",
        )
        for kind, value in self.anomalies.items():
            require(
                kind in ANOMALY_KINDS,
                f"unknown anomaly kind {kind!r}; expected one of {', '.join(ANOMALY_KINDS)}",
            )
            require(
                not isinstance(value, bool) and isinstance(value, int | float | np.number),
                f"anomaly {kind} must be a rate or a count, got {value!r}",
            )
            require(
                not isinstance(value, float | np.floating) or 0.0 <= value <= 1.0,
                f"anomaly rate of {kind} must be in [0, 1], got {value}",
            )
            require(value >= 0, f"anomaly count of {kind} must be >= 0, got {value}")

    def _validate_shape(self) -> None:
        """The throttled transition, the parameter factor, the execution kinds and the start."""
        require(
            self.throttled in transitions(),
            f"throttled must be a (parent, step) pair of event names such as "
            f"('create.image', 'create.vm_started'); got {self.throttled!r}",
        )
        lo, hi = self.parameter_factor
        require(
            1.0 < lo <= hi,
            f"parameter_factor must satisfy 1 < lo <= hi, got {self.parameter_factor}",
        )
        require(
            bool(self.execution_kinds) and set(self.execution_kinds) <= set(EXECUTION_KINDS),
            f"execution_kinds must be a non-empty subset of {EXECUTION_KINDS}",
        )
        try:
            np.datetime64(self.start.replace(" ", "T"), "ms")
        except ValueError:
            raise ValueError(
                f"start must look like 'YYYY-MM-DD HH:MM:SS', got {self.start!r}"
            ) from None

    def _head(self) -> int:
        return int(np.ceil(self.normal_head * self.n_instances))

    def anomaly_counts(self) -> dict[str, int]:
        """Number of anomalous instances per kind (a rate is rounded to the nearest count)."""
        counts = {}
        for kind in ANOMALY_KINDS:
            value = self.anomalies.get(kind, 0)
            is_rate = isinstance(value, float | np.floating)
            counts[kind] = round(value * self.n_instances) if is_rate else int(value)
        return counts
