"""A Gymnasium vector env whose sub-envs live in Ray actors, with replay of lost workers.

:class:`RayVectorEnv` is a drop-in for ``gym.vector.SyncVectorEnv`` (same constructor
arguments, same batched observations, rewards and infos on the same seeds) whose sub-envs
each run in their own Ray actor, stepped in parallel. It is worth its per-call cost (about
a millisecond a step) for expensive engines — ScienceWorld's JVM, ALFWorld's TextWorld — and
for spreading sub-envs over the machines of a Ray cluster; an env whose step takes a fraction
of a millisecond runs faster in-process (``benchmarks/bench_ray.py`` measures both).

Fault tolerance: the driver keeps, per sub-env, the seed and options of its last reset, the
attributes set on it and the actions sent since. When an actor dies (its process is killed,
its node is lost), a new actor is built from the same factory, reset with the same seed and
fed the same actions, and the call that failed is sent again: for a deterministic env (same
seed, same episode) the caller sees the same observations, rewards and infos, plus
``info["worker_restarted"]`` (that sub-env's restart count) on the step that recovered.
Where the episode cannot be replayed (its reset had no seed, the replay ends elsewhere than
the lost worker did, or the new worker dies too), the step reports the episode truncated,
with the last observation, reward 0, ``info["worker_restarted"]`` and
``info["worker_error"]`` saying why: an episode is never lost silently. Calls made through
:meth:`RayVectorEnv.call` that change an env are not replayed.

Ray is imported only when a :class:`RayVectorEnv` is built; without it,
:class:`~agemem_gym.error.DependencyNotInstalled` names ``pip install "agemem-gym[ray]"``.

Example:
    >>> import gymnasium as gym
    >>> from agemem_gym.vector import EnvFactory
    >>> envs = RayVectorEnv([EnvFactory("AgeMem/MemoryProbe-v0")] * 2)  # doctest: +SKIP
    >>> obs, infos = envs.reset(seed=0)  # doctest: +SKIP
"""

from __future__ import annotations

import copy as copy_module
import dataclasses
import functools
import time
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.envs.registration import EnvSpec
from gymnasium.utils.env_checker import data_equivalence
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space, concatenate, create_empty_array, iterate

from agemem_gym.error import InvalidConfig, missing_dependency
from agemem_gym.vector import EnvFactory
from agemem_gym.vector_ray_worker import EnvWorker

__all__ = ["RayVectorEnv", "require_ray"]

EnvSource = Callable[[], gym.Env] | str | EnvSpec
"""A sub-env's recipe: a picklable builder, a registered id or an ``EnvSpec``."""


def require_ray() -> Any:
    """Import Ray, or raise :class:`~agemem_gym.error.DependencyNotInstalled` naming the extra."""
    try:
        import ray
    except ImportError:
        raise missing_dependency("ray", "ray") from None
    return ray


def init_ray(**kwargs: Any) -> bool:
    """Start a local Ray (no dashboard) unless one is running; return whether it was started.

    Args:
        **kwargs: ``ray.init`` arguments (``num_cpus``, ``address``, ``_temp_dir``, ...).
    """
    ray = require_ray()
    if ray.is_initialized():
        return False
    ray.init(**{"include_dashboard": False, "log_to_driver": False, **kwargs})
    return True


@dataclasses.dataclass
class _Record:
    """What the driver needs to rebuild one sub-env's episode on a new actor."""

    attrs: dict[str, Any] = dataclasses.field(default_factory=dict)  # every set_attr so far
    attrs_at_reset: dict[str, Any] = dataclasses.field(default_factory=dict)
    seed: int | None = None
    options: dict[str, Any] | None = None
    started: bool = False  # reset at least once
    replayable: bool = False  # reset with an integer seed
    events: list[tuple[str, Any, Any]] = dataclasses.field(default_factory=list)  # since the reset

    def reset(self, seed: int | None, options: dict[str, Any] | None) -> None:
        self.attrs_at_reset, self.seed, self.options = dict(self.attrs), seed, copy_module.deepcopy(options)
        self.started, self.replayable = True, isinstance(seed, (int, np.integer))
        self.events = []

    def set_attr(self, name: str, value: Any) -> None:
        self.attrs[name] = value
        self.events.append(("set", name, value))

    def step(self, action: Any) -> None:
        # the caller may reuse an array buffer for its next actions
        self.events.append(("step", np.array(action) if isinstance(action, np.ndarray) else action, None))


