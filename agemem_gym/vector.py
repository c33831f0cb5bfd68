"""Gymnasium vector-env helpers shared by ``agemem run``, ``agemem eval`` and the trainer.

* :class:`EpisodeSlot` wraps each sub-env of a vector env (autoreset off) so a runner can
  play a planned list of episodes on it: the slot resets to the task pinned in
  :attr:`EpisodeSlot.pinned_task`, reports the end of its episode in ``info`` and then
  freezes until its next reset, so the vector env can keep stepping the slots that still
  play. :func:`agemem_gym.runner.play_episodes` is the loop that drives it.
* :class:`SlotState` is a slot's episode saved mid-way (the env's
  :class:`~agemem_gym.snapshot.EnvSnapshot` plus the last observation and ``info``):
  :meth:`EpisodeSlot.slot_state` takes it, and a slot whose :attr:`EpisodeSlot.pinned_state`
  holds one resumes that episode at its next reset (the trainer's memory-state forks).
* :func:`make_slot_envs` builds such a vector env (in-process, worker processes or Ray
  actors: :class:`agemem_gym.vector_ray.RayVectorEnv`).
* :class:`EnvFactory` is a picklable ``gym.make(env_id, **kwargs)`` for worker processes
  and Ray actors (a lambda would carry whatever its closure holds along with it).
* :func:`unbatch_info` takes one sub-env's ``info`` out of a vector env's batched infos.
"""

from __future__ import annotations

import dataclasses
import functools
import multiprocessing
import signal
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np
from gymnasium.envs.registration import EnvSpec
from gymnasium.vector import AutoresetMode

from agemem_gym.error import InvalidConfig

if TYPE_CHECKING:  # Ray is imported only when a Ray vector env is built
    from agemem_gym.vector_ray import RayVectorEnv

__all__ = ["EnvFactory", "EpisodeSlot", "Idle", "SlotState", "VECTOR_MODES", "make_slot_envs", "unbatch_info"]

VECTOR_MODES = ("sync", "async", "ray")
"""The ``mode`` values of :func:`make_slot_envs`."""


@dataclasses.dataclass(frozen=True)
class EnvFactory:
    """``gym.make(env_id, **kwargs)`` as a picklable callable.

    Worker processes and Ray actors receive their env's recipe pickled; this one carries the
    id and the arguments only (a lambda defined in a method would carry its whole closure).

    Attributes:
        env_id: A registered id (``AgeMem/*`` ids are registered in the worker on call) or
            an ``EnvSpec``.
        kwargs: ``gym.make`` arguments.
    """

    env_id: str | EnvSpec
    kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __call__(self) -> gym.Env:
        """Build the env."""
        import agemem_gym  # noqa: F401 - registers the ids in a fresh worker process

        return gym.make(self.env_id, **dict(self.kwargs))


class Idle:
    """The action a runner sends to a slot that plays no episode: a step that does nothing.

    A class rather than a sentinel object so it survives the pipe to a worker process
    (``isinstance`` still holds after unpickling, identity would not).
    """

    def __repr__(self) -> str:
        return "Idle()"


@dataclasses.dataclass(frozen=True)
class SlotState:
    """A slot's episode saved mid-way: where it can go on from, any number of times.

    Attributes:
        env: ``env.unwrapped.snapshot()`` (:class:`~agemem_gym.snapshot.EnvSnapshot`).
        observation: The last observation the slot returned (the next turn's context).
        info: The ``info`` that came with it.
    """

    env: Any
    observation: Any
    info: dict[str, Any]


