"""``run_sft``: LoRA behaviour cloning from demonstrations, saved as a merged model folder.

The warm start for GRPO: a small model that has never produced a well-formed memory turn
gets no reward signal to learn from. Cloning a few hundred demonstrator turns first gives
the trainer a policy that already stores, retrieves and answers in the turn grammar.

The recipe (the defaults) is one that worked on ``AgeMem/Probe-Recall-v0`` with
SmolLM2-135M-Instruct: LoRA r = 16 on every linear layer, AdamW at lr 1e-3, 8 turns per step,
16 steps over the 192 turns the ``demonstrator`` plays on the 48 training tasks. The output
folder holds the merged weights and the tokenizer (no adapter), so ``agemem train --model
DIR`` and ``agemem run --policy hf --model DIR`` load it like any model folder.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from agemem_gym.adapters.grpo.state import checkpoint_layers, new_lora
from agemem_gym.adapters.sft.demos import Demonstration, play_demonstrations, recorded_demonstrations
from agemem_gym.adapters.sft.loss import TurnSample, encode_demonstrations, split_rows, turn_loss
from agemem_gym.config import check_field_types
from agemem_gym.error import InvalidConfig

__all__ = ["SFTConfig", "SFTResult", "run_sft", "collect_demonstrations", "split_tasks", "SFT_FILE"]

SFT_FILE = "sft.json"
"""Written into the model folder: the settings, the demonstrations used and the loss per step."""


@dataclasses.dataclass(frozen=True)
class SFTConfig:
    """Behaviour-cloning settings (defaults: the recipe in the module docstring)."""

    model: str = "smollm2"
    """``"smollm2"``, ``"tiny"``, ``"tiny-vocab"`` or a local Hugging Face folder."""
    env_id: str = "AgeMem/Probe-Recall-v0"
    """The env whose turns are cloned."""
    env_kwargs: Mapping[str, Any] = dataclasses.field(default_factory=lambda: {"num_tasks": 48, "max_rounds": 2})
    """``gym.make`` arguments; use the GRPO run's own, so the prompts are the ones it samples in."""
    policy: str = "demonstrator"
    """The policy that plays the demonstrations (ignored when ``records`` is given)."""
    mix_policy: str = ""
    """A second policy that plays a ``mix_fraction`` share of the tasks, its episodes cloned whatever
    they score (e.g. ``"no-memory"``): a deliberately partial warm start, which leaves GRPO groups
    with mixed rewards to learn from where a full clone of ``policy`` would leave none."""
    mix_fraction: float = 0.0
    """The share of the tasks ``mix_policy`` plays (a fixed draw from ``seed``)."""
    records: tuple[str, ...] = ()
    """``--record`` folders or ``.jsonl`` files to clone instead of playing ``policy``."""
    tasks: tuple[int, ...] | None = None
    """Task indices ``policy`` plays (``None``: every task of the env)."""
    min_score: float = 1.0
    """An episode is cloned when its ``success`` (else ``task_score``) reaches this."""
    num_steps: int = 16
    """Optimizer steps."""
    batch_size: int = 8
    """Turns per step (drawn without replacement, reshuffled every pass)."""
    learning_rate: float = 1e-3
    """AdamW learning rate (constant)."""
    lora_rank: int = 16
    """LoRA rank on every linear layer (0: full fine-tuning)."""
    lora_alpha: int = 32
    """LoRA α."""
    max_grad_norm: float = 1.0
    """Gradient clipping (0 turns it off)."""
    row_tokens: int = 8192
    """Most tokens in one forward pass (a step's turns with their shared prefix written once)."""
    tools: bool | str = "auto"
    """How the prompts pass tool schemas (the HF policy's ``tools``; keep the policy's value)."""
    gradient_checkpointing: bool = True
    """Recompute decoder layers in the backward pass (less memory, one extra forward)."""
    seed: int = 0
    """Seeds the tiny models, the episodes and the batch order."""
    output_dir: str = "runs/sft"
    """The merged model folder to write."""
    overwrite: bool = False
    """Replace an existing ``output_dir``."""
    torch_threads: int = 0
    """CPU threads for torch (0: torch's default)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "records", tuple(str(r) for r in self.records))
        if self.tasks is not None:
            object.__setattr__(self, "tasks", tuple(int(t) for t in self.tasks))
        check_field_types(self)
        for name in ("num_steps", "batch_size", "row_tokens"):
            if int(getattr(self, name)) < 1:
                raise InvalidConfig(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.learning_rate <= 0 or self.lora_rank < 0 or self.max_grad_norm < 0:
            raise InvalidConfig("learning_rate must be > 0, lora_rank and max_grad_norm >= 0")
        if not 0.0 <= self.mix_fraction <= 1.0 or (self.mix_fraction > 0) != bool(self.mix_policy):
            raise InvalidConfig("mix_fraction must be in [0, 1], and > 0 exactly when mix_policy is given")
        if self.mix_policy and self.records:
            raise InvalidConfig("mix_policy plays tasks; it cannot be combined with records")
        if self.tools not in (True, False, "auto"):
            raise InvalidConfig(f"tools must be True, False or 'auto', got {self.tools!r}")

    def to_dict(self) -> dict[str, Any]:
        """The settings as JSON-ready values."""
        out = dataclasses.asdict(self)
        out["env_kwargs"] = dict(self.env_kwargs)
        return out


@dataclasses.dataclass(frozen=True)
class SFTResult:
    """What a run produced.

    Attributes:
        model_dir: The merged model folder.
        losses: Token-mean loss of each step (before its update).
        turns: Demonstration turns cloned.
        episodes: Episodes they came from.
        seconds: Training time (demonstrations excluded).
    """

    model_dir: Path
    losses: list[float]
    turns: int
    episodes: int
    seconds: float


def collect_demonstrations(config: SFTConfig, tokenizer: Any) -> tuple[list[Demonstration], int]:
    """The demonstrations ``config`` names: its recordings, or its policy played on its tasks.

    Raises:
        InvalidConfig: No episode succeeded.
    """
    if config.records:
        return recorded_demonstrations(config.records, env_id=config.env_id, min_score=config.min_score)
    import gymnasium as gym

    from agemem_gym import policies

    tasks = config.tasks
    if tasks is None:
        probe = gym.make(config.env_id, **dict(config.env_kwargs))
        tasks = tuple(range(len(cast(Any, probe.unwrapped).task_ids)))
        probe.close()
    demos: list[Demonstration] = []
    kept = 0
    for name, share, min_score in split_tasks(config, tasks):
        more, n = play_demonstrations(
            config.env_id,
            policies.make(name),
            share,
            env_kwargs=config.env_kwargs,
            tokenizer=tokenizer,
            seed=config.seed,
            min_score=min_score,
        )
        demos, kept = demos + more, kept + n
    if not demos:
        raise InvalidConfig(f"{config.policy} succeeded in none of the {len(tasks)} episodes: nothing to clone")
    return demos, kept


def split_tasks(config: SFTConfig, tasks: Sequence[int]) -> list[tuple[str, tuple[int, ...], float]]:
    """Which policy plays which tasks, and the score its episodes must reach to be cloned.

    ``mix_policy`` gets ``round(mix_fraction * len(tasks))`` tasks drawn with ``config.seed``,
    kept whatever they score; ``policy`` plays the rest under ``min_score``.
    """
    n_mix = round(config.mix_fraction * len(tasks)) if config.mix_policy else 0
    drawn = set(np.random.default_rng(config.seed).permutation(len(tasks))[:n_mix].tolist())
    mine = tuple(t for i, t in enumerate(tasks) if i not in drawn)
    mixed = tuple(t for i, t in enumerate(tasks) if i in drawn)
    out = [(config.policy, mine, config.min_score)] if mine else []
    return out + ([(config.mix_policy, mixed, float("-inf"))] if mixed else [])


def _trainable(model: Any, config: SFTConfig) -> Any:
    """``model`` with a fresh LoRA adapter on every linear layer (or whole, for ``lora_rank = 0``), in train mode."""
    if config.gradient_checkpointing:
        model = checkpoint_layers(model)
    if config.lora_rank:
        model = new_lora(model, config.lora_rank, config.lora_alpha)
    return model.train()


def batches(n: int, batch_size: int, steps: int, rng: np.random.Generator) -> list[list[int]]:
    """Sample indices for ``steps`` steps: passes over a fresh permutation, a pass's tail carried into the next."""
    order: list[int] = []
    out = []
    for _ in range(steps):
        while len(order) < min(batch_size, n):
            order += [int(i) for i in rng.permutation(n)]
        out.append(order[:batch_size])
        order = order[batch_size:]
    return out


