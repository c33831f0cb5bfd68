"""The run folder's guard: a used folder is resumed or cleared on request, never silently reused.

A folder *holds a run* when it has a ``config.json``, a ``metrics.csv`` or a checkpoint.
Starting a run there needs one of:

* ``resume``: continue it. Every setting that shapes the result must match the recorded
  ``config.json``; only the step count and the generated-token budget may grow (and the bookkeeping fields of
  :data:`UNCOMPARED` may change).
* ``overwrite``: start afresh (it wins over ``resume``). The folder's run files
  (:func:`clear_run`) are removed first; other files are left alone.

With neither, a used folder is refused with one line that says which flag to pass. This
module imports neither torch nor transformers: the CLI checks the folder before loading them.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from agemem_gym.adapters.grpo.checkpoint import latest_checkpoint
from agemem_gym.adapters.grpo.config import GRPOConfig
from agemem_gym.error import InvalidConfig

__all__ = ["UNCOMPARED", "holds_run", "recorded_config", "settings_diff", "check_run_folder", "clear_run"]

UNCOMPARED = frozenset(
    {
        "output_dir",
        "resume",
        "overwrite",
        "num_steps",
        "generated_token_budget",  # a stopping rule, like num_steps
        "save_every",
        "tensorboard",
        "record_dir",
        "record_every",
        "torch_threads",
        "async_envs",
        "env_backend",
        # memory knobs: same log-probs, same gradients (tests/adapters/test_grpo_logprobs.py)
        "logprob_chunk_tokens",
        "gradient_checkpointing",
        "malloc_mmap_threshold",
        # the row layout: the same log-probs and gradients to float rounding (tests/adapters/test_grpo_prefix.py)
        "packing",
        # the parameter layout: same weights, same checkpoint files (tests/adapters/test_grpo_fsdp.py)
        "sharding",
    }
)
"""Fields a resumed run may change: where and how often it writes, not what it computes."""

_RUN_FILES = ("config.json", "metrics.csv", "metrics.csv.tmp", "training_curve.png", "tensorboard")


def holds_run(folder: str | Path) -> bool:
    """Whether ``folder`` has a run's config, metrics or checkpoint."""
    folder = Path(folder)
    return any((folder / name).exists() for name in _RUN_FILES[:2]) or latest_checkpoint(folder) is not None


def recorded_config(folder: str | Path) -> dict[str, Any] | None:
    """The settings the folder's run recorded: ``config.json``, else its newest checkpoint's."""
    folder = Path(folder)
    path = folder / "config.json"
    if not path.is_file():
        checkpoint = latest_checkpoint(folder)
        if checkpoint is None:
            return None
        path = checkpoint / "trainer_state.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidConfig(f"{path}: unreadable ({exc}); pass --overwrite to start afresh") from None
    return dict(data.get("config", {})) if path.name == "trainer_state.json" else dict(data)


def settings_diff(recorded: Mapping[str, Any], config: GRPOConfig) -> list[str]:
    """``name: recorded -> now`` for each compared setting that differs, in field order."""
    current = json.loads(json.dumps(config.to_dict(), default=str))  # the form config.json holds
    return [
        f"{name}: {recorded[name]!r} -> {value!r}"
        for name, value in current.items()
        if name not in UNCOMPARED and name in recorded and recorded[name] != value
    ]


def check_run_folder(config: GRPOConfig) -> bool:
    """Refuse a used folder the config may not use; return whether the run resumes.

    Reads only: :func:`clear_run` does the clearing, on one process.

    Args:
        config: The run's settings (``output_dir``, ``resume``, ``overwrite``, ``record_dir``).

    Returns:
        ``True`` when ``config.output_dir`` holds a run that this one continues.

    Raises:
        InvalidConfig: The folder holds a run and neither flag allows reusing it, its
            settings differ, or the ``record_dir`` already holds another run's recordings.
    """
    folder = Path(config.output_dir)
    resumes = False
    if not config.overwrite and holds_run(folder):
        _check_resumable(folder, config)
        if not config.resume:
            raise InvalidConfig(
                f"{folder} already holds a training run; pass --resume to continue it, --overwrite to "
                "replace it, or --output-dir to start a new one"
            )
        resumes = True
    if not config.overwrite and not resumes and _recordings(config.record_dir):
        raise InvalidConfig(
            f"--record folder {config.record_dir} already holds recordings; record into a new folder, or "
            "pass --overwrite to replace them"
        )
    return resumes


def _check_resumable(folder: Path, config: GRPOConfig) -> None:
    """The recorded settings match and the run has not gone past ``config.num_steps``."""
    recorded = recorded_config(folder)
    diff = settings_diff(recorded or {}, config)
    if diff:
        raise InvalidConfig(
            f"{folder} holds a run with other settings ({'; '.join(diff[:3])}"
            f"{'; ...' if len(diff) > 3 else ''}); pass --overwrite to replace it or --output-dir to start a new one"
        )
    checkpoint = latest_checkpoint(folder)
    done = 0 if checkpoint is None else int(checkpoint.name.rsplit("-", 1)[1]) + 1
    if config.resume and done > config.num_steps:
        raise InvalidConfig(
            f"{folder} already holds {done} steps, more than num_steps = {config.num_steps}; "
            f"pass --steps {done} or more to resume it"
        )


def _recordings(record_dir: str | None) -> list[Path]:
    """The episode files a training run recorded into ``record_dir`` (``rank<r>/*.jsonl``)."""
    if record_dir is None or not Path(record_dir).is_dir():
        return []
    return sorted(Path(record_dir).glob("rank*/*.jsonl"))


def clear_run(config: GRPOConfig) -> None:
    """Remove the run files of ``config.output_dir`` and the recordings of ``config.record_dir``."""
    folder = Path(config.output_dir)
    if folder.is_dir():
        for path in folder.iterdir():
            if path.name in _RUN_FILES or path.name.startswith(("checkpoint-", ".checkpoint-")):
                shutil.rmtree(path) if path.is_dir() else path.unlink()
    for path in _recordings(config.record_dir):
        path.unlink()