class EpisodeSlot(gym.Wrapper):
    """A vector-env slot: resets to a pinned task and freezes once its episode is over.

    ``pinned_task`` (set per sub-env with ``VectorEnv.set_attr``) is used as
    ``options={"task_id": ...}`` at reset; the seed is the reset's own. The end of the
    episode is reported in ``info`` (``slot_done``, ``slot_terminated``, ``slot_truncated``;
    reset infos carry ``slot_done=False``) while ``terminated`` and ``truncated`` stay
    False. Once the episode is over, and for any :class:`Idle` action, a step changes
    nothing: it repeats the last observation and ``info`` with reward 0. A vector env
    without autoreset may then keep stepping all slots until its slowest one finishes,
    without resetting or stepping the finished ones.

    Attributes:
        pinned_task: The task of the next reset, or ``None`` for the env's own choice.
        pinned_state: A :class:`SlotState` the next reset resumes instead of starting an
            episode (``None``: a fresh episode).
    """

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.pinned_task: Any = None
        self.pinned_state: SlotState | None = None
        self._last: tuple[Any, dict[str, Any]] = ((), {})
        self._done = False  # a step before the first reset reaches the env, which refuses it

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        """Reset to the pinned task (if any); other ``options`` pass through."""
        opts = dict(options or {})
        if self.pinned_task is not None:
            opts.setdefault("task_id", self.pinned_task)
        obs, info = self.env.reset(seed=seed, options=opts)
        if self.pinned_state is not None:
            # reset first: the wrappers gym.make adds (order enforcing) then allow stepping
            self.env.unwrapped.restore(self.pinned_state.env)  # type: ignore[attr-defined]
            obs, info = self.pinned_state.observation, self.pinned_state.info
        info = {**info, "slot_done": False}
        self._last, self._done = (obs, info), False
        return obs, info

    def slot_state(self) -> SlotState | None:
        """The episode as it stands (``None`` once it has ended, or before the first reset)."""
        if self._done or not self._last[1]:
            return None
        snapshot = self.env.unwrapped.snapshot()  # type: ignore[attr-defined]
        return SlotState(snapshot, self._last[0], dict(self._last[1]))

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        """Step, or repeat the last observation once the episode is over or when idle."""
        if self._done or isinstance(action, Idle):
            obs, info = self._last
            return obs, 0.0, False, False, info
        obs, reward, term, trunc, info = self.env.step(action)
        info = {**info, "slot_done": bool(term or trunc), "slot_terminated": bool(term), "slot_truncated": bool(trunc)}
        self._last, self._done = (obs, info), bool(term or trunc)
        return obs, float(reward), False, False, info


def make_slot_envs(
    make_env: Callable[[], gym.Env] | Sequence[Callable[[], gym.Env]],
    num_envs: int = 1,
    mode: str = "sync",
) -> gym.vector.SyncVectorEnv | gym.vector.AsyncVectorEnv | RayVectorEnv:
    """A vector env (autoreset off) of :class:`EpisodeSlot`-wrapped sub-envs.

    Args:
        make_env: Builds one sub-env (the slot wrapper is added here); or a list with one
            builder per sub-env.
        num_envs: Number of sub-envs when ``make_env`` is a single builder.
        mode: ``"sync"`` (in this process), ``"async"`` (one worker process per sub-env) or
            ``"ray"`` (one Ray actor per sub-env; needs the ``[ray]`` extra and picklable
            builders, see :class:`~agemem_gym.vector_ray.RayVectorEnv`).

    Returns:
        The vector env.
    """
    builders = [make_env] * num_envs if callable(make_env) else list(make_env)
    fns: list[Callable[[], gym.Env]] = [functools.partial(_slot, fn) for fn in builders]
    autoreset = AutoresetMode.DISABLED
    if mode == "sync":
        return gym.vector.SyncVectorEnv(fns, autoreset_mode=autoreset)
    if mode == "async":
        # text observations have no fixed shape: workers send them through pipes
        workers = [functools.partial(_worker_slot, fn) for fn in builders]
        return gym.vector.AsyncVectorEnv(workers, shared_memory=False, autoreset_mode=autoreset)
    if mode == "ray":
        from agemem_gym.vector_ray import RayVectorEnv

        return RayVectorEnv(fns, autoreset_mode=autoreset)
    raise InvalidConfig(f"vector mode must be one of {', '.join(VECTOR_MODES)}, got {mode!r}")


def _slot(make_env: Callable[[], gym.Env]) -> gym.Env:
    return EpisodeSlot(make_env())


def _worker_slot(make_env: Callable[[], gym.Env]) -> gym.Env:
    """:func:`_slot` in an ``AsyncVectorEnv`` worker, which leaves Ctrl-C to the main process.

    Ctrl-C sends SIGINT to the whole foreground process group: each worker would die in the
    middle of a step and send its traceback to the main process, which prints them all. The
    main process alone stops the run; it closes the workers. (``AsyncVectorEnv`` also builds
    one env in the main process for its spaces: that one keeps SIGINT.)
    """
    if multiprocessing.parent_process() is not None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    return _slot(make_env)


def close_quietly(envs: gym.vector.VectorEnv) -> None:
    """Close ``envs`` after a failure or Ctrl-C: no waiting on a pending step, no warnings about it.

    An ``AsyncVectorEnv`` stopped mid-step warns that it waits for the step and then waits; its
    workers are terminated instead (the run is being abandoned).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if isinstance(envs, gym.vector.AsyncVectorEnv):
            envs.close(terminate=True)
        else:
            envs.close()


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
