"""Nested object states as plain files: JSON for the values, a weights file for the arrays.

A model's state (its ``to_state()``) is a nested dict of plain values, numpy arrays and torch
tensors. Here it becomes JSON in which every array or tensor is replaced by a reference, plus one
``torch.save`` file of tensors, read back ``weights_only`` (no object is ever unpickled). A numpy
array comes back as a numpy array and a tensor as a tensor; arrays torch cannot hold (strings,
objects) are written as JSON lists.

>>> import numpy as np
>>> state = {"w": np.arange(3, dtype=np.float32), "n": np.int64(4), "name": "x"}
>>> back = state_from_bytes(state_to_bytes(state))
>>> back["w"], back["n"], back["name"]
(array([0., 1., 2.], dtype=float32), 4, 'x')
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from workbench.store.files import RunFormatError, load_tensors, read_json, save_tensors, write_json

__all__ = ["read_state", "state_from_bytes", "state_to_bytes", "write_state"]

_TENSOR = "__tensor__"
_ARRAY = "__array__"
_KINDS = frozenset("bif")  # numpy kinds a tensor holds exactly (with uint8, below)


def _split(state: Any, prefix: str, tensors: dict[str, torch.Tensor]) -> Any:
    """Replace every tensor and array in a nested state by a reference, collecting them."""
    if isinstance(state, torch.Tensor):
        tensors[prefix] = state.detach().cpu()
        return {_TENSOR: prefix}
    if isinstance(state, np.ndarray):
        if state.dtype.kind in _KINDS or state.dtype == np.uint8:
            tensors[prefix] = torch.from_numpy(np.ascontiguousarray(state).copy())
            return {_ARRAY: prefix}
        return state.tolist()
    if isinstance(state, dict):
        return {str(k): _split(v, f"{prefix}/{k}", tensors) for k, v in state.items()}
    if isinstance(state, list | tuple):
        return [_split(v, f"{prefix}/{i}", tensors) for i, v in enumerate(state)]
    if isinstance(state, np.generic):  # numpy scalars
        return state.item()
    return state


def _join(state: Any, tensors: dict[str, torch.Tensor], name: str) -> Any:
    """Inverse of :func:`_split`; a reference to a missing tensor names ``name``."""
    if isinstance(state, dict):
        if len(state) == 1 and (_TENSOR in state or _ARRAY in state):
            ref = state.get(_TENSOR, state.get(_ARRAY))
            if not isinstance(ref, str) or ref not in tensors:
                raise RunFormatError(f"{name}: tensor {ref!r} is missing from the weights file")
            return tensors[ref] if _TENSOR in state else tensors[ref].numpy()
        return {k: _join(v, tensors, name) for k, v in state.items()}
    if isinstance(state, list):
        return [_join(v, tensors, name) for v in state]
    return state


def state_to_bytes(state: dict[str, Any]) -> bytes:
    """Serialise a nested state (plain values, arrays, tensors) without pickling any object."""
    tensors: dict[str, torch.Tensor] = {}
    plain = _split(state, "s", tensors)
    buf = io.BytesIO()
    torch.save({"plain": json.dumps(plain), "tensors": tensors}, buf)
    return buf.getvalue()


def state_from_bytes(blob: bytes, name: str = "model version") -> dict[str, Any]:
    """Inverse of :func:`state_to_bytes` (``weights_only`` loading: no code is unpickled)."""
    try:
        obj = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
        return _join(json.loads(obj["plain"]), obj["tensors"], name)
    except RunFormatError:
        raise
    except Exception as exc:
        raise RunFormatError(f"{name}: cannot be read ({exc})") from exc


def write_state(folder: Path, stem: str, state: dict[str, Any]) -> list[str]:
    """Write ``state`` as ``STEM.json`` and ``STEM.pt`` in ``folder``; returns the two names."""
    tensors: dict[str, torch.Tensor] = {}
    plain = _split(state, stem, tensors)
    write_json(folder / f"{stem}.json", plain)
    save_tensors(folder / f"{stem}.pt", tensors)
    return [f"{stem}.json", f"{stem}.pt"]


def read_state(folder: Path, stem: str) -> Any:
    """Read what :func:`write_state` wrote (checked: a missing tensor names the file)."""
    plain = read_json(folder / f"{stem}.json")
    tensors = load_tensors(folder / f"{stem}.pt")
    return _join(plain, tensors, f"{folder / stem}.pt")
