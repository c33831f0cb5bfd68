"""Checkpoints: the model (or LoRA adapter) as a Hugging Face folder, optimizer, RNG and step.

A checkpoint survives a crash while it is written (SIGKILL, power loss):

1. every file goes into a hidden staging folder ``.checkpoint-N.<random>``;
2. each file, then the folder, is ``fsync``-ed;
3. a ``COMPLETE`` marker is written (and synced) last;
4. the folder is renamed into place with ``os.replace`` (atomic on POSIX), and the parent
   folder is synced so the rename itself is durable.

:func:`latest_checkpoint` takes only folders that carry the marker, so a kill at any point
leaves the previous checkpoint the one a resumed run loads. A checkpoint damaged after it was
written (a truncated or garbled ``trainer_state.json``, ``optimizer.pt``, ``rng.pt`` or
``.safetensors`` file: :func:`damage`) is passed over too, with a notice naming the file. Staging folders a killed save
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
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agemem_gym.error import InvalidConfig

if TYPE_CHECKING:  # torch loads only when a checkpoint is written or read: the CLI checks folders first
    import numpy as np
    import torch

__all__ = [
    "COMPLETE",
    "save_checkpoint",
    "latest_checkpoint",
    "is_complete",
    "damage",
    "load_training_state",
    "load_counters",
]

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
    """The newest complete and intact checkpoint in ``folder``, if any.

    A complete checkpoint (:func:`is_complete`) whose files were damaged afterwards (a disk
    fault, a copy cut short: :func:`damage`) is passed over with a notice on stderr naming the
    damaged file and the checkpoint used instead.

    Raises:
        InvalidConfig: Every complete checkpoint is damaged (the message names the newest's file).
    """
    folder = Path(folder)
    if not folder.is_dir():
        return None
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name)) and p.is_dir()]
    damaged: list[tuple[Path, str]] = []
    for _, path in sorted(found, reverse=True):
        if not is_complete(path):
            continue
        problem = damage(path)
        if problem is None:
            for bad, why in damaged:
                _notice(f"{bad.name} is damaged ({why}); using {path.name}, the newest intact checkpoint")
            return path
        damaged.append((path, problem))
    if damaged:
        bad, why = damaged[0]
        raise InvalidConfig(
            f"every checkpoint in {folder} is damaged ({bad.name}: {why}); pass --overwrite to start afresh"
        )
    return None


_NOTICED: set[str] = set()


def _notice(message: str) -> None:
    """Print ``message`` once per process, on the main process only."""
    if message in _NOTICED or int(os.environ.get("RANK", "0")) != 0:
        return
    _NOTICED.add(message)
    print(f"agemem: {message}", file=sys.stderr)


def damage(path: str | Path) -> str | None:
    """What is wrong with a checkpoint's files, or ``None`` when they look intact.

    Cheap checks that read no tensor data: ``trainer_state.json`` parses and has its fields;
    ``optimizer.pt`` and ``rng.pt`` are whole zip archives (what ``torch.save`` writes); every
    ``.safetensors`` file's header parses and the file is as long as the header says.
    """
    path = Path(path)
    checks: list[tuple[str, Callable[[Path], str | None]]] = [
        ("trainer_state.json", _state_problem),
        ("optimizer.pt", _torch_file_problem),
        ("rng.pt", _torch_file_problem),
    ]
    for name, check in checks:
        problem = check(path / name)
        if problem is not None:
            return f"{name}: {problem}"
    for weights in sorted((path / "model").glob("*.safetensors")):
        problem = _safetensors_problem(weights)
        if problem is not None:
            return f"{weights.relative_to(path)}: {problem}"
    return None


def _state_problem(file: Path) -> str | None:
    try:
        state = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return f"unreadable ({type(exc).__name__}: {exc})"
    if not isinstance(state, dict) or not {"step", "numpy_rng"} <= set(state):
        return "not a trainer state (no step or numpy_rng)"
    return None


def _torch_file_problem(file: Path) -> str | None:
    try:
        size = file.stat().st_size
        with zipfile.ZipFile(file) as archive:
            members = archive.infolist()
    except (OSError, zipfile.BadZipFile, ValueError) as exc:
        return f"not a whole torch file ({type(exc).__name__}: {exc})"
    if any(m.header_offset + m.compress_size > size for m in members):
        return "cut short"
    return None


def _safetensors_problem(file: Path) -> str | None:
    try:
        with open(file, "rb") as f:
            size = file.stat().st_size
            length = int.from_bytes(f.read(8), "little")
            if length <= 0 or 8 + length > size:
                return "cut short or not a safetensors file"
            header = json.loads(f.read(length))
    except (OSError, ValueError) as exc:
        return f"unreadable header ({type(exc).__name__}: {exc})"
    if not isinstance(header, dict):
        return "not a safetensors header"
    ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__" and isinstance(v, dict)]
    if 8 + length + max(ends, default=0) != size:
        return f"{size} bytes, the header describes {8 + length + max(ends, default=0)}"
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
    state = _read(path / "trainer_state.json", lambda f: json.loads(f.read_text()))
    optimizer_state = _read(path / "optimizer.pt", lambda f: torch.load(f, weights_only=True))
    if load_optimizer is None:
        optimizer.load_state_dict(optimizer_state)
    else:
        load_optimizer(optimizer, optimizer_state)
    torch.set_rng_state(_read(path / "rng.pt", lambda f: torch.load(f, weights_only=True))["torch"])
    rng.bit_generator.state = state["numpy_rng"]
    return int(state["step"])


def _read(file: Path, load: Callable[[Path], Any]) -> Any:
    """``load(file)``; a damaged file :func:`damage` missed is named in one line instead of a traceback."""
    try:
        return load(file)
    except (OSError, ValueError, RuntimeError, EOFError) as exc:  # RuntimeError: PytorchStreamReader
        raise InvalidConfig(
            f"{file} is damaged ({type(exc).__name__}: {exc}); remove {file.parent.name} to resume from the "
            "checkpoint before it, or pass --overwrite to start afresh"
        ) from exc


def load_counters(path: str | Path) -> dict[str, float] | None:
    """The running totals a checkpoint saved (:func:`save_checkpoint`'s ``counters``); ``None`` in older ones."""
    state = _read(Path(path) / "trainer_state.json", lambda f: json.loads(f.read_text()))
    counters = state.get("counters")
    return None if counters is None else {str(k): float(v) for k, v in counters.items()}
