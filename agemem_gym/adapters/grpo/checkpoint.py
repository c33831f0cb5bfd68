"""Checkpoints: the model (or LoRA adapter) as a Hugging Face folder, optimizer, RNG and step.

A checkpoint is written to a temporary folder and renamed into place, so a crash while
saving never leaves a half-written ``checkpoint-N`` behind. Optimizer and RNG states are
loaded with ``torch.load(weights_only=True)``: no arbitrary code runs on resume.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch loads only when a checkpoint is written or read: the CLI checks folders first
    import numpy as np
    import torch

__all__ = ["save_checkpoint", "latest_checkpoint", "load_training_state"]

_NAME = re.compile(r"^checkpoint-(\d+)$")


def save_checkpoint(
    folder: str | Path,
    step: int,
    model: Any,
    tokenizer: Any,
    optimizer: torch.optim.Optimizer,
    rng: np.random.Generator,
    config: dict[str, Any],
) -> Path:
    """Write ``folder/checkpoint-<step>`` atomically and return its path."""
    import torch

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"checkpoint-{step:06d}"
    staging = Path(tempfile.mkdtemp(dir=folder, prefix=f".{final.name}."))
    try:
        model.save_pretrained(staging / "model")
        tokenizer.save_pretrained(staging / "model")
        torch.save(optimizer.state_dict(), staging / "optimizer.pt")
        torch.save({"torch": torch.get_rng_state()}, staging / "rng.pt")
        state = {"step": step, "numpy_rng": rng.bit_generator.state, "config": config}
        (staging / "trainer_state.json").write_text(json.dumps(state, indent=2, default=str))
        if final.exists():
            shutil.rmtree(final)
        os.replace(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return final


def latest_checkpoint(folder: str | Path) -> Path | None:
    """The newest complete checkpoint in ``folder``, if any."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name)) and p.is_dir()]
    found = [(s, p) for s, p in found if (p / "trainer_state.json").is_file()]
    return max(found)[1] if found else None


def load_training_state(path: str | Path, optimizer: torch.optim.Optimizer, rng: np.random.Generator) -> int:
    """Restore the optimizer and RNGs from a checkpoint; return the step it was taken at."""
    import torch

    path = Path(path)
    state = json.loads((path / "trainer_state.json").read_text())
    optimizer.load_state_dict(torch.load(path / "optimizer.pt", weights_only=True))
    torch.set_rng_state(torch.load(path / "rng.pt", weights_only=True)["torch"])
    rng.bit_generator.state = state["numpy_rng"]
    return int(state["step"])