class RayVectorEnv(gym.vector.VectorEnv):
    """Sub-envs in Ray actors, stepped in parallel; a lost actor is rebuilt and its episode replayed.

    The constructor starts a local Ray (``include_dashboard=False``) unless ``ray.init`` was
    called already; connect to a cluster with ``ray.init(address=...)`` first, or pass
    ``ray_init={"address": ...}``. The env builders are pickled (cloudpickle) to the actors:
    module-level functions, ``functools.partial`` and :class:`~agemem_gym.vector.EnvFactory`
    travel by reference (the package must be importable on every node); a lambda travels with
    everything its closure holds.

    Attributes:
        worker_restarts: Per sub-env, how many times its actor was rebuilt.
    """

    def __init__(
        self,
        env_fns: Sequence[EnvSource],
        *,
        copy: bool = True,
        autoreset_mode: str | AutoresetMode = AutoresetMode.NEXT_STEP,
        num_cpus: float | None = None,
        actor_options: dict[str, Any] | None = None,
        ray_init: dict[str, Any] | None = None,
        startup_timeout_s: float = 300.0,
    ) -> None:
        """Start one actor per sub-env.

        Args:
            env_fns: One recipe per sub-env: a picklable callable returning an env, a
                registered id or an ``EnvSpec`` (built with ``gym.make`` in the actor).
            copy: Return a deep copy of the batched observations (as ``SyncVectorEnv``).
            autoreset_mode: ``NEXT_STEP`` (Gymnasium's default) or ``DISABLED``.
            num_cpus: CPUs each actor reserves. ``None`` is Ray's actor default (one to be
                placed, none held), so any number of actors fit on a machine; ``1`` spreads
                actors over a cluster's cores, and actors wait until cores are free.
            actor_options: More ``ray.remote`` options for the actors (``resources``,
                ``runtime_env``, ``scheduling_strategy``, ...).
            ray_init: ``ray.init`` arguments, used when Ray is not yet initialised.
            startup_timeout_s: How long the actors may take to start (placement included).

        Raises:
            InvalidConfig: No env, an unsupported autoreset mode, sub-envs whose spaces
                differ, or actors that could not start in time.
            DependencyNotInstalled: Ray is missing.
        """
        super().__init__()
        if not env_fns:
            raise InvalidConfig("RayVectorEnv needs at least one env recipe")
        try:
            self.autoreset_mode = AutoresetMode(autoreset_mode)
        except ValueError:
            modes = ", ".join(repr(m.value) for m in AutoresetMode)
            raise InvalidConfig(
                f"autoreset_mode must be an AutoresetMode or one of {modes}, got {autoreset_mode!r}"
            ) from None
        if self.autoreset_mode == AutoresetMode.SAME_STEP:
            raise InvalidConfig("RayVectorEnv supports autoreset_mode NEXT_STEP or DISABLED, not SAME_STEP")
        self._ray = require_ray()
        init_ray(**(ray_init or {}))
        self.env_fns = [_as_builder(fn) for fn in env_fns]
        self.num_envs, self.copy = len(self.env_fns), copy
        self._actor_options = {**({} if num_cpus is None else {"num_cpus": num_cpus}), **(actor_options or {})}
        self._startup_timeout_s = float(startup_timeout_s)
        self._workers: list[Any] = []  # filled before anything can fail and leave actors behind
        self._workers = [self._spawn(fn) for fn in self.env_fns]
        self._describe_all()
        self._init_state()

    def _init_state(self) -> None:
        """The driver's per-sub-env state: replay records, last results, batching buffers."""
        n = self.num_envs
        self._records = [_Record() for _ in range(n)]
        self._env_obs: list[Any] = [None] * n
        self._env_infos: list[dict[str, Any]] = [{} for _ in range(n)]
        self._observations: Any = create_empty_array(self.single_observation_space, n=n, fn=np.zeros)
        self._rewards = np.zeros((n,), dtype=np.float64)
        self._terminations = np.zeros((n,), dtype=np.bool_)
        self._truncations = np.zeros((n,), dtype=np.bool_)
        self._autoreset_envs = np.zeros((n,), dtype=np.bool_)
        self._lost: list[str | None] = [None] * n  # why a rebuilt actor could not replay
        self.worker_restarts = [0] * n

    # ------------------------------------------------------------------ actors

    def _spawn(self, make_env: Callable[[], gym.Env]) -> Any:
        return _remote_worker().options(**self._actor_options).remote(make_env)

    def _describe_all(self) -> None:
        """Read the spaces of every sub-env (waiting for the actors to start) and check they agree."""
        refs = [w.describe.remote() for w in self._workers]
        try:
            described = self._ray.get(refs, timeout=self._startup_timeout_s)
        except self._ray.exceptions.GetTimeoutError:
            self.close()
            raise InvalidConfig(
                f"{self.num_envs} Ray env actors did not start within {self._startup_timeout_s:.0f} s "
                f"(actor options {self._actor_options}; cluster resources {self._ray.cluster_resources()}): "
                "lower num_cpus or add nodes"
            ) from None
        except BaseException:
            self.close()
            raise
        first = described[0]
        self.metadata = {**first["metadata"], "autoreset_mode": self.autoreset_mode}
        self.render_mode = first["render_mode"]
        self.single_observation_space, self.single_action_space = first["observation_space"], first["action_space"]
        for i, d in enumerate(described[1:], 1):
            if d["observation_space"] != self.single_observation_space or d["action_space"] != self.single_action_space:
                self.close()
                raise InvalidConfig(f"sub-env {i} has other spaces than sub-env 0: every sub-env must share them")
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)

    def worker_pids(self) -> list[int]:
        """The process id of each sub-env's actor (to inspect, or to kill in a fault test)."""
        return list(self._ray.get([w.pid.remote() for w in self._workers]))

    def kill_worker(self, index: int, timeout_s: float = 30.0) -> None:
        """Kill sub-env ``index``'s actor, as a crash would: its next call rebuilds and replays it.

        Returns once the actor is gone: ``ray.kill`` only sends the order, and a call made
        before it lands would still be served by the old actor.
        """
        worker = self._workers[index]
        self._ray.kill(worker, no_restart=True)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                self._ray.get(worker.pid.remote(), timeout=max(0.1, deadline - time.monotonic()))
            except Exception:  # noqa: BLE001 - RayActorError and kin: the actor is dead, as asked
                return
            time.sleep(0.02)
        raise TimeoutError(f"the actor of sub-env {index} was still alive {timeout_s:g} s after ray.kill")

    def _revive(self, i: int, cause: BaseException) -> str | None:
        """Replace sub-env ``i``'s dead actor and replay its episode; return why it failed, if it did."""
        self.worker_restarts[i] += 1
        try:
            self._ray.kill(self._workers[i], no_restart=True)
        except Exception:  # noqa: BLE001 - it is gone already; only the new one matters
            pass
        worker = self._workers[i] = self._spawn(self.env_fns[i])
        record = self._records[i]
        lost = f"the worker of sub-env {i} died ({type(cause).__name__})"
        try:
            if not record.replayable:  # the next reset needs the attributes set so far
                self._ray.get(worker.replay.remote(record.attrs, None, []))
                return (
                    f"{lost} and its episode cannot be replayed: it was reset without a seed"
                    if record.started
                    else None
                )
            obs, _ = self._ray.get(
                worker.replay.remote(record.attrs_at_reset, (record.seed, record.options), record.events)
            )
        except self._ray.exceptions.RayError as exc:
            return f"{lost}; replaying its episode failed: {_short(exc)}"
        if not data_equivalence(obs, self._env_obs[i]):
            return f"{lost}; replaying its episode gave another observation (the env is not deterministic)"
        return None

    def _gather(self, refs: list[Any], redo: Callable[[int, BaseException], Any]) -> list[Any]:
        """``ray.get`` of one call per sub-env; a call whose actor died is answered by ``redo``."""
        ray = self._ray
        try:
            return list(ray.get(refs))
        except ray.exceptions.RayActorError:
            pass
        out = []
        for i, ref in enumerate(refs):
            try:
                out.append(ray.get(ref))
            except ray.exceptions.RayActorError as exc:
                out.append(redo(i, exc))
        return out

    # ------------------------------------------------------------------ gymnasium API

    def reset(
        self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """Reset the sub-envs (``options["reset_mask"]`` selects some), each with its seed.

        Args:
            seed: ``None``, an int (sub-env ``i`` gets ``seed + i``) or one per sub-env.
            options: Passed to every reset sub-env; ``reset_mask`` is taken out first.

        Returns:
            Batched observations and infos, as ``SyncVectorEnv`` gives them.
        """
        seeds = _seeds(seed, self.num_envs)
        options = dict(options) if options is not None else None
        mask = _reset_mask(options, self.num_envs)
        self._terminations[mask] = self._truncations[mask] = self._autoreset_envs[mask] = False
        chosen = [int(i) for i in np.flatnonzero(mask)]
        for i in chosen:
            self._records[i].reset(seeds[i], options)
            self._lost[i] = None
        refs = [self._workers[i].reset.remote(seeds[i], options) for i in chosen]
        results = self._gather(refs, lambda k, exc: self._reset_again(chosen[k], seeds[chosen[k]], options))
        infos: dict[str, Any] = {}
        for i, (obs, info) in zip(chosen, results):
            self._env_obs[i], self._env_infos[i] = obs, info
            infos = self._add_info(infos, info, i)
        return self._batched_observations(), infos

    def _reset_again(self, i: int, seed: int | None, options: dict[str, Any] | None) -> tuple[Any, dict[str, Any]]:
        """A reset whose actor died: rebuild it (with the attributes set so far) and reset once more."""
        self.worker_restarts[i] += 1
        self._workers[i] = self._spawn(self.env_fns[i])
        record = self._records[i]
        obs, info = self._ray.get(self._workers[i].replay.remote(record.attrs_at_reset, (seed, options), []))
        return obs, {**info, "worker_restarted": self.worker_restarts[i]}

    def step(self, actions: Any) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Step every sub-env in parallel (``NEXT_STEP``: reset those whose episode ended).

        Returns:
            Batched observations, rewards, terminations, truncations and infos.
        """
        refs, kinds = [], []
        for i, action in enumerate(iterate(self.action_space, actions)):
            if self.autoreset_mode == AutoresetMode.NEXT_STEP and self._autoreset_envs[i]:
                self._records[i].reset(None, None)
                self._lost[i] = None
                refs.append(self._workers[i].reset.remote(None, None))
                kinds.append(("reset", None))
            elif self._lost[i] is not None:
                refs.append(None)
                kinds.append(("lost", None))
            else:
                self._records[i].step(action)
                refs.append(self._workers[i].step.remote(action))
                kinds.append(("step", action))
        results = self._gather_steps(refs, kinds)
        infos: dict[str, Any] = {}
        for i, result in enumerate(results):
            if kinds[i][0] == "reset":
                obs, info = result
                result = (obs, 0.0, False, False, info)
            obs, reward, term, trunc, info = result
            self._env_obs[i], self._env_infos[i] = obs, info
            self._rewards[i], self._terminations[i], self._truncations[i] = reward, term, trunc
            infos = self._add_info(infos, info, i)
        self._autoreset_envs = np.logical_or(self._terminations, self._truncations)
        rewards, terms, truncs = np.copy(self._rewards), np.copy(self._terminations), np.copy(self._truncations)
        return self._batched_observations(), rewards, terms, truncs, infos

    def _gather_steps(self, refs: list[Any], kinds: list[tuple[str, Any]]) -> list[Any]:
        """The results of one step; a ``None`` ref marks a lost episode, reported truncated."""
        live = [k for k, ref in enumerate(refs) if ref is not None]
        got = self._gather([refs[k] for k in live], lambda n, exc: self._step_again(live[n], kinds[live[n]], exc))
        results: list[Any] = [None] * len(refs)
        for k, result in zip(live, got):
            results[k] = result
        for k, ref in enumerate(refs):
            if ref is None:  # a rebuilt actor that could not replay: the episode ends here
                results[k] = self._lost_step(k)
        return results

    def _step_again(self, i: int, kind: tuple[str, Any], cause: BaseException) -> Any:
        """A call whose actor died: rebuild, replay, send it again; or end the episode truncated."""
        if kind[0] == "reset":
            return self._reset_again(i, None, None)
        self._records[i].events.pop()  # the action in flight is sent again below
        error = self._revive(i, cause)
        if error is None:
            self._records[i].step(kind[1])
            try:
                obs, reward, term, trunc, info = self._ray.get(self._workers[i].step.remote(kind[1]))
                return obs, reward, term, trunc, {**info, "worker_restarted": self.worker_restarts[i]}
            except self._ray.exceptions.RayActorError as exc:
                error = f"the worker of sub-env {i} died again while replaying: {_short(exc)}"
        self._lost[i] = error
        return self._lost_step(i)

    def _lost_step(self, i: int) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        """The truncated step that reports an episode its rebuilt actor could not replay."""
        error = self._lost[i]
        self._lost[i] = None
        self._records[i].replayable = False
        info = {**self._env_infos[i], "worker_restarted": self.worker_restarts[i], "worker_error": error}
        return self._env_obs[i], 0.0, False, True, info

    def _batched_observations(self) -> Any:
        """The sub-envs' latest observations batched (as ``SyncVectorEnv`` batches them)."""
        self._observations = concatenate(self.single_observation_space, self._env_obs, self._observations)
        return copy_module.deepcopy(self._observations) if self.copy else self._observations

    def call(self, name: str, *args: Any, **kwargs: Any) -> tuple[Any, ...]:
        """Call a method (or read an attribute) of every sub-env; changes it makes are not replayed."""
        refs = [w.call.remote(name, args, kwargs) for w in self._workers]
        return tuple(self._gather(refs, lambda i, exc: self._call_again(i, exc, name, args, kwargs)))

    def _call_again(self, i: int, cause: BaseException, name: str, args: Any, kwargs: Any) -> Any:
        """A call whose actor died: rebuild and replay it, then call once more."""
        self._lost[i] = self._revive(i, cause)
        return self._ray.get(self._workers[i].call.remote(name, args, kwargs))

    def get_attr(self, name: str) -> tuple[Any, ...]:
        """An attribute of every sub-env."""
        return self.call(name)

    def set_attr(self, name: str, values: list[Any] | tuple[Any, ...] | Any) -> None:
        """Set an attribute on every sub-env: one value each, or the same one for all."""
        if not isinstance(values, (list, tuple)):
            values = [values] * self.num_envs
        if len(values) != self.num_envs:
            raise ValueError(f"set_attr needs {self.num_envs} values, one per sub-env, got {len(values)}")
        for record, value in zip(self._records, values):
            record.set_attr(name, value)
        refs = [w.set_attr.remote(name, value) for w, value in zip(self._workers, values)]
        self._gather(refs, lambda i, exc: self._set_again(i, exc))

    def _set_again(self, i: int, cause: BaseException) -> None:
        # the replay applies every recorded set_attr, this one included
        self._lost[i] = self._revive(i, cause)

    def render(self) -> tuple[Any, ...]:
        """The rendered frame of every sub-env."""
        return self.call("render")

    @property
    def np_random_seed(self) -> tuple[int, ...]:  # type: ignore[override]
        """The seed of every sub-env's generator."""
        return self.get_attr("np_random_seed")

    def close_extras(self, **kwargs: Any) -> None:
        """Close the sub-envs and end their actors (Ray itself keeps running)."""
        ray, workers, self._workers = self._ray, self._workers, []
        try:
            ray.get([w.close.remote() for w in workers], timeout=30)
        except ray.exceptions.RayError:
            pass  # a dead or stuck actor: killing it below is all that is left
        for worker in workers:
            ray.kill(worker, no_restart=True)


@functools.cache
def _remote_worker() -> Any:
    """The actor class, made once (Ray exports its definition again for each new session)."""
    return require_ray().remote(EnvWorker)


def _as_builder(source: EnvSource) -> Callable[[], gym.Env]:
    if isinstance(source, (str, EnvSpec)):
        return EnvFactory(source)
    if not callable(source):
        raise InvalidConfig(f"an env recipe must be a callable, an env id or an EnvSpec, got {source!r}")
    return source


def _seeds(seed: int | list[int | None] | None, n: int) -> list[int | None]:
    if seed is None:
        return [None] * n
    if isinstance(seed, (int, np.integer)):
        return [int(seed) + i for i in range(n)]
    if len(seed) != n:
        raise ValueError(
            f"If seeds are passed as a list the length must match num_envs={n} but got length={len(seed)}."
        )
    return list(seed)


def _reset_mask(options: dict[str, Any] | None, n: int) -> np.ndarray:
    """``options["reset_mask"]`` (taken out of ``options``), checked as ``SyncVectorEnv`` does; else all."""
    if options is None or "reset_mask" not in options:
        return np.ones(n, dtype=np.bool_)
    mask = options.pop("reset_mask")
    if not isinstance(mask, np.ndarray) or mask.shape != (n,) or mask.dtype != np.bool_:
        raise TypeError(f"`options['reset_mask']` must be a bool numpy array of shape ({n},), got {mask!r}")
    if not mask.any():
        raise ValueError("`options['reset_mask']` must select at least one sub-env")
    return mask


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[-1] if text else ''}"[:300]
