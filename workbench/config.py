"""One habit for every configuration in the package.

A configuration is a frozen dataclass that derives from :class:`Config`:

- it is checked when it is made: :meth:`Config.validate` raises :class:`ValueError` with one plain
  sentence (never ``assert``, which ``python -O`` removes);
- :meth:`Config.from_dict` builds one from a plain dict and rejects keys it does not know (a typo
  in a saved run or a form is an error, not a silent default);
- :meth:`Config.to_dict` gives the plain JSON-able dict that :meth:`Config.from_dict` reads back;
- :meth:`Config.replace` returns a checked copy with some fields changed.

>>> from dataclasses import dataclass
>>> @dataclass(frozen=True)
... class Demo(Config):
...     window: int = 10
...     def validate(self) -> None:
...         require(self.window >= 1, f"window must be at least 1, got {self.window}")
>>> Demo.from_dict({"window": 5}).to_dict()
{'window': 5}
>>> Demo.from_dict({"windwo": 5})
Traceback (most recent call last):
...
ValueError: unknown Demo fields: ['windwo']
>>> Demo(window=0)
Traceback (most recent call last):
...
ValueError: window must be at least 1, got 0

Stateful objects (parsers, models, journals) share one vocabulary too: ``to_state()`` gives plain
data (JSON-able values and numpy arrays, never pickles) and the class method ``from_state(state)``
rebuilds the object from it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

__all__ = ["Config", "require", "require_choice"]

C = TypeVar("C", bound="Config")


def require(condition: bool, message: str) -> None:
    """Raise :class:`ValueError` with ``message`` unless ``condition`` holds."""
    if not condition:
        raise ValueError(message)


def require_choice(name: str, value: Any, choices: Iterable[Any]) -> None:
    """Raise :class:`ValueError` unless ``value`` is one of ``choices``."""
    options = tuple(choices)
    if value not in options:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, options))}; got {value!r}")


@dataclasses.dataclass(frozen=True)
class Config:
    """Base of every configuration dataclass (see the module docstring)."""

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise :class:`ValueError` when a field is out of range; subclasses override it."""

    def to_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (tuples become lists, nested configs dicts)."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls: type[C], data: Mapping[str, Any]) -> C:
        """Build from a plain dict; unknown keys raise :class:`ValueError`, missing keys take
        their defaults."""
        if not isinstance(data, Mapping):
            raise ValueError(f"{cls.__name__} needs a mapping, got {type(data).__name__}")
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ValueError(f"unknown {cls.__name__} fields: {unknown}")
        values = {}
        for name, value in data.items():
            default = getattr(cls, name, None)
            if isinstance(default, tuple) and isinstance(value, list):
                value = tuple(value)
            values[name] = value
        return cls(**values)

    def replace(self: C, **changes: Any) -> C:
        """A checked copy with ``changes``; unknown names raise :class:`ValueError`."""
        return type(self).from_dict({**self.to_dict(), **changes})


def _plain(value: Any) -> Any:
    if isinstance(value, Config):
        return value.to_dict()
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value
