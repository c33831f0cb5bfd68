"""Helpers for Gymnasium vector envs shared by the evaluation harness and the trainer."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["unbatch_info"]


def unbatch_info(infos: Mapping[str, Any], index: int) -> dict[str, Any]:
    """The ``info`` dict of sub-env ``index`` from a vector env's batched infos.

    Keys whose ``_key`` mask marks them absent for that sub-env are left out, nested dicts
    are unbatched recursively and NumPy scalars become Python ones.
    """
    out: dict[str, Any] = {}
    for key, value in infos.items():
        if key.startswith("_"):
            continue
        present = infos.get(f"_{key}")
        if present is not None and not bool(np.asarray(present)[index]):
            continue
        if isinstance(value, Mapping):
            out[key] = unbatch_info(value, index)
        else:
            item = value[index]
            out[key] = item.item() if isinstance(item, np.generic) else item
    return out