def train_step(model: Any, optimizer: torch.optim.Optimizer, batch: Sequence[TurnSample], config: SFTConfig) -> float:
    """One optimizer step on ``batch``: token-mean loss, each row's prefix computed once."""
    optimizer.zero_grad(set_to_none=True)
    total = sum(len(s.response_ids) for s in batch)
    value = 0.0
    for row in split_rows(batch, config.row_tokens):
        loss, _ = turn_loss(model, row, shared_prefix=True)
        (loss / total).backward()
        value += float(loss.detach())
    params = [p for p in model.parameters() if p.requires_grad]
    if config.max_grad_norm:
        torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
    optimizer.step()
    return value / total


def run_sft(config: SFTConfig, *, on_step: Callable[[int, float], None] | None = None) -> SFTResult:
    """Clone the demonstrations into the model and save the merged model folder.

    Args:
        config: The settings.
        on_step: Called with ``(step, loss)`` after each step (progress output).

    Returns:
        The folder, the loss curve and what was cloned.

    Raises:
        InvalidConfig: ``output_dir`` exists (without ``overwrite``) or no episode succeeded.
    """
    from agemem_gym.policies.llm.models import load_model

    out = Path(config.output_dir)
    if out.exists() and any(out.iterdir()) and not config.overwrite:
        raise InvalidConfig(
            f"{out} exists and is not empty; pass --overwrite to replace it or pick another --output-dir"
        )
    if config.torch_threads:
        torch.set_num_threads(config.torch_threads)
    torch.manual_seed(config.seed)
    extra = {"seed": config.seed} if config.model in ("tiny", "tiny-vocab") else {}
    model, tokenizer = load_model(config.model, **extra)
    demos, episodes = collect_demonstrations(config, tokenizer)
    samples = encode_demonstrations(tokenizer, demos, config.tools)
    model = _trainable(model, config)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=0.0)
    rng = np.random.default_rng(config.seed)
    losses, start = [], time.perf_counter()
    for step, batch in enumerate(batches(len(samples), config.batch_size, config.num_steps, rng)):
        losses.append(train_step(model, optimizer, [samples[i] for i in batch], config))
        if on_step is not None:
            on_step(step, losses[-1])
    seconds = time.perf_counter() - start
    merged = model.merge_and_unload() if config.lora_rank else model
    report = {"config": config.to_dict(), "turns": len(samples), "episodes": episodes, "losses": losses}
    save_model_folder(merged.eval(), tokenizer, out, report)
    return SFTResult(out, losses, len(samples), episodes, seconds)


def save_model_folder(model: Any, tokenizer: Any, folder: Path, report: Mapping[str, Any]) -> Path:
    """Write the model, its tokenizer and ``sft.json`` into ``folder`` (atomically replacing it)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        (staging / SFT_FILE).write_text(json.dumps(report, indent=2))
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return folder
