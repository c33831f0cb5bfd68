"""Checkpoints: the model (or LoRA adapter) as a Hugging Face folder, optimizer, RNG and step.

A checkpoint survives a crash while it is written (SIGKILL, power loss):

1. every file goes into a hidden staging folder ``.checkpoint-N.<random>``;
2. each file, then the folder, is ``fsync``-ed;
3. a ``COMPLETE`` marker is written (and synced) last;
4. the folder is renamed into place with ``os.replace`` (atomic on POSIX), and the parent
   folder is synced so the rename itself is durable.

:func:`latest_checkpoint` takes only folders that carry the marker, so a kill at any point
leaves the previous checkpoint the one a resumed run loads. Staging folders a killed save
left behind are removed by the next save.

Resuming with a different number of processes: the checkpoint holds the *run's* state, not
a process's. The task-sampling RNG is identical on every rank (every draw from it has the same
size on every rank) and rank 0 saves it; the torch RNG is rank 0's and every rank restores it;
rollout sampling is reseeded every step from ``(seed, step, rank)``, so it needs no saved state.
Optimizer and RNG states are loaded with ``torch.load(weights_only=True)``: no arbitrary code
runs on resume.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch loads only when a checkpoint is written or read: the CLI checks folders first
    import numpy as np
    import torch

__all__ = ["COMPLETE", "save_checkpoint", "latest_checkpoint", "is_complete", "load_training_state", "load_counters"]

COMPLETE = "COMPLETE"
"""The marker file a checkpoint folder gets last: without it the folder is never loaded."""

FORMAT = 2
"""``trainer_state.json``'s ``format``: 2 has the ``COMPLETE`` marker (1, unnumbered: atomic rename only)."""

_NAME = re.compile(r"^checkpoint-(\d+)$")


def save_checkpoint(
    folder: str | Path,
    step: int,
    model: Any,
    tokenizer: Any,
    optimizer: torch.optim.Optimizer,
    rng: np.random.Generator,
    config: dict[str, Any],
    counters: dict[str, float] | None = None,
    model_state: dict[str, Any] | None = None,
    optimizer_state: dict[str, Any] | None = None,
) -> Path:
    """Write ``folder/checkpoint-<step>`` crash-safely (see the module docstring) and return its path.

    Args:
        folder: The run folder.
        step: The step the checkpoint is taken after.
        model: Saved with ``save_pretrained`` (a LoRA model saves its adapter only).
        tokenizer: Saved next to the model.
        optimizer: Its ``state_dict`` is saved.
        rng: The run's task-sampling RNG.
        config: The run's settings (recorded for ``--resume``).
        counters: Running totals a resumed run continues from (``generated_tokens_total``).
        model_state: The full state dict to save instead of ``model``'s own (a sharded model's,
            gathered: :func:`~agemem_gym.adapters.grpo.sharding.full_model_state`).
        optimizer_state: Likewise for the optimizer
            (:func:`~agemem_gym.adapters.grpo.sharding.full_optimizer_state`).

    Returns:
        The checkpoint folder.
    """
    import torch

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    _remove_stale_staging(folder)
    final = folder / f"checkpoint-{step:06d}"
    staging = Path(tempfile.mkdtemp(dir=folder, prefix=f".{final.name}."))
    try:
        model.save_pretrained(staging / "model", state_dict=model_state)
        tokenizer.save_pretrained(staging / "model")
        torch.save(optimizer.state_dict() if optimizer_state is None else optimizer_state, staging / "optimizer.pt")
        torch.save({"torch": torch.get_rng_state()}, staging / "rng.pt")
        state = {"format": FORMAT, "step": step, "numpy_rng": rng.bit_generator.state, "config": config}
        state["counters"] = dict(counters or {})
        (staging / "trainer_state.json").write_text(json.dumps(state, indent=2, default=str))
        _fsync_tree(staging)
        _write_synced(staging / COMPLETE, f"{step}\n")
        _fsync_path(staging)
        _replace_folder(staging, final)
        _fsync_path(folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return final


def _replace_folder(staging: Path, final: Path) -> None:
    """Rename ``staging`` to ``final``; an existing ``final`` is moved aside first (a kill keeps older ones)."""
    if not final.exists():
        os.replace(staging, final)
        return
    aside = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.old."))
    os.replace(final, aside / "old")  # os.replace cannot overwrite a non-empty folder
    os.replace(staging, final)
    shutil.rmtree(aside, ignore_errors=True)


def _remove_stale_staging(folder: Path) -> None:
    """Remove the hidden folders of saves that were killed (one process saves: none is in progress)."""
    for path in folder.iterdir():
        if path.name.startswith(".checkpoint-") and path.is_dir():
            shutil.rmtree(path, ignore_errors=True)


def _write_synced(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` and flush it to disk."""
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def _fsync_tree(root: Path) -> None:
    """``fsync`` every file under ``root``, then every folder (deepest first)."""
    folders = [root]
    for dirpath, dirnames, filenames in os.walk(root):
        folders.extend(Path(dirpath) / d for d in dirnames)
        for name in filenames:
            _fsync_path(Path(dirpath) / name)
    for path in reversed(folders):
        _fsync_path(path)


def _fsync_path(path: Path) -> None:
    """``fsync`` a file or a folder (a folder's entries: the names of what was created or renamed in it)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:  # some filesystems refuse fsync on folders; the files themselves are synced
        pass
    finally:
        os.close(fd)


def is_complete(path: str | Path) -> bool:
    """Whether a checkpoint folder was written to the end.

    A folder has the ``COMPLETE`` marker, or is an older format-1 checkpoint (written by an
    atomic rename, before the marker existed) with a readable ``trainer_state.json``.
    """
    path = Path(path)
    if (path / COMPLETE).is_file():
        return True
    try:
        state = json.loads((path / "trainer_state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(state, dict) and "format" not in state  # format 2 without its marker: cut short


def latest_checkpoint(folder: str | Path) -> Path | None:
    """The newest complete checkpoint in ``folder``, if any (:func:`is_complete`)."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name)) and p.is_dir()]
    for _, path in sorted(found, reverse=True):
        if is_complete(path):
            return path
    return None


def load_training_state(
    path: str | Path,
    optimizer: torch.optim.Optimizer,
    rng: np.random.Generator,
    load_optimizer: Callable[[Any, dict[str, Any]], None] | None = None,
) -> int:
    """Restore the optimizer and RNGs from a checkpoint; return the step it was taken at.

    Every rank loads the same files, whatever number of processes wrote them.
    ``load_optimizer(optimizer, state_dict)`` replaces ``optimizer.load_state_dict`` (a sharded
    optimizer keeps its shard: :func:`~agemem_gym.adapters.grpo.sharding.load_optimizer_state`).
    """
    import torch

    path = Path(path)
    state = json.loads((path / "trainer_state.json").read_text())
    optimizer_state = torch.load(path / "optimizer.pt", weights_only=True)
    if load_optimizer is None:
        optimizer.load_state_dict(optimizer_state)
    else:
        load_optimizer(optimizer, optimizer_state)
    torch.set_rng_state(torch.load(path / "rng.pt", weights_only=True)["torch"])
    rng.bit_generator.state = state["numpy_rng"]
    return int(state["step"])


def load_counters(path: str | Path) -> dict[str, float] | None:
    """The running totals a checkpoint saved (:func:`save_checkpoint`'s ``counters``); ``None`` in older ones."""
    state = json.loads((Path(path) / "trainer_state.json").read_text())
    counters = state.get("counters")
    return None if counters is None else {str(k): float(v) for k, v in counters.items()}
