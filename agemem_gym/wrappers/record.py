"""Record episodes of any :class:`~agemem_gym.core.MemoryEnv` as JSON Lines, and read them back.

:class:`RecordEpisode` is a :class:`gymnasium.Wrapper` that writes one file per episode:
what the agent said, which tool calls ran and what they returned, how the long-term memory
(LTM) and the context changed, the token counts against the budget, and the final scores.
:func:`read_episode` reads a file back into an :class:`Episode` that can rebuild the LTM and
the context as they were after every step. ``agemem view`` turns files into an HTML page.

The wrapper only reads ``env.unwrapped`` (its ``ltm``, ``stm``, ``task``, ``config`` and
``last_turn``) and the values ``reset``/``step`` return: what each turn did (its calls, their
results, memory ids and errors) comes from the env's ``info["turn"]``, never from parsing
text again. It never changes what the env returns. Records contain
no wall clock (unless ``record_timing=True``, which adds a separate ``timing`` field), so the
same seed and the same actions give byte-identical files.

**The files contain gold data**: the task's gold answers and supporting facts (taken from
``env.unwrapped.task``) are in the header, so a person can see what should have been stored.
Do not feed recordings back to a policy.

Files and vector envs:
    One file per episode, ``{directory}/{name_prefix}-{episode:05d}-{task_id}.jsonl``
    (``episode`` counts the wrapper's resets from 0; the task id is reduced to file-name-safe
    characters). Files are created exclusively: an existing file raises
    :class:`~agemem_gym.error.InvalidConfig` unless ``overwrite=True``. In a vector env each
    sub-env needs its own ``name_prefix``: :func:`recording_env_fns` builds the env functions
    (``env0``, ``env1``, ...) for ``SyncVectorEnv``/``AsyncVectorEnv``. The wrapper pickles
    (the open file is not part of its state: an unpickled copy resumes recording at its next
    ``reset``).

Schema ``agemem-episode/1`` (one JSON object per line; keys marked ? are left out when
empty, ``null`` or false, to keep files small; ``docs/recording-schema.md`` has the same with
a table per record)::

    {"type": "header", "schema": "agemem-episode/1",
     "env_id": str, "env_kwargs": {...}, "episode": int, "seed": int | null, "options": {...},
     "metadata": {...},                    # free-form, from metadata= / set_metadata()
     "config": {EnvConfig fields}, "budget": int,   # budget = max_context_tokens
     "task": {"task_id", "query", "answers": [str], "facts": [str] | null},   # GOLD DATA
     "reset": {"stage", "round", "tokens", "prompt_tokens", "overflow", "size",
               "messages": [message], "ltm": [entry]}}

    {"type": "step", "t": int (1-based), "stage": int, "round": int,   # stage/round when acting
     "action": str,            # the turn as it entered the context (cut when too long)
     "structured"?: any,       # the action as given, when it was not a string
     "parsed": {"kind": "tool_call" | "answer" | "action" | "invalid",
                "think"?, "answer"?, "act"?, "notes"?},
     "calls": [{"name", "arguments", "ok": bool, "result": str,   # info["turn"]["calls"]
                "retrieved"?: [memory id]}],
     "errors"?: [str],         # the step's other invalid inputs: format errors, hook rejections
     "context": {"added": [message], "removed"?: [n], "tokens": int, "prompt_tokens": int,
                 "overflow": bool, "size": int},
     "ltm"?: {"add"?: [entry], "update"?: [entry], "delete"?: [id]},   # diff against step t-1
     "ltm_size": int, "reward": float, "terminated": bool, "truncated": bool,
     "timing"?: {"step_s": float}}        # only with record_timing=True (not deterministic)

    {"type": "end", "complete": bool, "steps": int, "return": float,
     "final"?: {...}}          # the last info without "privileged" and "turn": answer, task_score, success,
                               # memory_quality, mq_precision, mq_recall, reward_components,
                               # penalties, episode_reward, tool_calls, invalid_calls, ...

    entry   = {"id": "mem_3fa2c1d0", "content": str, "metadata": {...}}   # full new value
    message = {"n": int, "pos": int, "role", "kind", "stage", "tokens", "content"?, "of"?}

Messages are numbered ``n`` = 0, 1, ... in the order they first enter the context; ``pos``
is the index in the context after the step; ``removed`` lists the numbers that left it (a
filter, a summary, the Stage-2 context reset). Applying ``removed`` and then inserting
``added`` in ``pos`` order rebuilds the context exactly. To avoid writing a text twice, the
message of the turn itself has ``"of": "action"`` and no content, and the result of call
``i`` has ``"of": "call:i"`` (its text is ``calls[i].result``); :func:`read_episode` fills
them in.

A turn whose tool calls use the last round of Stage 1 also ends Stage 1, and the context
reset removes the turn and its results before ``step`` returns: ``context.added`` then lacks
them, while ``action`` and ``calls`` still hold them (the env keeps the last turn). Files of
earlier versions may hold ``"ok": null``, ``"result": null`` and ``"results_lost": true`` for
such a step; :func:`read_episode` accepts them.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, SupportsFloat, cast

import gymnasium as gym

from agemem_gym.error import InvalidConfig
from agemem_gym.wrappers.episode import (
    SCHEMA,
    CallRecord,
    Episode,
    MemoryRecord,
    MessageRecord,
    StepRecord,
    read_episode,
)
from agemem_gym.wrappers.jsonl import (
    EpisodeTracker,
    added_json,
    call_json,
    compact_step,
    context_json,
    jsonable,
    message_json,
    parsed_json,
)

if TYPE_CHECKING:
    from agemem_gym.core import MemoryEnv

__all__ = [
    "SCHEMA",
    "RecordEpisode",
    "maybe_record",
    "recording_env_fns",
    "read_episode",
    "Episode",
    "StepRecord",
    "CallRecord",
    "MemoryRecord",
    "MessageRecord",
]

_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]+")


# ====================================================================== the wrapper
class RecordEpisode(gym.Wrapper):
    """Write every episode of a :class:`~agemem_gym.core.MemoryEnv` to a JSON Lines file.

    See the module docstring for the file layout and the schema. The wrapper returns exactly
    what the wrapped env returns.

    Args:
        env: An env whose ``unwrapped`` is a :class:`~agemem_gym.core.MemoryEnv`.
        directory: Folder for the files (created when missing).
        name_prefix: File-name prefix; give each sub-env of a vector env its own.
        metadata: JSON-serialisable fields copied into every header (e.g. the policy's name).
        episode_trigger: ``episode_index -> bool``; record only the episodes it accepts
            (default: all).
        overwrite: Replace existing files instead of raising.
        record_timing: Add the wall-clock seconds of each ``step`` in a separate ``timing``
            field (makes files differ between runs).

    Example:
        >>> import gymnasium as gym, tempfile, agemem_gym
        >>> from agemem_gym.wrappers.record import RecordEpisode, read_episode
        >>> folder = tempfile.mkdtemp()
        >>> env = RecordEpisode(gym.make("AgeMem/HotpotQA-v0", num_distractors=0), folder)
        >>> _ = env.reset(seed=0)
        >>> _ = env.step('<think>x</think><tool_call>[{"name": "Add_memory", '
        ...              '"arguments": {"content": "Paris is in France."}}]</tool_call>')
        >>> env.close()
        >>> episode = read_episode(env.paths[0])
        >>> [m.content for m in episode.ltm(1)]
        ['Paris is in France.']
    """

    def __init__(
        self,
        env: gym.Env,
        directory: str | Path,
        *,
        name_prefix: str = "episode",
        metadata: Mapping[str, Any] | None = None,
        episode_trigger: Callable[[int], bool] | None = None,
        overwrite: bool = False,
        record_timing: bool = False,
    ) -> None:
        super().__init__(env)
        from agemem_gym.core import MemoryEnv

        if not isinstance(env.unwrapped, MemoryEnv):
            raise InvalidConfig(f"RecordEpisode needs a MemoryEnv underneath, got {type(env.unwrapped).__name__}")
        if not name_prefix or _SAFE_NAME.search(name_prefix):
            raise InvalidConfig(f"name_prefix must be non-empty and use only A-Z a-z 0-9 _ . -, got {name_prefix!r}")
        self.directory = Path(directory)
        self.name_prefix = name_prefix
        self.metadata: dict[str, Any] = jsonable(dict(metadata or {}))
        self.episode_trigger = episode_trigger
        self.overwrite = overwrite
        self.record_timing = record_timing
        self.episode_index = -1
        self.paths: list[Path] = []
        self._tracker: EpisodeTracker | None = None
        self._info: Mapping[str, Any] = {}

    def set_metadata(self, **fields: Any) -> None:
        """Merge ``fields`` into the metadata written in the headers of the following episodes."""
        self.metadata.update(jsonable(fields))

    # -- gym API -------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        """Reset the env and, when this episode is recorded, write the header."""
        self._finish(complete=False, info=None)
        obs, info = self.env.reset(seed=seed, options=options)
        self.episode_index += 1
        self._info = info
        if self.episode_trigger is None or self.episode_trigger(self.episode_index):
            self._start(seed, options, info)
        return obs, info

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        """Step the env and append the step's record."""
        if self._tracker is None:
            return self.env.step(action)
        start = time.perf_counter() if self.record_timing else 0.0
        obs, reward, terminated, truncated, info = self.env.step(action)
        elapsed = time.perf_counter() - start if self.record_timing else None
        self._write_step(action, float(reward), bool(terminated), bool(truncated), info, elapsed)
        self._info = info
        if terminated or truncated:
            self._finish(complete=True, info=info)
        return obs, reward, terminated, truncated, info

    def close(self) -> None:
        """Close the open file (an unfinished episode is marked incomplete), then the env."""
        self._finish(complete=False, info=None)
        super().close()

    # -- pickling: the open file and the live diff state stay behind ---------------------
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_tracker"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    # -- records -------------------------------------------------------------------------
    def _open(self, task_id: str) -> IO[str]:
        self.directory.mkdir(parents=True, exist_ok=True)
        slug = _SAFE_NAME.sub("_", task_id)[:48] or "task"
        path = self.directory / f"{self.name_prefix}-{self.episode_index:05d}-{slug}.jsonl"
        try:
            handle = open(path, "w" if self.overwrite else "x", encoding="utf-8")  # closed in _finish
        except FileExistsError:
            raise InvalidConfig(
                f"{path} already exists; record into a new folder (a new --record DIR; agemem train "
                f"--overwrite replaces a run's recordings), or in Python pass overwrite=True or give each "
                f"env of a vector env its own name_prefix (see recording_env_fns)"
            ) from None
        self.paths.append(path)
        return handle

    def _start(self, seed: int | None, options: Mapping[str, Any] | None, info: Mapping[str, Any]) -> None:
        base = cast("MemoryEnv", self.env.unwrapped)  # checked in __init__
        task = base.task
        assert task is not None  # reset has run
        tracker = EpisodeTracker(self._open(task.task_id), base)
        added, _ = tracker.context_changes()
        tracker.ltm_changes()
        spec = self.env.spec
        tracker.write(
            {
                "type": "header",
                "schema": SCHEMA,
                "env_id": spec.id if spec is not None else type(base).__name__,
                "env_kwargs": jsonable(spec.kwargs if spec is not None else {}),
                "episode": self.episode_index,
                "seed": seed,
                "options": jsonable(options or {}),
                "metadata": self.metadata,
                "config": jsonable(dataclasses.asdict(base.config)),
                "budget": int(base.config.max_context_tokens),
                "task": {
                    "task_id": task.task_id,
                    "query": task.query,
                    "answers": list(task.answers),
                    "facts": None if task.facts is None else list(task.facts),
                },
                "reset": {
                    "stage": info.get("stage"),
                    "round": info.get("round"),
                    **context_json(info, len(base.stm)),
                    "messages": [message_json(n, pos, m) for n, pos, m in added],
                    "ltm": tracker.ltm_list(),
                },
            }
        )
        self._tracker = tracker

    def _write_step(
        self,
        action: Any,
        reward: float,
        terminated: bool,
        truncated: bool,
        info: Mapping[str, Any],
        elapsed: float | None,
    ) -> None:
        tracker = self._tracker
        assert tracker is not None
        base = tracker.base
        tracker.steps += 1
        tracker.total += reward
        turn, report = base.last_turn, info["turn"]  # what the env ran, and how it reports it
        assert turn is not None
        added, removed = tracker.context_changes()
        record = {
            "type": "step",
            "t": tracker.steps,
            "stage": self._info.get("stage"),
            "round": int(self._info.get("round", 0)) + 1,
            "action": turn.text,
            "structured": None if isinstance(action, str) else jsonable(action),
            "parsed": parsed_json(report, turn),
            "calls": [call_json(call) for call in report["calls"]],
            "errors": list(report["errors"]),
            "context": {"added": added_json(added, turn), "removed": removed, **context_json(info, len(base.stm))},
            "ltm": tracker.ltm_changes(),
            "ltm_size": int(info.get("ltm_size", len(base.ltm))),
            "reward": reward,
            "terminated": terminated,
            "truncated": truncated,
            "timing": None if elapsed is None else {"step_s": round(elapsed, 6)},
        }
        tracker.write(compact_step(record))

    def _finish(self, *, complete: bool, info: Mapping[str, Any] | None) -> None:
        tracker = self._tracker
        if tracker is None:
            return
        self._tracker = None
        end: dict[str, Any] = {"type": "end", "complete": complete, "steps": tracker.steps, "return": tracker.total}
        if info is not None:
            # the step records already hold each turn
            end["final"] = jsonable({k: v for k, v in info.items() if k not in ("privileged", "turn")})
        try:
            tracker.write(end)
        finally:
            tracker.handle.close()


# ====================================================================== helpers for runners
def maybe_record(env: gym.Env, directory: str | Path | None, **kwargs: Any) -> gym.Env:
    """Wrap ``env`` in :class:`RecordEpisode` when ``directory`` is given; return it unchanged otherwise.

    The one call a runner (``agemem run``/``eval``/``train``) needs behind a ``--record DIR`` flag.

    Args:
        env: The env to record.
        directory: Folder for the episode files, or ``None`` to record nothing.
        **kwargs: :class:`RecordEpisode` arguments (``name_prefix``, ``metadata``, ...).

    Returns:
        The (maybe) wrapped env.
    """
    return env if directory is None else RecordEpisode(env, directory, **kwargs)


def _make_recorded(env_id: str, env_kwargs: Mapping[str, Any], directory: str, **record_kwargs: Any) -> gym.Env:
    return RecordEpisode(gym.make(env_id, **env_kwargs), directory, **record_kwargs)


def recording_env_fns(
    env_id: str,
    num_envs: int,
    directory: str | Path,
    *,
    env_kwargs: Mapping[str, Any] | None = None,
    **record_kwargs: Any,
) -> list[Callable[[], gym.Env]]:
    """Picklable env functions for a vector env whose sub-envs each record to their own files.

    Sub-env ``i`` writes ``env{i}-{episode:05d}-{task_id}.jsonl``.

    Args:
        env_id: A registered id.
        num_envs: Number of sub-envs.
        directory: Folder for the files.
        env_kwargs: Passed to ``gym.make``.
        **record_kwargs: :class:`RecordEpisode` arguments other than ``name_prefix``.

    Returns:
        ``num_envs`` functions for ``gymnasium.vector.SyncVectorEnv`` / ``AsyncVectorEnv``.

    Example:
        >>> from gymnasium.vector import SyncVectorEnv
        >>> envs = SyncVectorEnv(recording_env_fns("AgeMem/HotpotQA-v0", 2, "recordings"))  # doctest: +SKIP
    """
    if num_envs < 1:
        raise InvalidConfig(f"num_envs must be >= 1, got {num_envs}")
    if "name_prefix" in record_kwargs:
        raise InvalidConfig("recording_env_fns names the files env0, env1, ...; do not pass name_prefix")
    kwargs = dict(env_kwargs or {})
    return [
        functools.partial(_make_recorded, env_id, kwargs, str(directory), name_prefix=f"env{i}", **record_kwargs)
        for i in range(num_envs)
    ]
