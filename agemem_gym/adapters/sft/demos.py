"""Demonstrations for behaviour cloning: (observation, turn) pairs from good episodes.

Two sources give the same :class:`Demonstration` records:

* :func:`play_demonstrations`: a named policy (``demonstrator`` by default) plays the env's
  training tasks; episodes that do not succeed are left out. The env is built as the
  trainer builds its rollout envs (the tokenizer passed, so token budgets and packing are
  the model's own), plus ``privileged_info`` when the policy reads it (the observations do
  not change: privileged data only ever appears in ``info``).
* :func:`recorded_demonstrations`: ``--record`` files of any policy
  (:mod:`agemem_gym.wrappers.record`), successful episodes only. The observation before
  step ``t`` is the recorded context after step ``t - 1``; turns whose context the env had
  packed (cut to the budget) are left out, since the recording holds the full context, not
  the packed one the policy saw.

Torch-free: the tokens are made by :mod:`agemem_gym.adapters.sft.loss`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from agemem_gym.error import DataNotFound, InvalidConfig

__all__ = ["Demonstration", "play_demonstrations", "recorded_demonstrations", "succeeded"]


@dataclasses.dataclass(frozen=True)
class Demonstration:
    """One agent turn to imitate and the context it was taken in.

    Attributes:
        messages: The observation as plain ``{"role", "content"}`` chat messages.
        turn: The agent's turn text (the training target).
        episode: Which episode it comes from (turns of one episode share their history).
        stage: The stage the turn was taken in.
    """

    messages: tuple[Mapping[str, str], ...]
    turn: str
    episode: str
    stage: int


def succeeded(final: Mapping[str, Any], min_score: float) -> bool:
    """Whether an episode's last ``info`` counts as a success: ``success`` (else ``task_score``) ``>= min_score``."""
    score = final.get("success", final.get("task_score"))
    return score is not None and float(score) >= min_score


def _plain(observation: Iterable[Mapping[str, Any]]) -> tuple[dict[str, str], ...]:
    return tuple({"role": str(m["role"]), "content": str(m["content"])} for m in observation)


def play_demonstrations(
    env_id: str,
    policy: Any,
    tasks: Sequence[int],
    *,
    env_kwargs: Mapping[str, Any] | None = None,
    tokenizer: Any = None,
    seed: int = 0,
    min_score: float = 1.0,
    max_steps: int = 200,
) -> tuple[list[Demonstration], int]:
    """Play ``policy`` on each task of ``tasks`` and keep the turns of the successful episodes.

    Args:
        env_id: The env.
        policy: A policy object (``act(observation, info) -> str``).
        tasks: Task indices; episode ``i`` plays task ``tasks[i]`` with seed ``seed + i``.
        env_kwargs: ``gym.make`` arguments (the training run's).
        tokenizer: The model's tokenizer, given to the env as the trainer does.
        seed: Seed of the first episode.
        min_score: An episode counts when its ``success`` (or ``task_score``) reaches this.
        max_steps: Safety cap on turns per episode.

    Returns:
        The demonstrations and the number of episodes kept.
    """
    import gymnasium as gym

    from agemem_gym.runner import env_kwargs_for

    kwargs = env_kwargs_for(
        policy, {**({"tokenizer": tokenizer} if tokenizer is not None else {}), **(env_kwargs or {})}
    )
    env = gym.make(env_id, **kwargs)
    demos: list[Demonstration] = []
    kept = 0
    try:
        for i, task in enumerate(tasks):
            turns, final = _play_one(env, policy, int(task), seed + i, max_steps)
            if succeeded(final, min_score):
                kept += 1
                demos += [dataclasses.replace(d, episode=f"{env_id}#{task}") for d in turns]
    finally:
        env.close()
    return demos, kept


def _play_one(
    env: Any, policy: Any, task: int, seed: int, max_steps: int
) -> tuple[list[Demonstration], dict[str, Any]]:
    """One episode: its turns and its last ``info``."""
    if hasattr(policy, "reset"):
        policy.reset()
    obs, info = env.reset(seed=seed, options={"task_id": task})
    turns: list[Demonstration] = []
    for _ in range(max_steps):
        turn = policy.act(obs, info)
        turns.append(Demonstration(_plain(obs), str(turn), "", int(info.get("stage", 0))))
        obs, _, terminated, truncated, info = env.step(turn)
        if terminated or truncated:
            return turns, dict(info)
    return turns, {}


def _recording_files(sources: Sequence[str | Path]) -> list[Path]:
    files: list[Path] = []
    for source in sources:
        path = Path(source)
        if path.is_dir():
            files += sorted(path.rglob("*.jsonl"))
        elif path.is_file():
            files.append(path)
        else:
            raise DataNotFound(f"no recording at {source}: give --record folders or .jsonl files")
    if not files:
        raise DataNotFound(f"no .jsonl recordings under {', '.join(map(str, sources))}")
    return files


def recorded_demonstrations(
    sources: Sequence[str | Path], *, env_id: str | None = None, min_score: float = 1.0
) -> tuple[list[Demonstration], int]:
    """The turns of the successful recorded episodes (the module docstring says which turns).

    Args:
        sources: ``--record`` folders (searched recursively) or ``.jsonl`` files.
        env_id: Keep only episodes of this env (``None``: all).
        min_score: An episode counts when its final ``success`` (or ``task_score``) reaches this.

    Returns:
        The demonstrations and the number of episodes kept.

    Raises:
        DataNotFound: A source does not exist or holds no recording.
        InvalidConfig: The recordings hold no successful episode (of ``env_id``).
    """
    from agemem_gym.wrappers import read_episode

    demos: list[Demonstration] = []
    kept = 0
    for path in _recording_files(sources):
        episode = read_episode(path)
        if (env_id is not None and episode.env_id != env_id) or not episode.complete:
            continue
        if not succeeded(episode.final, min_score):
            continue
        kept += 1
        demos += _episode_turns(episode, str(path))
    if not demos:
        raise InvalidConfig(f"no successful episode{' of ' + env_id if env_id else ''} in the recordings")
    return demos, kept


def _episode_turns(episode: Any, name: str) -> list[Demonstration]:
    """The turns of one recorded episode whose observation was the whole context."""
    reset = episode.header.get("reset", {})
    sizes = [(int(reset.get("tokens", 0)), int(reset.get("prompt_tokens", 0)))]
    sizes += [(s.context_tokens, s.prompt_tokens) for s in episode.steps]
    out = []
    for step in episode.steps:
        full, packed = sizes[step.t - 1]
        if packed < full:  # the policy saw a packed context the recording does not hold
            continue
        messages = tuple({"role": m.role, "content": m.content} for m in episode.context(step.t - 1))
        out.append(Demonstration(messages, step.action, name, step.stage))
    return out
