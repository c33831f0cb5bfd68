"""Memory-state snapshots: save an episode mid-way and go back to it exactly.

``env.unwrapped.snapshot()`` returns an :class:`EnvSnapshot`, an immutable, picklable value
holding everything that decides the rest of the episode: the long-term memory (entries,
vectors, id generator and the HNSW graph when built), the context and the turn engine's
state, the stage, round and step counters, the reward trace and accumulators, the RNG
(``np_random``), the task, the (reconfigurable) :class:`~agemem_gym.config.EnvConfig` and the
world state of interactive tasks. ``env.unwrapped.restore(snapshot)`` puts the env back in
that state: the same actions then give byte-identical observations, rewards and infos, in
the same env or in a fresh one made with the same arguments (also in another process).

The state is pickled into the snapshot when it is taken, so later steps never change it,
and every restore unpickles a fresh copy (one snapshot can be restored any number of times).

How each family's world is captured (subclasses list their episode attributes in
``_snapshot_fields`` and adjust them in ``_snapshot_restored``):

* question-answering and synthetic tasks (HotpotQA, Probe, MemoryProbe, FactUpdate,
  LongRecall, LoCoMo) have no world: the memory state is the whole state;
* BabyAI: the minigrid world and its expert bot are pickled;
* PDDL: the STRIPS simulator state, progress and expert plan are pickled;
* ScienceWorld and ALFWorld: **deterministic replay**. A JVM or a textworld game cannot be
  pickled cheaply, so the snapshot keeps the episode's action history; restoring marks the
  engine for replay, and its next use resets the game and re-applies the recorded actions
  (the same path their ``__getstate__`` uses).

hnswlib does not serialise its level generator (a loaded graph draws the levels of later
insertions afresh). So that the env and every restore of a snapshot keep building the same
graph, :meth:`snapshot` also replaces the env's live HNSW index with a copy loaded from the
snapshot's bytes (:mod:`agemem_gym.memory.ltm_state`): the env then goes on exactly as any
restore of that snapshot does.

Call these on ``env.unwrapped``. A freshly made env wrapped by ``gym.make`` refuses
``step`` until its first ``reset`` (Gymnasium's ``OrderEnforcing``): reset it once, or step
the unwrapped env, before stepping a restored state.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import pickle
from typing import TYPE_CHECKING, Any, ClassVar, cast

from agemem_gym.error import InvalidConfig, ResetNeeded
from agemem_gym.memory import ltm_state

if TYPE_CHECKING:
    from agemem_gym.core import MemoryEnv

__all__ = ["EnvSnapshot", "SnapshotMixin"]

# MemoryEnv's episode attributes (gymnasium keeps the RNG in _np_random/_np_random_seed)
_BASE_FIELDS = (
    "_task",
    "_done",
    "_trace",
    "_stage",
    "_round",
    "_step",
    "_queue",
    "_prompt_tokens",
    "_potential",
    "_invalid_paid",
    "_final",
    "_step_invalid",
    "_truncated",
    "_last_turn",
    "_rejected",
    "_packed",
    "_breakdown",
    "_np_random",
    "_np_random_seed",
    "config",
)
_SETTING_TYPES = (bool, int, float, str, tuple, type(None))
_UNSET = object()


@dataclasses.dataclass(frozen=True)
class EnvSnapshot:
    """An env's complete episode state at one step (see the module docstring).

    Attributes:
        env_class: ``module:QualName`` of the env class that took it.
        env_id: The registered id (``None`` for an env built without ``gym.make``).
        fingerprint: Hash of the construction settings that shape the episode; restore
            refuses a snapshot whose fingerprint differs from the env's.
        stage: The stage when it was taken (1, 2 or 3).
        step: The env step when it was taken.
        replay: Whether restoring re-applies recorded world actions (ScienceWorld, ALFWorld).
        payload: The pickled state.
    """

    env_class: str
    env_id: str | None
    fingerprint: str
    stage: int
    step: int
    replay: bool
    payload: bytes = dataclasses.field(repr=False)

    @property
    def nbytes(self) -> int:
        """Size of the pickled state in bytes."""
        return len(self.payload)


class SnapshotMixin:
    """``snapshot``/``restore`` for :class:`~agemem_gym.core.MemoryEnv` (mixed into its bases).

    Subclasses name their own episode attributes in ``_snapshot_fields`` (collected along the
    class hierarchy) and fix up what pickling cannot carry in :meth:`_snapshot_restored`.
    """

    _snapshot_fields: ClassVar[tuple[str, ...]] = ()
    _snapshot_replay: ClassVar[bool] = False

    def snapshot(self) -> EnvSnapshot:
        """The episode's state now, as an immutable, picklable :class:`EnvSnapshot`.

        Raises:
            ResetNeeded: before the first ``reset``.
        """
        env = cast("MemoryEnv", self)  # a mixin of MemoryEnv only
        if env.task is None:
            raise ResetNeeded("call reset() before snapshot(): there is no episode to save")
        payload = pickle.dumps(_collect(env), protocol=pickle.HIGHEST_PROTOCOL)
        return EnvSnapshot(
            env_class=_class_path(env),
            env_id=_env_id(env),
            fingerprint=_fingerprint(env),
            stage=int(env._stage),
            step=int(env._step),
            replay=self._snapshot_replay,
            payload=payload,
        )

    def restore(self, snapshot: EnvSnapshot) -> None:
        """Put the env back in the state of ``snapshot``.

        Args:
            snapshot: Taken by :meth:`snapshot` of an env of the same class, id and settings.

        Raises:
            InvalidConfig: ``snapshot`` is not an :class:`EnvSnapshot`, or comes from another
                env id, class or configuration.
        """
        env = cast("MemoryEnv", self)
        _check_compatible(env, snapshot)
        _install(env, pickle.loads(snapshot.payload))
        self._snapshot_restored()

    def _snapshot_restored(self) -> None:
        """Hook: fix up engine state after a restore (e.g. schedule a replay)."""


def _all_fields(env: MemoryEnv) -> tuple[str, ...]:
    names: list[str] = list(_BASE_FIELDS)
    for cls in reversed(type(env).__mro__):
        for name in vars(cls).get("_snapshot_fields", ()):
            if name not in names:
                names.append(name)
    return tuple(names)


def _collect(env: MemoryEnv) -> dict[str, Any]:
    """The episode state to pickle (the LTM's part re-seats its live HNSW graph)."""
    turns = env.turns
    return {
        "env": {name: vars(env).get(name, _UNSET) for name in _all_fields(env)},
        "ltm": ltm_state.capture(env.ltm),
        "stm": {"_messages": list(env.stm._messages), "_tokens": env.stm._tokens},
        # summary provenance is keyed by id(message): kept as pairs, re-keyed on restore
        "turns": {
            "overflow_noticed": turns.overflow_noticed,
            "message_views": list(turns.message_views.values()),
            "memory_views": dict(turns.memory_views),
        },
    }


def _install(env: MemoryEnv, state: dict[str, Any]) -> None:
    for name, value in state["env"].items():
        if value is _UNSET:
            vars(env).pop(name, None)
        else:
            setattr(env, name, value)
    ltm_state.install(env.ltm, state["ltm"])
    env.stm._messages = state["stm"]["_messages"]
    env.stm._tokens = state["stm"]["_tokens"]
    env.turns.config = env.config
    env.turns.overflow_noticed = state["turns"]["overflow_noticed"]
    env.turns.message_views = {id(message): (message, text) for message, text in state["turns"]["message_views"]}
    env.turns.memory_views = dict(state["turns"]["memory_views"])


def _class_path(env: MemoryEnv) -> str:
    return f"{type(env).__module__}:{type(env).__qualname__}"


def _env_id(env: MemoryEnv) -> str | None:
    return env.spec.id if env.spec is not None else None


def _fingerprint(env: MemoryEnv) -> str:
    """Hash of the settings fixed at construction that shape an episode."""
    from agemem_gym.core import _RECONFIGURABLE

    config = {k: v for k, v in dataclasses.asdict(env.config).items() if k not in _RECONFIGURABLE}
    settings = sorted(
        (k, str(v) if isinstance(v, os.PathLike) else v)
        for k, v in vars(env).items()
        if not k.startswith("_") and k != "render_mode" and isinstance(v, (*_SETTING_TYPES, os.PathLike))
    )
    parts = (
        _class_path(env),
        repr(sorted(config.items())),
        repr(env.memory_config),
        repr(env.reward_config),
        repr(settings),
        repr(env.tools.names),
        f"{type(env.embedder).__qualname__}/{env.ltm.dim}",
    )
    return hashlib.sha256("\n".join(parts).encode("utf-8")).hexdigest()[:16]


def _check_compatible(env: MemoryEnv, snapshot: Any) -> None:
    if not isinstance(snapshot, EnvSnapshot):
        raise InvalidConfig(f"restore() takes an EnvSnapshot from env.snapshot(), got {type(snapshot).__name__}")
    here = _env_id(env)
    if snapshot.env_id is not None and here is not None and snapshot.env_id != here:
        raise InvalidConfig(f"this snapshot was taken in {snapshot.env_id!r}; it cannot be restored into {here!r}")
    if snapshot.env_class != _class_path(env):
        raise InvalidConfig(
            f"this snapshot was taken in a {snapshot.env_class} env; it cannot be restored into a {_class_path(env)}"
        )
    if snapshot.fingerprint != _fingerprint(env):
        raise InvalidConfig(
            f"this snapshot was taken in a {snapshot.env_id or snapshot.env_class} env with other settings "
            "(EnvConfig, MemoryConfig, RewardConfig, task arguments, tools or embedder differ): make the env "
            "with the same arguments to restore it"
        )
